package proxy

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"net/http"
	"sort"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/shardgate/shardgate/topology"
)

// AdminHandler serves the gateway's admin HTTP endpoints:
//
//	/healthz   200 while the process runs
//	/readyz    200 once the topology is loaded and every shard answers, else 503
//	/topology  the current topology snapshot as JSON (passwords redacted)
//	/metrics   Prometheus metrics of gather
//
// With a token, every endpoint but the two health checks needs the header
// "Authorization: Bearer <token>"; without one the answer is 401.
func AdminHandler(topo func() *topology.Snapshot, pools *Pools, gather prometheus.Gatherer, token string) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(gather, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		snap := topo()
		if snap == nil {
			http.Error(w, "not ready: topology not loaded yet", http.StatusServiceUnavailable)
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), 3*time.Second)
		defer cancel()
		if err := pools.Ping(ctx, snap); err != nil {
			http.Error(w, "not ready: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte("ready\n"))
	})
	mux.HandleFunc("GET /topology", func(w http.ResponseWriter, r *http.Request) {
		snap := topo()
		if snap == nil {
			http.Error(w, "topology not loaded yet", http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		enc.Encode(topologyView(snap))
	})
	if token == "" {
		return mux
	}
	want := []byte("Bearer " + token)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/healthz" && r.URL.Path != "/readyz" &&
			subtle.ConstantTimeCompare([]byte(r.Header.Get("Authorization")), want) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="shardgate"`)
			http.Error(w, "unauthorized: this endpoint needs the admin token (Authorization: Bearer ...)", http.StatusUnauthorized)
			return
		}
		mux.ServeHTTP(w, r)
	})
}

type shardView struct {
	Name string `json:"name"`
	DSN  string `json:"dsn"`
}

type keyspaceView struct {
	Name         string   `json:"name"`
	Sharded      bool     `json:"sharded"`
	Version      int64    `json:"version"`
	LogicalCount int      `json:"logical_count"`
	Shards       []string `json:"shards"`
	Placement    []string `json:"placement"`
}

type snapshotView struct {
	Revision  int64          `json:"revision"`
	Shards    []shardView    `json:"shards"`
	Keyspaces []keyspaceView `json:"keyspaces"`
}

func topologyView(snap *topology.Snapshot) snapshotView {
	v := snapshotView{Revision: snap.Revision, Shards: []shardView{}, Keyspaces: []keyspaceView{}}
	for _, sh := range snap.Shards {
		v.Shards = append(v.Shards, shardView{Name: sh.Name, DSN: sh.RedactedDSN()})
	}
	sort.Slice(v.Shards, func(i, j int) bool { return v.Shards[i].Name < v.Shards[j].Name })
	for _, ks := range snap.Keyspaces {
		kv := keyspaceView{Name: ks.Name, Version: ks.Map.Version, LogicalCount: ks.Map.LogicalCount, Shards: ks.Shards(), Placement: ks.Map.Placement}
		if vs := ks.VSchema(); vs != nil {
			kv.Sharded = vs.Sharded
		}
		v.Keyspaces = append(v.Keyspaces, kv)
	}
	sort.Slice(v.Keyspaces, func(i, j int) bool { return v.Keyspaces[i].Name < v.Keyspaces[j].Name })
	return v
}
