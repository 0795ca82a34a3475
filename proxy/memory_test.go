package proxy

import (
	"context"
	"fmt"
	"runtime/debug"
	"runtime/metrics"
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
	debug.FreeOSMemory()
	// What the process holds anyway, the earlier tests' leftovers included.
	limit := max(retainedHeap()+32<<20, heapKept)
	var b strings.Builder
	b.WriteString("insert into users (id, name) values ")
	for i := 1; b.Len() < 4<<20; i++ {
		if i > 1 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "(%d, 'user %d')", i, i)
	}
	before := allocated()
	exec(t, c, b.String())
	b.Reset()
	if got := allocated() - before; got < 2*heapKept {
		t.Fatalf("the statement took only %d MiB of heap: it shows nothing", got>>20)
	}
	c.Close(context.Background())
	deadline := time.Now().Add(30 * time.Second)
	for retainedHeap() > limit {
		if time.Now().After(deadline) {
			t.Fatalf("the gateway still holds %d MiB of heap 30 s after the statement, more than %d MiB", retainedHeap()>>20, limit>>20)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// allocated is the heap the process has allocated since it started.
func allocated() uint64 {
	s := []metrics.Sample{{Name: "/gc/heap/allocs:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}
