package topology

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// ShadowTally counts the shadow reads of one logical shard: those whose
// rows matched the source's, those that differed, and those not compared
// (the target's stream did not get to what the source read in time, or
// the rows changed on the source meanwhile, or the target failed).
type ShadowTally struct {
	Matches     int64 `json:"matches"`
	Differences int64 `json:"differences"`
	Skipped     int64 `json:"skipped"`
}

// Add adds o to t.
func (t *ShadowTally) Add(o ShadowTally) {
	t.Matches += o.Matches
	t.Differences += o.Differences
	t.Skipped += o.Skipped
}

// ShadowDifference is one shadow read whose rows on the target differed
// from the source's, when both had the same changes.
type ShadowDifference struct {
	At      time.Time `json:"at"`
	Logical int       `json:"logical"`
	// Key is the sharding key the statement named.
	Key string `json:"key"`
	// SQL is the statement's text, cut to MaxShadowSQL bytes.
	SQL        string `json:"sql"`
	SourceRows int64  `json:"source_rows"`
	TargetRows int64  `json:"target_rows"`
}

// MaxShadowDifferences is the most differences a report keeps, the latest.
const MaxShadowDifferences = 100

// MaxShadowSQL is the most bytes of a statement a difference keeps.
const MaxShadowSQL = 300

// ShadowReport is what one gateway's shadow reads of a workflow found
// since it started, under shadow/<workflow>/<gateway>; the workflow's end
// removes them all.
type ShadowReport struct {
	Gateway string               `json:"gateway"`
	Logical map[int]*ShadowTally `json:"logical"`
	Recent  []ShadowDifference   `json:"recent,omitempty"`
	Updated time.Time            `json:"updated"`
}

// ShadowSummary is the shadow reads of a workflow over every gateway.
type ShadowSummary struct {
	Total   ShadowTally          `json:"total"`
	Logical map[int]*ShadowTally `json:"logical,omitempty"`
	// Recent are the latest differences, oldest first.
	Recent []ShadowDifference `json:"recent,omitempty"`
}

// Since counts the differences in Recent at or after t. It is a lower
// bound when a gateway found more than MaxShadowDifferences.
func (s ShadowSummary) Since(t time.Time) int {
	n := 0
	for _, d := range s.Recent {
		if !d.At.Before(t) {
			n++
		}
	}
	return n
}

func (s *Store) shadowDir(workflow string) string { return s.prefix + "shadow/" + workflow + "/" }

// PublishShadow records gateway's report of workflow's shadow reads.
func (s *Store) PublishShadow(ctx context.Context, workflow string, r ShadowReport) error {
	b, _ := json.Marshal(r)
	if _, err := s.cli.Put(ctx, s.shadowDir(workflow)+r.Gateway, string(b)); err != nil {
		return fmt.Errorf("publish the shadow reads of workflow %s: %w", workflow, err)
	}
	return nil
}

// Shadow sums what every gateway reported of workflow's shadow reads.
func (s *Store) Shadow(ctx context.Context, workflow string) (ShadowSummary, error) {
	resp, err := s.cli.Get(ctx, s.shadowDir(workflow), clientv3.WithPrefix())
	if err != nil {
		return ShadowSummary{}, fmt.Errorf("read the shadow reads of workflow %s: %w", workflow, err)
	}
	sum := ShadowSummary{Logical: map[int]*ShadowTally{}}
	for _, kv := range resp.Kvs {
		var r ShadowReport
		if err := json.Unmarshal(kv.Value, &r); err != nil {
			return ShadowSummary{}, fmt.Errorf("shadow report %s: %w", kv.Key, err)
		}
		for l, t := range r.Logical {
			if sum.Logical[l] == nil {
				sum.Logical[l] = &ShadowTally{}
			}
			sum.Logical[l].Add(*t)
			sum.Total.Add(*t)
		}
		sum.Recent = append(sum.Recent, r.Recent...)
	}
	slices.SortStableFunc(sum.Recent, func(a, b ShadowDifference) int { return a.At.Compare(b.At) })
	if len(sum.Logical) == 0 {
		sum.Logical = nil
	}
	return sum, nil
}

// ShadowGate is when a workflow's write cutover is refused: while shadow
// reads found more than MaxDifferences differences in the last Window.
type ShadowGate struct {
	Window         time.Duration `json:"window"`
	MaxDifferences int           `json:"max_differences"`
}

// DefaultShadowWindow is the gate's window when none was given.
const DefaultShadowWindow = 10 * time.Minute

// Check returns an error that shows the differences when sum holds more
// than the gate allows at now.
func (g ShadowGate) Check(sum ShadowSummary, now time.Time) error {
	window := g.Window
	if window <= 0 {
		window = DefaultShadowWindow
	}
	n := sum.Since(now.Add(-window))
	if n <= g.MaxDifferences {
		return nil
	}
	var recent []ShadowDifference
	for _, d := range sum.Recent {
		if !d.At.Before(now.Add(-window)) {
			recent = append(recent, d)
		}
	}
	msg := fmt.Sprintf("shadow reads found %d differences in the last %s (at most %d allowed):", n, window, g.MaxDifferences)
	for _, d := range recent[max(len(recent)-5, 0):] {
		msg += fmt.Sprintf("\n  %s logical shard %d key %s: source %d rows, target %d: %s", d.At.Format(time.RFC3339), d.Logical, d.Key, d.SourceRows, d.TargetRows, d.SQL)
	}
	return fmt.Errorf("%s", msg)
}

// LogicalOrder returns m's logical shards in order.
func LogicalOrder[V any](m map[int]V) []int { return slices.Sorted(maps.Keys(m)) }
