package proxy

import (
	"github.com/prometheus/client_golang/prometheus"
)

// poolMetrics are the metrics Pools keep as events happen; the gauges of
// pool sizes are read from the pools when scraped (see Collect).
type poolMetrics struct {
	acquireWait *prometheus.HistogramVec
	shardErrors *prometheus.CounterVec
	connects    *prometheus.CounterVec
}

func newPoolMetrics() poolMetrics {
	return poolMetrics{
		acquireWait: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "shardgate_pool_acquire_wait_seconds",
			Help:    "Time to borrow a backend connection, by shard and role (a new connection's connect time included).",
			Buckets: prometheus.ExponentialBuckets(0.00005, 3, 12), // 50µs .. ~9s
		}, []string{"shard", "role"}),
		shardErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shardgate_shard_errors_total",
			Help: "Failures to reach a shard and backend connections lost while in use, by shard.",
		}, []string{"shard"}),
		connects: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shardgate_shard_connects_total",
			Help: "Backend connections opened, by shard: steady growth means connections are being lost and reopened.",
		}, []string{"shard"}),
	}
}

var (
	poolConnsDesc = prometheus.NewDesc("shardgate_pool_connections",
		"Backend connections of a pool by state: open (all), in_use (borrowed by a session) and idle.",
		[]string{"shard", "role", "state"}, nil)
	poolWaitingDesc = prometheus.NewDesc("shardgate_pool_waiting",
		"Sessions waiting for a backend connection of a pool now.", []string{"shard", "role"}, nil)
	shardUpDesc = prometheus.NewDesc("shardgate_shard_up",
		"1 while the gateway reaches a shard, 0 since it last failed to.", []string{"shard"}, nil)
)

// Describe implements prometheus.Collector.
func (p *Pools) Describe(ch chan<- *prometheus.Desc) {
	ch <- poolConnsDesc
	ch <- poolWaitingDesc
	ch <- shardUpDesc
	p.metrics.acquireWait.Describe(ch)
	p.metrics.shardErrors.Describe(ch)
	p.metrics.connects.Describe(ch)
}

// Collect implements prometheus.Collector.
func (p *Pools) Collect(ch chan<- prometheus.Metric) {
	for _, st := range p.Stats() {
		ch <- prometheus.MustNewConstMetric(poolConnsDesc, prometheus.GaugeValue, float64(st.Open), st.Shard, st.Role, "open")
		ch <- prometheus.MustNewConstMetric(poolConnsDesc, prometheus.GaugeValue, float64(st.InUse), st.Shard, st.Role, "in_use")
		ch <- prometheus.MustNewConstMetric(poolConnsDesc, prometheus.GaugeValue, float64(st.Idle), st.Shard, st.Role, "idle")
		ch <- prometheus.MustNewConstMetric(poolWaitingDesc, prometheus.GaugeValue, float64(st.Waiting), st.Shard, st.Role)
	}
	for _, shard := range p.knownShards() {
		up := 1.0
		if _, down := p.health.isDown(shard); down {
			up = 0
		}
		ch <- prometheus.MustNewConstMetric(shardUpDesc, prometheus.GaugeValue, up, shard)
	}
	p.metrics.acquireWait.Collect(ch)
	p.metrics.shardErrors.Collect(ch)
	p.metrics.connects.Collect(ch)
}

var _ prometheus.Collector = (*Pools)(nil)
