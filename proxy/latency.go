package proxy

import (
	"math"
	"sync"
	"sync/atomic"
	"time"
)

// latencyBuckets are the upper bounds of the statement latencies a
// latencyWindow tells apart: 50µs doubling to about 27 minutes.
var latencyBuckets = func() []time.Duration {
	var out []time.Duration
	for d := 50 * time.Microsecond; len(out) < 25; d *= 2 {
		out = append(out, d)
	}
	return out
}()

// latencyWindow counts statement latencies in fixed buckets, for the 99th
// percentile of those since it was last asked: what a gateway publishes
// for the reshard workflows' throttles.
type latencyWindow struct {
	counts [26]atomic.Int64 // the last counts what is above every bucket

	mu   sync.Mutex
	seen [26]int64 // counts when last asked
}

// observe counts one statement that took d.
func (l *latencyWindow) observe(d time.Duration) {
	i := 0
	for i < len(latencyBuckets) && d > latencyBuckets[i] {
		i++
	}
	l.counts[i].Add(1)
}

// p99 returns the upper bound of the bucket that holds the 99th
// percentile of the latencies observed since the last call, 0 when there
// were none.
func (l *latencyWindow) p99() time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	var delta [26]int64
	total := int64(0)
	for i := range l.counts {
		now := l.counts[i].Load()
		delta[i], l.seen[i] = now-l.seen[i], now
		total += delta[i]
	}
	if total == 0 {
		return 0
	}
	rank := int64(math.Ceil(float64(total) * 0.99))
	for i, n := range delta {
		if rank -= n; rank <= 0 {
			if i == len(latencyBuckets) {
				return math.MaxInt64
			}
			return latencyBuckets[i]
		}
	}
	return latencyBuckets[len(latencyBuckets)-1]
}
