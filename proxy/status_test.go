package proxy

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/shardgate/shardgate/internal/pgtest"
	"github.com/shardgate/shardgate/topology"
)

// statusGatewayID has markup in it, to see that the page escapes it.
const statusGatewayID = "gw-<b>1</b>"

// statusFixture is a gateway over two real Postgres shards (s0 and s1) and
// a real embedded etcd, with one sharded keyspace (app: 16 logical shards,
// 0-7 on s0 and 8-15 on s1), some traffic through it, and its admin
// handler on a test HTTP server.
type statusFixture struct {
	shards []*pgtest.Cluster
	opts   AdminOptions
	admin  *httptest.Server
}

func startStatusFixture(t *testing.T, token string) *statusFixture {
	t.Helper()
	ctx := t.Context()
	shards, store := startShards(t, "status")
	snap, err := store.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}

	log := zaptest.NewLogger(t, zaptest.Level(zap.ErrorLevel))
	reg := prometheus.NewRegistry()
	pools := NewPools(DefaultPoolConfig, log)
	reg.MustRegister(pools)
	topo := func() *topology.Snapshot { return snap }
	srv := NewServer(Config{Topology: topo, Pools: pools, Log: log, TwoPC: store, GatewayID: "test", Auth: AuthTrust, Metrics: NewMetrics(reg)})
	reg.MustRegister(srv)
	t.Cleanup(pools.Close) // after the server, which closes first
	addr := serveLoopback(t, srv)

	// Traffic that the page must count: single-shard and scatter
	// statements, DDL on every shard, an error of class 22.
	host, port, _ := net.SplitHostPort(addr)
	c, err := pgconn.Connect(ctx, fmt.Sprintf("host=%s port=%s dbname=app user=tester sslmode=disable", host, port))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	for _, sql := range []string{
		"create table users (id bigint primary key, name text)",
		"insert into users (id, name) values (1, 'ann')",
		"insert into users (id, name) values (2, 'bob')",
		"select name from users where id = 1",
		"select count(*) from users",
	} {
		if _, err := c.Exec(ctx, sql).ReadAll(); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	if _, err := c.Exec(ctx, "select 1/0").ReadAll(); code(err) != "22012" {
		t.Fatalf("select 1/0: %v, want 22012", err)
	}
	// The session marks itself idle just after its answer went out.
	deadline := time.Now().Add(10 * time.Second)
	for !sessionsIdle(srv) {
		if time.Now().After(deadline) {
			t.Fatal("the traffic's session never went idle")
		}
		time.Sleep(10 * time.Millisecond) // polling the session's state
	}

	// A workflow planned for the keyspace, for /workflows.
	grow := topology.Workflow{Name: "grow", Keyspace: "app", Moves: []topology.Move{{Logical: 7, From: "s0", To: "s1"}}}
	if err := store.CreateWorkflow(ctx, grow); err != nil {
		t.Fatal(err)
	}
	opts := AdminOptions{Topology: topo, Pools: pools, Gather: reg, Token: token, GatewayID: statusGatewayID, Workflows: store.Workflows}
	admin := httptest.NewServer(AdminHandler(opts))
	t.Cleanup(admin.Close)
	return &statusFixture{shards: shards, opts: opts, admin: admin}
}

// sessionsIdle reports whether every session of srv waits for its client.
func sessionsIdle(srv *Server) bool {
	srv.mu.Lock()
	defer srv.mu.Unlock()
	for _, state := range srv.sessions {
		if state != clientIdle {
			return false
		}
	}
	return true
}

// noRedirects is an HTTP client that shows redirects instead of following
// them, so tests see the login's cookie.
var noRedirects = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

// get fetches base+path with the given header (name, value) pairs and
// returns the response with its body read.
func get(t *testing.T, base, path string, header ...string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, base+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	return do(t, req)
}

func do(t *testing.T, req *http.Request) (*http.Response, string) {
	t.Helper()
	resp, err := noRedirects.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}

func postForm(t *testing.T, base, path string, form url.Values) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, base+path, strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return do(t, req)
}

