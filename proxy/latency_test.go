package proxy

import (
	"testing"
	"time"
)

func TestLatencyWindow(t *testing.T) {
	var l latencyWindow
	if got := l.p99(); got != 0 {
		t.Fatalf("p99 of nothing = %s", got)
	}
	for range 990 {
		l.observe(80 * time.Microsecond)
	}
	for range 10 {
		l.observe(30 * time.Millisecond)
	}
	if got := l.p99(); got != 100*time.Microsecond {
		t.Fatalf("p99 with 1%% slow statements = %s, want the bucket of the fast ones, 100µs", got)
	}
	for range 980 {
		l.observe(80 * time.Microsecond)
	}
	for range 20 {
		l.observe(30 * time.Millisecond)
	}
	if got := l.p99(); got != 51200*time.Microsecond {
		t.Fatalf("p99 with 2%% slow statements = %s, want their bucket, 51.2ms", got)
	}
	if got := l.p99(); got != 0 {
		t.Fatalf("p99 with nothing since = %s: the window starts at each call", got)
	}
	l.observe(time.Hour)
	if got := l.p99(); got < time.Hour {
		t.Fatalf("p99 of one statement of an hour = %s", got)
	}
}
