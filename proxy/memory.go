package proxy

import (
	"context"
	"runtime/debug"
	"runtime/metrics"
	"sync"
	"time"

	"golang.org/x/sync/semaphore"

	"github.com/shardgate/shardgate/planner"
)

// Parsing is what a statement costs the gateway most: pg_query's parse tree
// takes up to about 35 times the statement's text (a 16 MiB multi-row
// INSERT holds over 500 MiB while it is parsed and planned). Two things
// keep that bounded and brief.
const (
	// largeStatement is the text size from which a statement counts against
	// parseBudget.
	largeStatement = 256 << 10
	// parseBudget is how much statement text the gateway parses at once
	// among large statements; a larger one waits for the whole budget.
	parseBudget = 16 << 20
	// heapKept is the heap the gateway keeps mapped without giving it back
	// early (see memoryReturner).
	heapKept = 32 << 20
	// returnDelay is how long after a large statement or a session's end
	// the gateway looks at its heap.
	returnDelay = 2 * time.Second
)

// parseGate makes large statements take turns at parsing.
type parseGate struct{ sem *semaphore.Weighted }

func newParseGate() *parseGate { return &parseGate{sem: semaphore.NewWeighted(parseBudget)} }

// enter waits until a statement of n bytes may be parsed and returns the
// function that ends its turn; small statements pass at once.
func (g *parseGate) enter(ctx context.Context, n int) (func(), error) {
	if n < largeStatement {
		return func() {}, nil
	}
	w := int64(min(n, parseBudget))
	if err := g.sem.Acquire(ctx, w); err != nil {
		return nil, err
	}
	return func() { g.sem.Release(w) }, nil
}

// memoryReturner gives the heap that a burst of load left behind back to
// the operating system soon after the burst: the Go heap, which Go's own
// scavenger returns only after a garbage collection (an idle gateway may
// not run one for minutes), and the parser's C heap, which glibc keeps.
// Without it the gateway would keep the size of its largest burst.
type memoryReturner struct {
	mu    sync.Mutex
	timer *time.Timer
}

// memory is the process's: sessions that end, large statements and backend
// connections that close ask it to look.
var memory memoryReturner

// soon looks at the heap returnDelay from now, once however often it is
// called meanwhile.
func (m *memoryReturner) soon() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.timer == nil {
		m.timer = time.AfterFunc(returnDelay, m.run)
	}
}

func (m *memoryReturner) run() {
	m.mu.Lock()
	m.timer = nil
	m.mu.Unlock()
	if retainedHeap() > heapKept {
		debug.FreeOSMemory()
	}
	// The parser's C heap is not the Go runtime's to see; trimming it
	// costs little when there is nothing to give back.
	planner.ReleaseParserMemory()
}

// stop cancels a pending look.
func (m *memoryReturner) stop() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.timer != nil {
		m.timer.Stop()
		m.timer = nil
	}
}

// retainedHeap is the heap memory the process holds from the operating
// system: live and dead objects and free spans not yet returned.
func retainedHeap() uint64 {
	s := []metrics.Sample{
		{Name: "/memory/classes/heap/objects:bytes"},
		{Name: "/memory/classes/heap/unused:bytes"},
		{Name: "/memory/classes/heap/free:bytes"},
	}
	metrics.Read(s)
	var n uint64
	for _, v := range s {
		if v.Value.Kind() == metrics.KindUint64 {
			n += v.Value.Uint64()
		}
	}
	return n
}
