package proxy

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestParseGate: large statements take turns at parsing, within the
// budget; small ones never wait.
func TestParseGate(t *testing.T) {
	g := newParseGate()
	leave, err := g.enter(context.Background(), parseBudget)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := g.enter(context.Background(), 10); err != nil {
		t.Fatalf("a small statement waited: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := g.enter(ctx, largeStatement); err == nil {
		t.Fatal("a second large statement parsed while the budget was taken")
	}
	leave()
	ctx, cancel = context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// One above the budget waits for all of it, and gets it.
	leave, err = g.enter(ctx, 4*parseBudget)
	if err != nil {
		t.Fatalf("after the first left: %v", err)
	}
	leave()
}

// TestLargeStatementMemoryReturns: the heap that parsing a large statement
// took goes back to the operating system soon after, not only once a
// garbage collection happens to run.
func TestLargeStatementMemoryReturns(t *testing.T) {
	g := startGateway(t, DefaultPoolConfig)
	c := g.connect(t, "app", "")
	var b strings.Builder
	b.WriteString("insert into users (id, name) values ")
	for i := 1; b.Len() < 4<<20; i++ {
		if i > 1 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "(%d, 'user %d')", i, i)
	}
	exec(t, c, b.String())
	b.Reset()
	if got := retainedHeap(); got < 2*heapKept {
		t.Fatalf("the statement left only %d MiB of heap: it shows nothing", got>>20)
	}
	c.Close(context.Background())
	deadline := time.Now().Add(30 * time.Second)
	for retainedHeap() > heapKept {
		if time.Now().After(deadline) {
			t.Fatalf("the gateway still holds %d MiB of heap 30 s after the statement", retainedHeap()>>20)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
