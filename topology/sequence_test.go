package topology

import (
	"context"
	"errors"
	"math"
	"sync"
	"sync/atomic"
	"testing"
)

// TestLeaseSequence: blocks leased concurrently never overlap, the first
// starts where the sequence says, SetSequence moves the next block, and
// the end of the sequence is reached exactly.
func TestLeaseSequence(t *testing.T) {
	te := startTestEtcd(t)
	s := NewStore(te.cli, "test")
	ctx := t.Context()
	var starts atomic.Int32
	start := func(context.Context) (int64, error) {
		starts.Add(1)
		return 1000, nil
	}
	var (
		mu   sync.Mutex
		seen = map[int64]bool{}
		wg   sync.WaitGroup
	)
	for range 8 {
		wg.Go(func() {
			for range 20 {
				first, n, err := s.LeaseSequence(ctx, "app", "ids", 10, 2, math.MaxInt64, start)
				if err != nil || n != 10 {
					t.Errorf("lease: %d values, %v", n, err)
					return
				}
				mu.Lock()
				for i := range n {
					v := first + i*2
					if seen[v] {
						t.Errorf("value %d leased twice", v)
					}
					seen[v] = true
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(seen) != 1600 || !seen[1000] || !seen[1000+2*1599] {
		t.Fatalf("%d values leased, want 1000, 1002, ... %d", len(seen), 1000+2*1599)
	}
	if starts.Load() == 0 {
		t.Fatal("the start was never asked")
	}

	if err := s.SetSequence(ctx, "app", "ids", 7); err != nil {
		t.Fatal(err)
	}
	if first, _, err := s.LeaseSequence(ctx, "app", "ids", 10, 2, math.MaxInt64, start); err != nil || first != 7 {
		t.Fatalf("after SetSequence(7): %d, %v", first, err)
	}

	// The end: 3 values left before max, then none.
	if err := s.SetSequence(ctx, "app", "small", 95); err != nil {
		t.Fatal(err)
	}
	if first, n, err := s.LeaseSequence(ctx, "app", "small", 10, 2, 100, start); err != nil || first != 95 || n != 3 {
		t.Fatalf("near max: %d values from %d, %v; want 95, 97, 99", n, first, err)
	}
	var exhausted *SequenceExhaustedError
	if _, _, err := s.LeaseSequence(ctx, "app", "small", 10, 2, 100, start); !errors.As(err, &exhausted) {
		t.Fatalf("past max: %v, want SequenceExhaustedError", err)
	}
	// At the type's end.
	if err := s.SetSequence(ctx, "app", "big", math.MaxInt64-1); err != nil {
		t.Fatal(err)
	}
	if first, n, err := s.LeaseSequence(ctx, "app", "big", 10, 1, math.MaxInt64, start); err != nil || first != math.MaxInt64-1 || n != 2 {
		t.Fatalf("at the type's end: %d values from %d, %v", n, first, err)
	}
	if _, _, err := s.LeaseSequence(ctx, "app", "big", 10, 1, math.MaxInt64, start); !errors.As(err, &exhausted) {
		t.Fatalf("past the type's end: %v, want SequenceExhaustedError", err)
	}
	// A start that fails fails the lease and records nothing.
	failing := func(context.Context) (int64, error) { return 0, errors.New("no such sequence") }
	if _, _, err := s.LeaseSequence(ctx, "app", "missing", 10, 1, math.MaxInt64, failing); err == nil {
		t.Fatal("a lease whose start failed went on")
	}
}
