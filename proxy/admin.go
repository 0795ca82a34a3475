package proxy

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/pprof"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/shardgate/shardgate/topology"
)

// healthCheckTimeout bounds the shard checks of /readyz and the status page.
const healthCheckTimeout = 3 * time.Second

// AdminOptions are the inputs of AdminHandler.
type AdminOptions struct {
	// Topology returns the current topology snapshot, nil until one is
	// loaded.
	Topology func() *topology.Snapshot
	Pools    *Pools
	// Gather collects what /metrics serves; the status page reads its
	// traffic counters from it too.
	Gather prometheus.Gatherer
	// Token, if set, is needed for every endpoint but /healthz and /readyz.
	Token string
	// GatewayID names this gateway on the status page.
	GatewayID string
	// Workflows reads the reshard workflows from etcd; nil serves none.
	Workflows func(context.Context) ([]topology.Workflow, error)
	// Shadow sums the shadow reads of a workflow over every gateway; nil
	// serves none.
	Shadow func(ctx context.Context, workflow string) (topology.ShadowSummary, error)
}

// AdminHandler serves the gateway's admin HTTP endpoints:
//
//	/              the status page: shards and their health, keyspaces and
//	               placement, pools, traffic and errors (HTML)
//	/status.json   the status page's data as JSON
//	/healthz       200 while the process runs
//	/readyz        200 once the topology is loaded and a shard answers, else
//	               503; the body tells each shard's state and warns of
//	               superuser roles
//	/topology      the current topology snapshot as JSON (passwords redacted)
//	/workflows     the reshard workflows as JSON; /workflows/NAME one of them,
//	               /workflows/NAME/shadow what its shadow reads found
//	/metrics       Prometheus metrics of Gather
//	/debug/pprof/  Go profiles (net/http/pprof)
//
// With a token, every endpoint but the two health checks needs the header
// "Authorization: Bearer <token>" or the cookie a browser gets by posting
// the token to /login from the login form that / shows; without either the
// answer is 401. A token in the URL is never accepted: URLs end up in logs.
func AdminHandler(o AdminOptions) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(o.Gather, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		snap := o.Topology()
		if snap == nil {
			http.Error(w, "not ready: topology not loaded yet", http.StatusServiceUnavailable)
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), healthCheckTimeout)
		defer cancel()
		ready, report := readiness(o.Pools.Check(ctx, snap))
		if !ready {
			http.Error(w, "not ready: no shard answers\n"+report, http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte("ready\n" + report))
	})
	mux.HandleFunc("GET /topology", func(w http.ResponseWriter, r *http.Request) {
		snap := o.Topology()
		if snap == nil {
			http.Error(w, "topology not loaded yet", http.StatusServiceUnavailable)
			return
		}
		writeJSON(w, topologyView(snap))
	})
	mux.HandleFunc("GET /workflows", func(w http.ResponseWriter, r *http.Request) {
		all, ok := o.workflows(w, r)
		if ok {
			writeJSON(w, all)
		}
	})
	mux.HandleFunc("GET /workflows/{name}", func(w http.ResponseWriter, r *http.Request) {
		all, ok := o.workflows(w, r)
		if !ok {
			return
		}
		for _, wf := range all {
			if wf.Name == r.PathValue("name") {
				writeJSON(w, wf)
				return
			}
		}
		http.Error(w, "no workflow "+r.PathValue("name"), http.StatusNotFound)
	})
	mux.HandleFunc("GET /workflows/{name}/shadow", func(w http.ResponseWriter, r *http.Request) {
		sum := topology.ShadowSummary{}
		if o.Shadow != nil {
			ctx, cancel := context.WithTimeout(r.Context(), healthCheckTimeout)
			defer cancel()
			var err error
			if sum, err = o.Shadow(ctx, r.PathValue("name")); err != nil {
				http.Error(w, "reading the shadow reads: "+err.Error(), http.StatusServiceUnavailable)
				return
			}
		}
		writeJSON(w, sum)
	})
	// "GET /{$}" is the root alone; other unknown paths stay 404.
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) { o.serveStatus(w, r, false) })
	mux.HandleFunc("GET /status.json", func(w http.ResponseWriter, r *http.Request) { o.serveStatus(w, r, true) })
	// Registered here explicitly: importing net/http/pprof also registers
	// these on http.DefaultServeMux, which the gateway never serves.
	mux.HandleFunc("GET /debug/pprof/", pprof.Index)
	mux.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("POST /debug/pprof/symbol", pprof.Symbol) // go tool pprof posts addresses to look up
	mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	if o.Token == "" {
		return mux
	}
	a := adminAuth{token: o.Token}
	mux.HandleFunc("POST /login", a.login)
	mux.HandleFunc("POST /logout", a.logout)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/healthz", "/readyz", "/login", "/logout":
			mux.ServeHTTP(w, r)
			return
		}
		if a.allowed(r) {
			mux.ServeHTTP(w, r)
			return
		}
		w.Header().Set("WWW-Authenticate", `Bearer realm="shardgate"`)
		if r.URL.Path == "/" && r.Method == http.MethodGet {
			// A browser gets a form to enter the token, since it cannot
			// send the header by itself.
			noStore(w)
			render(w, http.StatusUnauthorized, "login", loginPage{})
			return
		}
		http.Error(w, "unauthorized: this endpoint needs the admin token (Authorization: Bearer ...)", http.StatusUnauthorized)
	})
}