func statusJSON(t *testing.T, base string, header ...string) statusView {
	t.Helper()
	resp, body := get(t, base, "/status.json", header...)
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("/status.json: %s %q\n%s", resp.Status, resp.Header.Get("Content-Type"), body)
	}
	var v statusView
	if err := json.Unmarshal([]byte(body), &v); err != nil {
		t.Fatalf("/status.json does not parse: %v\n%s", err, body)
	}
	return v
}

func mustContain(t *testing.T, what, body string, parts ...string) {
	t.Helper()
	for _, p := range parts {
		if !strings.Contains(body, p) {
			t.Errorf("%s lacks %q:\n%s", what, p, body)
		}
	}
}

func TestStatusPage(t *testing.T) {
	const token = "status-test-token"
	f := startStatusFixture(t, token)
	base, bearer := f.admin.URL, []string{"Authorization", "Bearer " + token}

	t.Run("token_needed", func(t *testing.T) {
		for _, path := range []string{"/", "/status.json", "/topology", "/metrics", "/debug/pprof/", "/?token=" + token, "/status.json?token=" + token} {
			resp, body := get(t, base, path)
			if resp.StatusCode != http.StatusUnauthorized {
				t.Errorf("%s without the token: %s, want 401", path, resp.Status)
			}
			// Nothing of the gateway's state shows before login.
			if strings.Contains(body, "s0") || strings.Contains(body, strconv.Itoa(f.shards[0].Port)) {
				t.Errorf("%s without the token shows the gateway's state:\n%s", path, body)
			}
			if resp, _ := get(t, base, path, "Authorization", "Bearer wrong"); resp.StatusCode != http.StatusUnauthorized {
				t.Errorf("%s with a wrong token: %s, want 401", path, resp.Status)
			}
		}
		// A browser gets a form to log in with.
		resp, body := get(t, base, "/")
		mustContain(t, "the login page", body, `<form method="post" action="/login">`, `name="token" type="password"`)
		if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/html") {
			t.Errorf("login page Content-Type %q", ct)
		}
		for _, path := range []string{"/healthz", "/readyz"} {
			if resp, body := get(t, base, path); resp.StatusCode != http.StatusOK {
				t.Errorf("%s without the token: %s %s, want 200", path, resp.Status, body)
			}
		}
	})

	t.Run("page", func(t *testing.T) {
		resp, body := get(t, base, "/", bearer...)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("/: %s\n%s", resp.Status, body)
		}
		if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") {
			t.Errorf("Content-Security-Policy %q", csp)
		}
		mustContain(t, "the status page", body,
			"gw-&lt;b&gt;1&lt;/b&gt;", // escaped, never markup
			`<td class="head"><strong>s0</strong></td>`, `<td class="head"><strong>s1</strong></td>`, `<span class="badge up">up</span>`,
			"127.0.0.1:"+strconv.Itoa(f.shards[1].Port),
			"<h3>app</h3>", "sharded", "2 tables", "16 logical shards",
			`<td class="head">0–7</td><td class="head"><strong>s0</strong></td>`, `<td class="head">8–15</td><td class="head"><strong>s1</strong></td>`,
			`<td class="head">s0</td><td class="head nowrap"><code>postgres</code>`, // a pool row
			"superuser", "single_shard", "scatter", "<code>22</code> data exception",
			`href="/status.json"`, `href="/topology"`, `href="/metrics"`, `href="/readyz"`, `href="/healthz"`, `href="/debug/pprof/"`,
			`action="/logout"`)
		if strings.Contains(body, "<b>1</b>") {
			t.Error("the gateway id is not escaped")
		}
		if strings.Contains(body, "badge down") {
			t.Errorf("a shard shows as down:\n%s", body)
		}
	})

	t.Run("json", func(t *testing.T) {
		v := statusJSON(t, base, bearer...)
		if v.Gateway.ID != statusGatewayID || v.Gateway.TopologyRevision == 0 || v.Gateway.Version == "" || v.Gateway.Started.IsZero() {
			t.Errorf("gateway: %+v", v.Gateway)
		}
		if len(v.Shards) != 2 || !v.Shards[0].Up || !v.Shards[1].Up || v.Shards[0].Name != "s0" || !strings.Contains(v.Shards[0].DSN, strconv.Itoa(f.shards[0].Port)) {
			t.Errorf("shards: %+v", v.Shards)
		}
		if len(v.Keyspaces) != 1 {
			t.Fatalf("keyspaces: %+v", v.Keyspaces)
		}
		ks := v.Keyspaces[0]
		if ks.Name != "app" || ks.Kind != "sharded" || ks.LogicalCount != 16 || ks.Tables != 2 || len(ks.Placement) != 2 ||
			ks.Placement[0] != (placementSpan{First: 0, Last: 7, Shard: "s0", MinID: -1 << 63, MaxID: -1}) ||
			ks.Placement[1] != (placementSpan{First: 8, Last: 15, Shard: "s1", MinID: 0, MaxID: 1<<63 - 1}) {
			t.Errorf("keyspace: %+v", ks)
		}
		if len(v.Pools) != 2 || v.Pools[0].Shard != "s0" || v.Pools[0].Acquires == 0 || !v.Pools[0].Superuser {
			t.Errorf("pools: %+v", v.Pools)
		}
		tr := v.Traffic
		if tr.Statements["single_shard"] < 3 || tr.Statements["scatter"] < 1 || tr.Statements["broadcast"] < 1 ||
			tr.Errors["22"] != 1 || tr.ClientConnections["idle"] != 1 || tr.ReceivedBytes == 0 || tr.SentBytes == 0 {
			t.Errorf("traffic: %+v", tr)
		}
		if _, ok := tr.TwoPC["committed"]; !ok {
			t.Errorf("two-phase commits: %+v", tr.TwoPC)
		}
	})

	t.Run("login", func(t *testing.T) {
		resp, body := postForm(t, base, "/login", url.Values{"token": {"wrong"}})
		if resp.StatusCode != http.StatusUnauthorized || len(resp.Cookies()) != 0 {
			t.Fatalf("login with a wrong token: %s %v", resp.Status, resp.Cookies())
		}
		mustContain(t, "a failed login", body, "That is not the admin token.")
		// The token in the URL is never taken.
		if resp, _ := postForm(t, base, "/login?token="+token, nil); resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("login with the token in the URL: %s, want 401", resp.Status)
		}

		resp, _ = postForm(t, base, "/login", url.Values{"token": {token}})
		if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/" || len(resp.Cookies()) != 1 {
			t.Fatalf("login: %s, Location %q, cookies %v", resp.Status, resp.Header.Get("Location"), resp.Cookies())
		}
		c := resp.Cookies()[0]
		if !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || strings.Contains(c.Value, token) || c.MaxAge <= 0 {
			t.Errorf("session cookie %v", c)
		}
		for _, path := range []string{"/", "/status.json", "/debug/pprof/"} {
			if resp, body := get(t, base, path, "Cookie", c.Name+"="+c.Value); resp.StatusCode != http.StatusOK {
				t.Errorf("%s with the session cookie: %s\n%s", path, resp.Status, body)
			}
		}
		forged := c.Value[:len(c.Value)-1] + "A"
		if strings.HasSuffix(c.Value, "A") {
			forged = c.Value[:len(c.Value)-1] + "B"
		}
		if resp, _ := get(t, base, "/", "Cookie", c.Name+"="+forged); resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("/ with a forged cookie: %s, want 401", resp.Status)
		}
		a := adminAuth{token: token}
		if !a.validSession(c.Value, time.Now()) || a.validSession(c.Value, time.Now().Add(adminSessionTTL+time.Minute)) {
			t.Error("the session does not last adminSessionTTL")
		}
		if (adminAuth{token: "another-token"}).validSession(c.Value, time.Now()) {
			t.Error("the session survives a change of the token")
		}

		resp, _ = postForm(t, base, "/logout", nil)
		if resp.StatusCode != http.StatusSeeOther || len(resp.Cookies()) != 1 || resp.Cookies()[0].MaxAge >= 0 {
			t.Errorf("logout: %s %v", resp.Status, resp.Cookies())
		}
	})

	t.Run("without_token", func(t *testing.T) {
		opts := f.opts
		opts.Token = ""
		open := httptest.NewServer(AdminHandler(opts))
		defer open.Close()
		resp, body := get(t, open.URL, "/")
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("/: %s", resp.Status)
		}
		mustContain(t, "the status page", body, `<td class="head"><strong>s0</strong></td>`)
		if strings.Contains(body, "/logout") {
			t.Error("a gateway without a token offers a logout")
		}
		if resp, _ := get(t, open.URL, "/no-such-page"); resp.StatusCode != http.StatusNotFound {
			t.Errorf("/no-such-page: %s, want 404", resp.Status)
		}
	})

	t.Run("workflows", func(t *testing.T) {
		if resp, _ := get(t, base, "/workflows"); resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("/workflows without the token: %s, want 401", resp.Status)
		}
		var all []topology.Workflow
		resp, body := get(t, base, "/workflows", bearer...)
		if err := json.Unmarshal([]byte(body), &all); resp.StatusCode != http.StatusOK || err != nil || len(all) != 1 ||
			all[0].Name != "grow" || all[0].Phase != topology.PhasePlanned || len(all[0].Moves) != 1 || all[0].Moves[0].To != "s1" {
			t.Fatalf("/workflows: %s %v\n%s", resp.Status, err, body)
		}
		resp, body = get(t, base, "/workflows/grow", bearer...)
		if resp.StatusCode != http.StatusOK || !strings.Contains(body, `"keyspace": "app"`) {
			t.Errorf("/workflows/grow: %s\n%s", resp.Status, body)
		}
		if resp, _ := get(t, base, "/workflows/nope", bearer...); resp.StatusCode != http.StatusNotFound {
			t.Errorf("/workflows/nope: %s, want 404", resp.Status)
		}
	})

	// Last: it stops a shard.
	t.Run("shard_down", func(t *testing.T) {
		if err := f.shards[1].Stop(); err != nil {
			t.Fatal(err)
		}
		v := statusJSON(t, base, bearer...)
		if len(v.Shards) != 2 || !v.Shards[0].Up || v.Shards[1].Up || v.Shards[1].Error == "" {
			t.Fatalf("shards with s1 stopped: %+v", v.Shards)
		}
		_, body := get(t, base, "/", bearer...)
		mustContain(t, "the status page with s1 stopped", body,
			`<td class="head"><strong>s1</strong></td>
<td class="head"><span class="badge down">down</span></td>`,
			"shard s1 is down: ", `<td class="head"><strong>s0</strong></td>
<td class="head"><span class="badge up">up</span></td>`,
			"<h3>app</h3>")
	})
}

