package proxy

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the gateway's Prometheus metrics.
type Metrics struct {
	// AuthFailures counts failed authentications by reason
	// (password, no_grant, unknown_keyspace).
	AuthFailures *prometheus.CounterVec
	// Refused counts connections refused before authentication by reason
	// (too_many_clients, tls_required, protocol).
	Refused *prometheus.CounterVec
}

// NewMetrics registers the gateway's metrics with reg; sessions reports the
// number of connected clients.
func NewMetrics(reg prometheus.Registerer, sessions func() int) *Metrics {
	m := &Metrics{
		AuthFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shardgate_auth_failures_total",
			Help: "Client authentications that failed, by reason.",
		}, []string{"reason"}),
		Refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shardgate_connections_refused_total",
			Help: "Client connections refused before authentication, by reason.",
		}, []string{"reason"}),
	}
	reg.MustRegister(m.AuthFailures, m.Refused, prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "shardgate_client_sessions",
		Help: "Client sessions connected now.",
	}, func() float64 { return float64(sessions()) }))
	return m
}
