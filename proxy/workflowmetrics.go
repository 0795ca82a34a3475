package proxy

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/shardgate/shardgate/topology"
)

// workflowMetrics exports the reshard workflows as their etcd records
// stand at each scrape: every gateway serves the same, whichever process
// drives a workflow.
type workflowMetrics struct {
	workflows func(context.Context) ([]topology.Workflow, error)
}

// NewWorkflowMetrics returns a Prometheus collector of the reshard
// workflows that workflows reads.
func NewWorkflowMetrics(workflows func(context.Context) ([]topology.Workflow, error)) prometheus.Collector {
	return &workflowMetrics{workflows: workflows}
}

var (
	reshardPhase = prometheus.NewDesc("shardgate_reshard_phase",
		"1 for the phase a reshard workflow is in.", []string{"workflow", "phase"}, nil)
	reshardCopiedRows = prometheus.NewDesc("shardgate_reshard_copied_rows",
		"Rows a reshard workflow copied, per source and table.", []string{"workflow", "source", "table"}, nil)
	reshardCopiedBytes = prometheus.NewDesc("shardgate_reshard_copied_bytes",
		"Bytes a reshard workflow copied (as COPY sent them), per source and table.", []string{"workflow", "source", "table"}, nil)
	reshardLagBytes = prometheus.NewDesc("shardgate_reshard_lag_bytes",
		"How far a reshard workflow's change stream is behind its source's WAL, as last recorded.", []string{"workflow", "stream"}, nil)
	reshardLagSeconds = prometheus.NewDesc("shardgate_reshard_lag_seconds",
		"Seconds from a source commit to the targets' commit of the last transaction a stream applied, 0 when caught up.", []string{"workflow", "stream"}, nil)
	reshardApplied = prometheus.NewDesc("shardgate_reshard_applied_changes",
		"Row changes a reshard workflow's change stream applied.", []string{"workflow", "stream"}, nil)
	reshardBatches = prometheus.NewDesc("shardgate_reshard_batches",
		"A reshard workflow's cutover batches, by state.", []string{"workflow", "state"}, nil)
	reshardPause = prometheus.NewDesc("shardgate_reshard_cutover_pause_seconds",
		"How long writes to a cutover batch were held, from its fence until every gateway applied the new placement.", []string{"workflow"}, nil)
)

// pauseBuckets are the upper bounds of the cutover pause histogram.
var pauseBuckets = []float64{0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5}

func (m *workflowMetrics) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{reshardPhase, reshardCopiedRows, reshardCopiedBytes, reshardLagBytes, reshardLagSeconds, reshardApplied, reshardBatches, reshardPause} {
		ch <- d
	}
}

func (m *workflowMetrics) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	all, err := m.workflows(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(reshardPhase, err)
		return
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	for _, w := range all {
		gauge(reshardPhase, 1, w.Name, string(w.Phase))
		streams := map[string]*topology.SourceProgress{}
		for source, p := range w.Sources {
			streams[source] = p
			for table, c := range p.Copied {
				gauge(reshardCopiedRows, float64(c.Rows), w.Name, source, table)
				gauge(reshardCopiedBytes, float64(c.Bytes), w.Name, source, table)
			}
		}
		for target, p := range w.Reverse {
			streams["reverse:"+target] = p
		}
		for name, p := range streams {
			if !p.Seeded {
				continue
			}
			gauge(reshardLagBytes, float64(p.LagBytes), w.Name, name)
			gauge(reshardLagSeconds, p.LagSeconds, w.Name, name)
			ch <- prometheus.MustNewConstMetric(reshardApplied, prometheus.CounterValue, float64(p.Applied), w.Name, name)
		}
		states := map[string]float64{"waiting": 0, "cut_over": 0, "moved_back": 0}
		buckets := map[float64]uint64{}
		var count uint64
		var sum float64
		observe := func(ms float64) {
			s := ms / 1000
			count++
			sum += s
			for _, b := range pauseBuckets {
				if s <= b {
					buckets[b]++
				}
			}
		}
		for _, b := range w.Batches {
			switch {
			case b.Done:
				states["cut_over"]++
			case b.Reversed:
				states["moved_back"]++
			default:
				states["waiting"]++
			}
			if b.Done || b.Reversed {
				observe(b.PauseMS)
			}
			if b.Reversed {
				observe(b.ReversePauseMS)
			}
		}
		for state, n := range states {
			gauge(reshardBatches, n, w.Name, state)
		}
		ch <- prometheus.MustNewConstHistogram(reshardPause, count, sum, buckets, w.Name)
	}
}