// TestPprof checks the profiles and a status page without a topology, on
// a gateway with no shards.
func TestPprof(t *testing.T) {
	const token = "pprof-test-token"
	pools := NewPools(DefaultPoolConfig, zap.NewNop())
	defer pools.Close()
	srv := httptest.NewServer(AdminHandler(AdminOptions{
		Topology: func() *topology.Snapshot { return nil }, Pools: pools, Gather: prometheus.NewRegistry(), Token: token,
	}))
	defer srv.Close()
	bearer := []string{"Authorization", "Bearer " + token}

	for _, tc := range []struct{ path, want string }{
		{"/debug/pprof/", "goroutine"},
		{"/debug/pprof/goroutine?debug=1", "goroutine profile"},
		{"/debug/pprof/heap?debug=1", "heap profile"},
		{"/debug/pprof/cmdline", ""},
		{"/debug/pprof/symbol", "num_symbols"},
		{"/debug/pprof/profile?seconds=1", ""},
		{"/debug/pprof/trace?seconds=1", ""},
	} {
		if resp, _ := get(t, srv.URL, tc.path); resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("%s without the token: %s, want 401", tc.path, resp.Status)
		}
		resp, body := get(t, srv.URL, tc.path, bearer...)
		if resp.StatusCode != http.StatusOK || body == "" || !strings.Contains(body, tc.want) {
			t.Errorf("%s: %s, %d bytes, want %q", tc.path, resp.Status, len(body), tc.want)
		}
	}

	v := statusJSON(t, srv.URL, bearer...)
	if v.Gateway.TopologyRevision != 0 || len(v.Warnings) != 1 || !strings.Contains(v.Warnings[0], "not loaded") {
		t.Errorf("status without a topology: %+v", v)
	}
	resp, body := get(t, srv.URL, "/", bearer...)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/: %s", resp.Status)
	}
	mustContain(t, "the status page without a topology", body, "the topology is not loaded yet", "No shards.", "No keyspaces.", "No pools yet")
}
