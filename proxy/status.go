package proxy

import (
	"bytes"
	"context"
	_ "embed"
	"fmt"
	"html/template"
	"net/http"
	"runtime/debug"
	"sort"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/shardgate/shardgate/topology"
)

// started is when the process started: package initialization runs then,
// so the uptime on the status page is the process's, not the admin
// server's.
var started = time.Now()

//go:embed status.html
var statusHTML string

var statusTemplates = template.Must(template.New("pages").Funcs(template.FuncMap{
	"bytes":         formatBytes,
	"seconds":       func(s int64) time.Duration { return time.Duration(s) * time.Second },
	"sqlstateClass": sqlstateClass,
	"avgWait":       avgWait,
}).Parse(statusHTML))

// statusView is what the status page shows and /status.json returns.
type statusView struct {
	Gateway gatewayView `json:"gateway"`
	// Warnings sum up what an operator should look at first.
	Warnings  []string          `json:"warnings"`
	Shards    []shardStatusView `json:"shards"`
	Keyspaces []keyspaceStatus  `json:"keyspaces"`
	Pools     []PoolStats       `json:"pools"`
	Traffic   trafficView       `json:"traffic"`
	// Logout makes the page offer a logout button: with a token, a
	// browser logs in.
	Logout bool `json:"-"`
}

type gatewayView struct {
	ID      string `json:"id,omitempty"`
	Version string `json:"version"`
	// TopologyRevision is the etcd revision of the topology applied, 0
	// while none is loaded.
	TopologyRevision int64     `json:"topology_revision"`
	Started          time.Time `json:"started"`
	UptimeSeconds    int64     `json:"uptime_seconds"`
}

type shardStatusView struct {
	ShardStatus
	DSN string `json:"dsn"`
}

type keyspaceStatus struct {
	Name string `json:"name"`
	// Kind is sharded, unsharded, or "no vschema" (queries are refused).
	Kind         string          `json:"kind"`
	Pooling      string          `json:"pooling,omitempty"`
	Tables       int             `json:"tables"`
	MapVersion   int64           `json:"map_version"`
	LogicalCount int             `json:"logical_count"`
	Placement    []placementSpan `json:"placement"`
}

// placementSpan is a run of consecutive logical shards on one physical
// shard: a contiguous range of keyspace ids, so a big map stays short.
type placementSpan struct {
	First int    `json:"first"`
	Last  int    `json:"last"`
	Shard string `json:"shard"`
	// MinID and MaxID bound the keyspace ids of the span, both inclusive.
	MinID int64 `json:"min_keyspace_id"`
	MaxID int64 `json:"max_keyspace_id"`
}

// trafficView holds the gateway's counters since it started, read from its
// Prometheus metrics so that the page and /metrics never disagree.
type trafficView struct {
	Statements map[string]int64 `json:"statements"`
	// Errors counts errors sent to clients by SQLSTATE class.
	Errors            map[string]int64 `json:"errors"`
	ClientConnections map[string]int64 `json:"client_connections"`
	ReceivedBytes     int64            `json:"received_bytes"`
	SentBytes         int64            `json:"sent_bytes"`
	TwoPC             map[string]int64 `json:"twopc"`
	TwoPCInDoubt      int64            `json:"twopc_in_doubt"`
}

// status gathers what the status page shows. It checks every shard, so it
// takes up to the health check's timeout when a shard does not answer.
func (o *AdminOptions) status(ctx context.Context) statusView {
	v := statusView{
		Gateway: gatewayView{ID: o.GatewayID, Version: buildVersion(), Started: started.UTC().Truncate(time.Second),
			UptimeSeconds: int64(time.Since(started) / time.Second)},
		Warnings: []string{}, Shards: []shardStatusView{}, Keyspaces: []keyspaceStatus{}, Logout: o.Token != "",
	}
	if snap := o.Topology(); snap == nil {
		v.Warnings = append(v.Warnings, "the topology is not loaded yet")
	} else {
		v.Gateway.TopologyRevision = snap.Revision
		ctx, cancel := context.WithTimeout(ctx, healthCheckTimeout)
		defer cancel()
		for _, st := range o.Pools.Check(ctx, snap) {
			if !st.Up {
				v.Warnings = append(v.Warnings, fmt.Sprintf("shard %s is down: %s", st.Name, st.Error))
			}
			for _, role := range st.SuperuserRoles {
				v.Warnings = append(v.Warnings, fmt.Sprintf("shard %s: the gateway logs in as %q, a superuser role", st.Name, role))
			}
			sv := shardStatusView{ShardStatus: st}
			if sh := snap.Shards[st.Name]; sh != nil {
				sv.DSN = sh.RedactedDSN()
			}
			v.Shards = append(v.Shards, sv)
		}
		v.Keyspaces = keyspaceStatuses(snap)
	}
	// After the check, which opens the pools of shards not used yet.
	v.Pools = o.Pools.Stats()
	var err error
	v.Traffic, err = readTraffic(o.Gather)
	if err != nil {
		v.Warnings = append(v.Warnings, "reading metrics: "+err.Error())
	}
	if n := v.Traffic.TwoPCInDoubt; n > 0 {
		v.Warnings = append(v.Warnings, fmt.Sprintf("%d two-phase commits are in doubt; the resolver finishes them", n))
	}
	return v
}

