package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/shardgate/shardgate/topology"
)

// TestReshardThrottle: 'reshard throttle' records each limit only when
// given, turns one off with 0, refuses a negative one, prints what is in
// effect and why the workflow backs off; 'reshard show' shows the same,
// and 'reshard start' records its limits before it drives the workflow.
func TestReshardThrottle(t *testing.T) {
	t.Parallel()
	e, store := newGrowWorkflow(t)
	ctx := t.Context()
	throttle := func() topology.Throttle {
		t.Helper()
		w, err := store.Workflow(ctx, "grow")
		if err != nil {
			t.Fatal(err)
		}
		return w.Throttle
	}

	// Bad input changes nothing.
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"throttle"}, "missing NAME"},
		{[]string{"throttle", "grow", "--max-replica-lag", "-1s"}, "--max-replica-lag must be 0 (not watched) or positive, not -1s"},
		{[]string{"throttle", "grow", "--max-latency", "-5ms", "--max-replica-lag", "1s"}, "--max-latency must be 0 (not watched) or positive, not -5ms"},
		{[]string{"throttle", "grow", "--max-latency", "soon"}, `invalid argument "soon"`},
		{[]string{"throttle", "nope", "--max-latency", "50ms"}, "workflow nope does not exist"},
		{[]string{"throttle", "nope"}, "workflow nope does not exist"},
		{[]string{"start", "grow", "--max-replica-lag", "-2s"}, "--max-replica-lag must be 0 (not watched) or positive"},
		{[]string{"throttle", "grow", "--max-active", "-3"}, "--max-active must be 0 (not watched) or positive, not -3"},
	} {
		e.run("", append([]string{"reshard"}, tt.args...)...).fails(t, tt.want)
	}
	if th := throttle(); th != (topology.Throttle{}) {
		t.Fatalf("refused commands changed the throttle: %+v", th)
	}

	if out := e.run("", "reshard", "throttle", "grow").ok(t); out != "workflow grow is not throttled (no limits)\n" {
		t.Errorf("throttle without limits printed %q", out)
	}
	if out := e.run("", "reshard", "show", "grow").ok(t); !hasLine(out, "throttle:", "none") {
		t.Errorf("reshard show printed\n%s\nwant a line \"throttle: none\"", out)
	}

	out := e.run("", "reshard", "throttle", "grow", "--max-replica-lag", "10s", "--max-latency", "50ms").ok(t)
	if want := "workflow grow backs off its copy and streams while a source's standbys lag more than 10s or a gateway's p99 latency is over 50ms\n"; out != want {
		t.Errorf("throttle printed %q, want %q", out, want)
	}
	if th := throttle(); th != (topology.Throttle{MaxReplicaLag: 10 * time.Second, MaxLatency: 50 * time.Millisecond}) {
		t.Fatalf("throttle %+v, want 10s and 50ms", th)
	}

	out = e.run("", "reshard", "throttle", "grow", "--max-active", "32").ok(t)
	if want := "workflow grow backs off its copy and streams while a source's standbys lag more than 10s or a source runs more than 32 statements at once or a gateway's p99 latency is over 50ms\n"; out != want {
		t.Errorf("throttle --max-active printed %q, want %q", out, want)
	}
	e.run("", "reshard", "throttle", "grow", "--max-active", "0").ok(t)
	if th := throttle(); th != (topology.Throttle{MaxReplicaLag: 10 * time.Second, MaxLatency: 50 * time.Millisecond}) {
		t.Fatalf("after --max-active 0, throttle %+v, want 10s and 50ms again", th)
	}

	// A flag not given leaves its limit as it is; 0 turns one off.
	out = e.run("", "reshard", "throttle", "grow", "--max-latency", "0").ok(t)
	if want := "workflow grow backs off its copy and streams while a source's standbys lag more than 10s\n"; out != want {
		t.Errorf("throttle --max-latency 0 printed %q, want %q", out, want)
	}
	if th := throttle(); th != (topology.Throttle{MaxReplicaLag: 10 * time.Second}) {
		t.Fatalf("after --max-latency 0, throttle %+v, want 10s and no latency limit", th)
	}

	// The controller's reason, as it records it: show and throttle print
	// it; changing a limit keeps it.
	since := time.Date(2026, 12, 4, 12, 30, 5, 0, time.UTC)
	reason := "standby replica1 of source s1 replays 14s behind (limit 10s)"
	if _, err := store.UpdateWorkflow(ctx, "grow", func(w *topology.Workflow) error {
		w.Throttle.Reason, w.Throttle.Since = reason, since
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	out = e.run("", "reshard", "show", "grow").ok(t)
	if !hasLine(out, "throttle:", "a source's standbys lag more than 10s", "; backing off since 2026-12-04T12:30:05Z: "+reason) {
		t.Errorf("reshard show printed\n%s\nwant the throttle's limit and reason", out)
	}
	if strings.Contains(out, "latency over") {
		t.Errorf("reshard show printed\n%s\nwant no latency limit", out)
	}
	// The throttle line is aligned with the others.
	col := func(prefix string) int {
		for _, line := range strings.Split(out, "\n") {
			if strings.HasPrefix(line, prefix) {
				return len(line) - len(strings.TrimLeft(line[len(prefix):], " "))
			}
		}
		return -1
	}
	if p, th := col("phase:"), col("throttle:"); p < 0 || p != th {
		t.Errorf("reshard show printed\n%s\nwant throttle: aligned with phase: (columns %d, %d)", out, p, th)
	}
	out = e.run("", "reshard", "throttle", "grow", "--max-latency", "200ms").ok(t)
	if want := "workflow grow backs off its copy and streams while a source's standbys lag more than 10s or a gateway's p99 latency is over 200ms; backing off since 2026-12-04T12:30:05Z: " + reason + "\n"; out != want {
		t.Errorf("throttle --max-latency 200ms printed %q, want %q", out, want)
	}
	if th := throttle(); th.Reason != reason || !th.Since.Equal(since) || th.MaxLatency != 200*time.Millisecond || th.MaxReplicaLag != 10*time.Second {
		t.Fatalf("after --max-latency 200ms, throttle %+v", th)
	}

	// Once the write cutover began, a limit exceeded holds nothing.
	if _, err := store.UpdateWorkflow(ctx, "grow", func(w *topology.Workflow) error {
		w.Phase = topology.PhaseCuttingOver
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	out = e.run("", "reshard", "show", "grow").ok(t)
	if !hasLine(out, "throttle:", "; over a limit since 2026-12-04T12:30:05Z: "+reason, "(the streams are not held once the write cutover began)") || strings.Contains(out, "backing off") {
		t.Errorf("reshard show in phase cutting_over printed\n%s\nwant the reason without backing off", out)
	}
	if _, err := store.UpdateWorkflow(ctx, "grow", func(w *topology.Workflow) error {
		w.Phase = topology.PhasePlanned
		return nil
	}); err != nil {
		t.Fatal(err)
	}

	// With no limit left nothing is watched: nor backed off for.
	out = e.run("", "reshard", "throttle", "grow", "--max-replica-lag", "0", "--max-latency", "0s").ok(t)
	if out != "workflow grow is not throttled (no limits)\n" {
		t.Errorf("throttle with both limits 0 printed %q", out)
	}
	if th := throttle(); th != (topology.Throttle{}) {
		t.Fatalf("after both limits 0, throttle %+v, want none", th)
	}

	// start records its limits before it drives the workflow. Another
	// controller holds the lock here, so this one waits and touches no
	// shard; it stops when its context ends.
	lock, err := store.LockWorkflow(ctx, "grow", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Unlock()
	e.run("", "reshard", "throttle", "grow", "--max-latency", "75ms").ok(t)
	startCtx, stop := context.WithCancel(ctx)
	var stdout, stderr bytes.Buffer
	done := make(chan int)
	go func() {
		done <- run(startCtx, []string{"--etcd", e.endpoint, "--cluster", e.cluster, "reshard", "start", "grow", "--max-replica-lag", "3s"}, strings.NewReader(""), &stdout, &stderr)
	}()
	deadline := time.Now().Add(30 * time.Second)
	for throttle().MaxReplicaLag == 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	stop()
	if code := <-done; code != 0 || stderr.Len() != 0 {
		t.Fatalf("start: exit %d, stderr %q", code, stderr.String())
	}
	if th := throttle(); th != (topology.Throttle{MaxReplicaLag: 3 * time.Second, MaxLatency: 75 * time.Millisecond}) {
		t.Fatalf("after start --max-replica-lag 3s, throttle %+v, want 3s and 75ms", th)
	}
	if !strings.Contains(stdout.String(), "workflow grow backs off its copy and streams while a source's standbys lag more than 3s or a gateway's p99 latency is over 75ms\n") {
		t.Errorf("start printed %q, want the throttle in effect", stdout.String())
	}
}
