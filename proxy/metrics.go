package proxy

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the gateway's Prometheus metrics about clients, statements
// and two-phase commits. Pools and Server export the rest as collectors of
// their own. A nil *Metrics counts nothing, so tests can leave it out.
type Metrics struct {
	// AuthFailures counts failed authentications by reason
	// (password, no_grant, unknown_keyspace).
	AuthFailures *prometheus.CounterVec
	// Refused counts connections refused before authentication by reason
	// (too_many_clients, tls_required, protocol).
	Refused *prometheus.CounterVec

	statements *prometheus.CounterVec
	duration   *prometheus.HistogramVec
	// byKind are the statement series of each kind, looked up once.
	byKind   map[StatementKind]kindSeries
	errors   *prometheus.CounterVec
	received prometheus.Counter
	sent     prometheus.Counter
	twopc    *prometheus.CounterVec
	inDoubt  prometheus.Gauge
	pins     *prometheus.CounterVec
}

// StatementKind says where a statement ran, for metrics.
type StatementKind string

// Statement kinds.
const (
	KindSingleShard StatementKind = "single_shard" // one shard
	KindScatter     StatementKind = "scatter"      // several shards, rows combined
	KindBroadcast   StatementKind = "broadcast"    // every copy of the data (DDL, reference tables)
	KindGateway     StatementKind = "gateway"      // answered by the gateway (transaction control, SET)
	KindRefused     StatementKind = "refused"      // refused by the planner
)

// Two-phase commit outcomes, for metrics.
const (
	twopcCommitted = "committed"
	twopcAborted   = "aborted"
	twopcUnknown   = "unknown"
)

// NewMetrics registers the gateway's metrics with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		AuthFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shardgate_auth_failures_total",
			Help: "Client authentications that failed, by reason.",
		}, []string{"reason"}),
		Refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shardgate_connections_refused_total",
			Help: "Client connections refused before authentication, by reason.",
		}, []string{"reason"}),
		statements: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shardgate_statements_total",
			Help: "Client statements by where they ran: single_shard, scatter, broadcast, gateway (answered by the gateway) or refused.",
		}, []string{"kind"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "shardgate_statement_duration_seconds",
			Help:    "Time from a statement's start to its last result row, by kind.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2.5, 14), // 100µs .. ~15s
		}, []string{"kind"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shardgate_errors_total",
			Help: "Errors sent to clients, by SQLSTATE class (the code's first two characters).",
		}, []string{"class"}),
		received: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "shardgate_client_received_bytes_total",
			Help: "Bytes received from clients.",
		}),
		sent: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "shardgate_client_sent_bytes_total",
			Help: "Bytes sent to clients.",
		}),
		twopc: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shardgate_twopc_total",
			Help: "Two-phase commits this gateway coordinated, by outcome: committed, aborted, or unknown (the client was told the outcome is unknown; a resolver finishes it).",
		}, []string{"outcome"}),
		inDoubt: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "shardgate_twopc_in_doubt",
			Help: "Two-phase commit records in etcd not finished yet, as this gateway's resolver last counted them.",
		}),
		pins: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shardgate_session_pins_total",
			Help: "Sessions pinned to a backend connection under transaction pooling, by the state that pinned them.",
		}, []string{"state"}),
	}
	// Known label values start at zero, so dashboards and alerts see the
	// series before the first event.
	m.byKind = map[StatementKind]kindSeries{}
	for _, k := range []StatementKind{KindSingleShard, KindScatter, KindBroadcast, KindGateway, KindRefused} {
		m.byKind[k] = kindSeries{count: m.statements.WithLabelValues(string(k)), duration: m.duration.WithLabelValues(string(k))}
	}
	for _, o := range []string{twopcCommitted, twopcAborted, twopcUnknown} {
		m.twopc.WithLabelValues(o)
	}
	reg.MustRegister(m.AuthFailures, m.Refused, m.statements, m.duration, m.errors, m.received, m.sent, m.twopc, m.inDoubt, m.pins)
	return m
}

// statement counts one statement of kind that took d.
func (m *Metrics) statement(kind StatementKind, d time.Duration) {
	if m == nil {
		return
	}
	s := m.byKind[kind]
	s.count.Inc()
	s.duration.Observe(d.Seconds())
}

type kindSeries struct {
	count    prometheus.Counter
	duration prometheus.Observer
}

// clientError counts an error with SQLSTATE code sent to a client.
func (m *Metrics) clientError(code string) {
	if m == nil || len(code) < 2 {
		return
	}
	m.errors.WithLabelValues(code[:2]).Inc()
}

// traffic counts bytes received from and sent to clients.
func (m *Metrics) traffic(in, out int) {
	if m == nil {
		return
	}
	if in > 0 {
		m.received.Add(float64(in))
	}
	if out > 0 {
		m.sent.Add(float64(out))
	}
}

// twoPhaseCommit counts a two-phase commit's outcome.
func (m *Metrics) twoPhaseCommit(outcome string) {
	if m != nil {
		m.twopc.WithLabelValues(outcome).Inc()
	}
}

// pinned counts a session pinned to its backend for state.
func (m *Metrics) pinned(state string) {
	if m != nil {
		m.pins.WithLabelValues(state).Inc()
	}
}

// setInDoubt records how many two-phase commit records are unfinished.
func (m *Metrics) setInDoubt(n int) {
	if m != nil {
		m.inDoubt.Set(float64(n))
	}
}