func keyspaceStatuses(snap *topology.Snapshot) []keyspaceStatus {
	out := make([]keyspaceStatus, 0, len(snap.Keyspaces))
	for _, ks := range snap.Keyspaces {
		st := keyspaceStatus{Name: ks.Name, Kind: "no vschema", MapVersion: ks.Map.Version, LogicalCount: ks.Map.LogicalCount,
			Placement: []placementSpan{}}
		if vs := ks.VSchema(); vs != nil {
			st.Kind, st.Pooling, st.Tables = "unsharded", string(vs.Pooling), len(vs.Tables)
			if vs.Sharded {
				st.Kind = "sharded"
			}
		}
		for i, shard := range ks.Map.Placement {
			lo, hi := ks.Map.Range(i)
			if n := len(st.Placement); n > 0 && st.Placement[n-1].Shard == shard {
				st.Placement[n-1].Last, st.Placement[n-1].MaxID = i, hi
				continue
			}
			st.Placement = append(st.Placement, placementSpan{First: i, Last: i, Shard: shard, MinID: lo, MaxID: hi})
		}
		out = append(out, st)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// readTraffic picks the page's counters out of gather's metrics. Metrics
// that gather lacks read as zero; an error comes with whatever was read.
func readTraffic(gather prometheus.Gatherer) (trafficView, error) {
	t := trafficView{Statements: map[string]int64{}, Errors: map[string]int64{}, ClientConnections: map[string]int64{}, TwoPC: map[string]int64{}}
	families, err := gather.Gather()
	for _, f := range families {
		byLabel, label := map[string]int64(nil), ""
		var total *int64
		switch f.GetName() {
		case "shardgate_statements_total":
			byLabel, label = t.Statements, "kind"
		case "shardgate_errors_total":
			byLabel, label = t.Errors, "class"
		case "shardgate_client_connections":
			byLabel, label = t.ClientConnections, "state"
		case "shardgate_twopc_total":
			byLabel, label = t.TwoPC, "outcome"
		case "shardgate_client_received_bytes_total":
			total = &t.ReceivedBytes
		case "shardgate_client_sent_bytes_total":
			total = &t.SentBytes
		case "shardgate_twopc_in_doubt":
			total = &t.TwoPCInDoubt
		default:
			continue
		}
		for _, m := range f.GetMetric() {
			// A metric is a counter or a gauge; the getters of the other
			// kind read zero.
			n := int64(m.GetCounter().GetValue() + m.GetGauge().GetValue())
			if total != nil {
				*total += n
				continue
			}
			for _, l := range m.GetLabel() {
				if l.GetName() == label {
					byLabel[l.GetValue()] += n
				}
			}
		}
	}
	return t, err
}

// buildVersion describes the running binary from its build information:
// the module version and, for a build from a git checkout, the commit.
var buildVersion = sync.OnceValue(func() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	version := info.Main.Version
	if version == "" {
		version = "(devel)"
	}
	var rev, modified string
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				modified = ", modified"
			}
		}
	}
	if rev != "" {
		version += fmt.Sprintf(" (commit %.12s%s)", rev, modified)
	}
	return version
})

// serveStatus serves the status page, or with asJSON its data.
func (o *AdminOptions) serveStatus(w http.ResponseWriter, r *http.Request, asJSON bool) {
	v := o.status(r.Context())
	noStore(w)
	if asJSON {
		writeJSON(w, v)
		return
	}
	render(w, http.StatusOK, "status", v)
}

// render executes a page template into a buffer first, so that a failure
// gives a clean 500 rather than half a page.
func render(w http.ResponseWriter, code int, name string, data any) {
	var b bytes.Buffer
	if err := statusTemplates.ExecuteTemplate(&b, name, data); err != nil {
		http.Error(w, "rendering the page: "+err.Error(), http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	// The pages have no scripts and take nothing from elsewhere; only their
	// own inline style and forms posting back to the gateway are allowed.
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	w.WriteHeader(code)
	b.WriteTo(w)
}

// noStore keeps browsers and proxies from keeping a copy of a page with
// the gateway's state.
func noStore(w http.ResponseWriter) { w.Header().Set("Cache-Control", "no-store") }

func formatBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

func avgWait(p PoolStats) time.Duration {
	if p.Acquires == 0 {
		return 0
	}
	d := p.AcquireWait / time.Duration(p.Acquires)
	if d > time.Millisecond {
		return d.Round(10 * time.Microsecond)
	}
	return d.Round(time.Microsecond)
}

// sqlstateClass names a SQLSTATE class as PostgreSQL's Appendix A does, for
// the classes a gateway's clients are likely to see.
func sqlstateClass(class string) string {
	switch class {
	case "08":
		return "connection exception"
	case "0A":
		return "feature not supported"
	case "22":
		return "data exception"
	case "23":
		return "integrity constraint violation"
	case "25":
		return "invalid transaction state"
	case "28":
		return "invalid authorization specification"
	case "3D":
		return "invalid catalog name"
	case "40":
		return "transaction rollback"
	case "42":
		return "syntax error or access rule violation"
	case "53":
		return "insufficient resources"
	case "57":
		return "operator intervention"
	case "58":
		return "system error"
	case "XX":
		return "internal error"
	}
	return ""
}