// adminSessionTTL is how long a browser stays logged in to the admin pages.
const adminSessionTTL = 12 * time.Hour

// adminCookie is the cookie of a browser's admin session.
const adminCookie = "shardgate_admin"

// adminAuth checks the admin token. A browser session's cookie holds its
// expiry and a MAC of it keyed by the token, not the token itself: it
// expires, it ends when the token changes, and every gateway with the same
// token accepts it without keeping any session state.
type adminAuth struct{ token string }

// allowed reports whether r carries the token in its Authorization header
// or, without one, a valid session cookie.
func (a adminAuth) allowed(r *http.Request) bool {
	if h := r.Header.Get("Authorization"); h != "" {
		return subtle.ConstantTimeCompare([]byte(h), []byte("Bearer "+a.token)) == 1
	}
	c, err := r.Cookie(adminCookie)
	return err == nil && a.validSession(c.Value, time.Now())
}

func (a adminAuth) session(expires time.Time) string {
	exp := strconv.FormatInt(expires.Unix(), 10)
	return exp + "." + a.mac(exp)
}

func (a adminAuth) mac(exp string) string {
	m := hmac.New(sha256.New, []byte(a.token))
	m.Write([]byte("shardgate admin session " + exp))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

func (a adminAuth) validSession(v string, now time.Time) bool {
	exp, mac, ok := strings.Cut(v, ".")
	if !ok {
		return false
	}
	unix, err := strconv.ParseInt(exp, 10, 64)
	if err != nil || now.Unix() >= unix {
		return false
	}
	return hmac.Equal([]byte(mac), []byte(a.mac(exp)))
}

// loginPage is the data of the login form.
type loginPage struct{ Failed bool }

// login takes the token from the login form's body (never from the URL)
// and gives the browser a session cookie. The cookie is SameSite=Strict, so
// another site cannot make the browser use it (to start a CPU profile, say).
func (a adminAuth) login(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 4096)
	noStore(w)
	token := strings.TrimSpace(r.PostFormValue("token"))
	if subtle.ConstantTimeCompare([]byte(token), []byte(a.token)) != 1 {
		w.Header().Set("WWW-Authenticate", `Bearer realm="shardgate"`)
		render(w, http.StatusUnauthorized, "login", loginPage{Failed: true})
		return
	}
	expires := time.Now().Add(adminSessionTTL)
	http.SetCookie(w, &http.Cookie{Name: adminCookie, Value: a.session(expires), Path: "/", Expires: expires,
		MaxAge: int(adminSessionTTL / time.Second), HttpOnly: true, Secure: r.TLS != nil, SameSite: http.SameSiteStrictMode})
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

func (a adminAuth) logout(w http.ResponseWriter, r *http.Request) {
	http.SetCookie(w, &http.Cookie{Name: adminCookie, Path: "/", MaxAge: -1, HttpOnly: true, Secure: r.TLS != nil, SameSite: http.SameSiteStrictMode})
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

// writeJSON writes v as indented JSON.
// workflows reads the workflows for a request, answering it with the
// error if that fails.
func (o AdminOptions) workflows(w http.ResponseWriter, r *http.Request) ([]topology.Workflow, bool) {
	if o.Workflows == nil {
		return []topology.Workflow{}, true
	}
	ctx, cancel := context.WithTimeout(r.Context(), healthCheckTimeout)
	defer cancel()
	all, err := o.Workflows(ctx)
	if err != nil {
		http.Error(w, "reading the workflows: "+err.Error(), http.StatusServiceUnavailable)
		return nil, false
	}
	return all, true
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
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

// readiness judges a gateway ready while any shard answers: work that any
// shard can do (logins, catalog reads) still succeeds, and every gateway
// would see the same shard down, so a load balancer gains nothing by
// taking gateways out. The report has a line per shard.
func readiness(shards []ShardStatus) (bool, string) {
	var b strings.Builder
	ready := len(shards) == 0
	for _, st := range shards {
		if st.Up {
			ready = true
			fmt.Fprintf(&b, "shard %s: up\n", st.Name)
		} else {
			fmt.Fprintf(&b, "shard %s: down: %s\n", st.Name, st.Error)
		}
		for _, role := range st.SuperuserRoles {
			fmt.Fprintf(&b, "warning: shard %s: the gateway logs in as role %q, a superuser; use a role that is not\n", st.Name, role)
		}
	}
	return ready, b.String()
}
