package proxy

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// metricValue sums the series of metric name whose labels include want:
// counters and gauges by value, histograms by their count of observations.
// found is false when no series matches.
func metricValue(t *testing.T, reg prometheus.Gatherer, name string, want map[string]string) (sum float64, found bool) {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			if !hasLabels(m, want) {
				continue
			}
			found = true
			switch {
			case m.Counter != nil:
				sum += m.Counter.GetValue()
			case m.Gauge != nil:
				sum += m.Gauge.GetValue()
			case m.Histogram != nil:
				sum += float64(m.Histogram.GetSampleCount())
			}
		}
	}
	return sum, found
}

func hasLabels(m *dto.Metric, want map[string]string) bool {
	n := 0
	for _, l := range m.GetLabel() {
		if v, ok := want[l.GetName()]; ok {
			if v != l.GetValue() {
				return false
			}
			n++
		}
	}
	return n == len(want)
}

// TestMetricsMove runs each kind of traffic through a gateway and checks
// that every metric an operator watches is exported and moved.
func TestMetricsMove(t *testing.T) {
	g := startGateway(t, DefaultPoolConfig)
	type series struct {
		name   string
		labels map[string]string
	}
	moving := []series{
		{"shardgate_statements_total", map[string]string{"kind": "single_shard"}},
		{"shardgate_statements_total", map[string]string{"kind": "scatter"}},
		{"shardgate_statements_total", map[string]string{"kind": "broadcast"}},
		{"shardgate_statements_total", map[string]string{"kind": "gateway"}},
		{"shardgate_statements_total", map[string]string{"kind": "refused"}},
		{"shardgate_statement_duration_seconds", map[string]string{"kind": "single_shard"}},
		{"shardgate_statement_duration_seconds", map[string]string{"kind": "scatter"}},
		{"shardgate_errors_total", map[string]string{"class": "22"}},
		{"shardgate_errors_total", map[string]string{"class": "0A"}},
		{"shardgate_client_received_bytes_total", nil},
		{"shardgate_client_sent_bytes_total", nil},
		{"shardgate_pool_acquire_wait_seconds", map[string]string{"shard": "s0"}},
		{"shardgate_pool_acquire_wait_seconds", map[string]string{"shard": "s1"}},
		{"shardgate_twopc_total", map[string]string{"outcome": "committed"}},
		{"shardgate_shard_errors_total", map[string]string{"shard": "dead"}},
		{"shardgate_auth_failures_total", map[string]string{"reason": "unknown_keyspace"}},
	}
	before := map[int]float64{}
	for i, s := range moving {
		before[i], _ = metricValue(t, g.reg, s.name, s.labels)
	}

	c := g.connect(t, "app", "")
	exec(t, c, "insert into users (id, name) values (1, 'a'), (2, 'b'), (3, 'c'), (4, 'd')") // two-phase commit
	exec(t, c, "select name from users where id = 1")
	exec(t, c, "select name from users")
	exec(t, c, "create index users_name on users (name)")
	exec(t, c, "begin; select 1; commit")
	if _, err := c.Exec(t.Context(), "select 1/0 from users where id = 1").ReadAll(); code(err) != "22012" {
		t.Fatalf("division by zero: %v", err)
	}
	if _, err := c.Exec(t.Context(), "select name from users order by id limit 3 for update").ReadAll(); code(err) != "0A000" {
		t.Fatalf("a refused statement: %v", err)
	}
	if _, err := g.connectErr("nosuch"); code(err) != "3D000" {
		t.Fatalf("unknown keyspace: %v", err)
	}
	if _, err := g.connectErr("broken"); code(err) != "08006" {
		t.Fatalf("keyspace on a dead shard: %v", err)
	}

	for i, s := range moving {
		after, found := metricValue(t, g.reg, s.name, s.labels)
		if !found {
			t.Errorf("%s%v is not exported", s.name, s.labels)
			continue
		}
		if after <= before[i] {
			t.Errorf("%s%v did not move: %v before, %v after", s.name, s.labels, before[i], after)
		}
	}

	// Gauges that describe the present.
	c2 := g.connect(t, "app", "")
	exec(t, c2, "begin")
	exec(t, c2, "select name from users where id = 2")
	for _, s := range []struct {
		series
		min float64
	}{
		{series{"shardgate_client_sessions", nil}, 2},
		{series{"shardgate_client_connections", map[string]string{"state": "idle"}}, 1},
		{series{"shardgate_client_connections", map[string]string{"state": "idle_in_transaction"}}, 1},
		{series{"shardgate_pool_connections", map[string]string{"shard": "s0", "state": "open"}}, 1},
		{series{"shardgate_pool_connections", map[string]string{"state": "in_use"}}, 1},
		{series{"shardgate_pool_connections", map[string]string{"state": "idle"}}, 0},
		{series{"shardgate_pool_waiting", map[string]string{"shard": "s0"}}, 0},
		{series{"shardgate_shard_up", map[string]string{"shard": "s0"}}, 1},
		{series{"shardgate_shard_connects_total", map[string]string{"shard": "s0"}}, 1},
		{series{"shardgate_twopc_total", map[string]string{"outcome": "unknown"}}, 0},
		{series{"shardgate_twopc_in_doubt", nil}, 0},
	} {
		// A session marks itself idle just after its answer went out:
		// poll for the gauges to catch up.
		deadline := time.Now().Add(10 * time.Second)
		for {
			v, found := metricValue(t, g.reg, s.name, s.labels)
			if found && v >= s.min {
				break
			}
			if time.Now().After(deadline) {
				t.Errorf("%s%v = %v (exported: %v), want at least %v", s.name, s.labels, v, found, s.min)
				break
			}
			time.Sleep(10 * time.Millisecond) // polling a gauge
		}
	}
	if v, found := metricValue(t, g.reg, "shardgate_shard_up", map[string]string{"shard": "dead"}); found && v != 0 {
		t.Errorf("shardgate_shard_up of the dead shard = %v", v)
	}
	exec(t, c2, "commit")
}

// connectErr opens a session to keyspace ks and returns the error, if any.
func (g *testGateway) connectErr(ks string) (*pgconn.PgConn, error) {
	c, err := pgconn.Connect(context.Background(), g.dsn(ks, ""))
	if err == nil {
		c.Close(context.Background())
	}
	return c, err
}
