package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/shardgate/shardgate/internal/pgtest"
	"github.com/shardgate/shardgate/internal/syncbuf"
	"github.com/shardgate/shardgate/migrate"
)

// reshardVSchema has three tables sharded by the account and a reference
// table.
const reshardVSchema = `keyspaces:
  app:
    sharded: true
    tables:
      accounts: {column: id, type: bigint}
      entries: {column: account_id, type: bigint}
      notes: {column: account_id, type: bigint}
      currencies: {kind: reference}
`

const reshardAccounts = 50000

// clientPace is the interval between a workload client's writes.
const clientPace = 5 * time.Millisecond

// reshardToken is the first gateway's admin token, for its /metrics.
const reshardToken = "reshard-test-token"

// reshardEnv is keyspace app, 64 logical shards over s0 and s1, with
// 200,000 rows, two gateways, and the empty shards s2 and s3.
type reshardEnv struct {
	*env
	gws []*gateway
}

func newReshardEnv(t *testing.T, gatewayArgs ...string) *reshardEnv {
	return newReshardEnvWith(t, nil, gatewayArgs...)
}

// newReshardEnvWith is newReshardEnv with the shards' server settings.
func newReshardEnvWith(t *testing.T, settings map[string]string, gatewayArgs ...string) *reshardEnv {
	e := &reshardEnv{env: &env{t: t, shards: pgtest.StartWith(t, 4, settings), etcdDir: t.TempDir()}}
	e.startEtcd("")
	for i, c := range e.shards {
		e.shardctl(0, "shard", "add", fmt.Sprintf("s%d", i), "--dsn", c.DSN("postgres"))
	}
	e.shardctl(0, "keyspace", "create", "app", "--logical-shards", "64", "--shards", "s0,s1")
	file := filepath.Join(t.TempDir(), "vschema.yaml")
	if err := os.WriteFile(file, []byte(reshardVSchema), 0o600); err != nil {
		t.Fatal(err)
	}
	e.shardctl(0, "vschema", "apply", file)
	for i := range 2 {
		lo, hi := migrate.KeyRange(64, i*32, i*32+31)
		mustQuery(t, e.backend(i), fmt.Sprintf(`create table accounts (id bigint primary key, balance bigint not null default 0);
create table entries (id bigint primary key, account_id bigint not null, amount bigint not null);
create index on entries (account_id);
create table notes (account_id bigint, seq int, body text, primary key (account_id, seq));
create table currencies (code text primary key, name text not null);
insert into accounts select g, 0 from generate_series(1, %[1]d) g where hashint8extended(g, 0) between %[2]d and %[3]d;
insert into entries select g, g %% %[1]d + 1, 0 from generate_series(1, %[4]d) g where hashint8extended(g %% %[1]d + 1, 0) between %[2]d and %[3]d;
insert into notes select g, 1, 'note ' || g from generate_series(1, %[1]d) g where hashint8extended(g, 0) between %[2]d and %[3]d;
insert into currencies values ('eur', 'euro'), ('usd', 'dollar');
analyze`, reshardAccounts, lo, hi, 2*reshardAccounts))
	}
	e.gws = []*gateway{startGateway(t, e.etcd.Endpoints(), append([]string{"--admin-token", reshardToken}, gatewayArgs...)...), startGateway(t, e.etcd.Endpoints(), gatewayArgs...)}
	return e
}

// workload is clients writing through the gateways and what they were
// told was done.
type workload struct {
	t    *testing.T
	stop chan struct{}
	wg   sync.WaitGroup

	mu       sync.Mutex
	inserted map[int64]int64 // entry id: its account
	deleted  map[int64]bool
	balance  map[int64]int64 // account: the sum of its acknowledged increments
	currency string          // the name of 'eur' last acknowledged
	acked    int
	errors   []string
	// base numbers the clients after those of the workloads before.
	base, clients int
}

// run starts n clients spread over the gateways, each with its own mix of
// single-row writes (simple and extended protocol) and transactions that
// move amounts between two accounts, usually on two shards.
func (e *reshardEnv) run(n int) *workload { return e.runAfter(nil, n) }

// runAfter is run for a workload that takes over from before, which
// ended: it knows what before was told, and its clients insert ids of
// their own.
func (e *reshardEnv) runAfter(before *workload, n int) *workload {
	w := &workload{t: e.t, stop: make(chan struct{}), inserted: map[int64]int64{}, deleted: map[int64]bool{}, balance: map[int64]int64{}}
	if before != nil {
		w.inserted, w.deleted, w.balance, w.currency = before.inserted, before.deleted, before.balance, before.currency
		w.base = before.base + before.clients
	}
	w.clients = n
	for c := range n {
		conn := e.gws[c%len(e.gws)].connect("app")
		w.wg.Go(func() { w.client(w.base+c, conn) })
	}
	for r, g := range e.gws {
		conn := g.connect("app")
		w.wg.Go(func() { w.reader(r, len(e.gws), conn) })
	}
	return w
}

// reader r of n runs statements over every shard, or over keys on
// several, until the workload stops: the answers must stay exact while
// the shards hold copies of logical shards they do not own (a target
// during the copy, a source after the cutover). Its writes go to
// accounts of its own: two writes over the same rows of two shards can
// wait for each other on both, which no shard sees as a deadlock.
func (w *workload) reader(r, n int, conn *pgconn.PgConn) {
	rng := rand.New(rand.NewPCG(uint64(r), 7))
	share := int64(reshardAccounts / n)
	// want runs sql and compares its rows, joined, with expected; the
	// rows of a statement without ORDER BY are sorted by their first
	// column first.
	want := func(sql, expected string) bool {
		rows, err := query(conn, sql)
		if !strings.Contains(sql, "order by") {
			slices.SortFunc(rows, func(x, y []string) int {
				a, _ := strconv.ParseInt(x[0], 10, 64)
				b, _ := strconv.ParseInt(y[0], 10, 64)
				return int(a - b)
			})
		}
		var got []string
		for _, r := range rows {
			got = append(got, strings.Join(r, ","))
		}
		if err == nil && strings.Join(got, " ") == expected {
			return true
		}
		w.mu.Lock()
		defer w.mu.Unlock()
		if err != nil {
			w.errors = append(w.errors, fmt.Sprintf("%s: %v", sql, err))
		} else {
			w.errors = append(w.errors, fmt.Sprintf("%s: got %.200s, want %.200s", sql, strings.Join(got, " "), expected))
		}
		return false
	}
	for {
		select {
		case <-w.stop:
			return
		default:
		}
		a := int64(r)*share + rng.Int64N(share-20) + 1
		ids := []string{}
		for i := a; i < a+20; i++ {
			ids = append(ids, strconv.FormatInt(i, 10))
		}
		three := fmt.Sprintf("%d, %d, %d", a, a+7, a+13)
		ok := want("select count(*), sum(id) from accounts", fmt.Sprintf("%d,%d", reshardAccounts, reshardAccounts*(reshardAccounts+1)/2)) &&
			want("select count(*) from notes n join accounts a on a.id = n.account_id", strconv.Itoa(reshardAccounts)) &&
			want(fmt.Sprintf("select id from accounts where id between %d and %d order by id", a, a+19), strings.Join(ids, " ")) &&
			want(fmt.Sprintf("select account_id from notes where account_id in (%s) order by 1", three), strings.ReplaceAll(three, ", ", " ")) &&
			want(fmt.Sprintf("update notes set seq = seq where account_id in (%s) returning account_id", three), strings.ReplaceAll(three, ", ", " "))
		if !ok {
			return
		}
		// A round reads every shard's tables whole: one per hundred
		// writes keeps the shards' cores for the writes and the streams.
		for target := w.count() + 100; w.count() < target; {
			select {
			case <-w.stop:
				return
			case <-time.After(10 * time.Millisecond): // polling the writers' progress
			}
		}
	}
}

func (w *workload) client(c int, conn *pgconn.PgConn) {
	rng := rand.New(rand.NewPCG(uint64(c), 11))
	var mine []int64 // entries this client inserted and did not delete
	next := int64(c+1) * 1_000_000_000
	// A steady rate, which the change streams keep up with even while
	// other tests share this machine's two cores: a workload that outruns
	// them would hold a cutover back until it times out, as it should.
	pace := time.NewTicker(clientPace)
	defer pace.Stop()
	for i := 0; ; i++ {
		select {
		case <-w.stop:
			return
		case <-pace.C:
		}
		acct := rng.Int64N(reshardAccounts) + 1
		var err error
		switch op := rng.IntN(10); {
		case op < 3:
			next++
			id := next
			_, err = conn.ExecParams(context.Background(), "insert into entries (id, account_id, amount) values ($1, $2, 1)",
				[][]byte{[]byte(strconv.FormatInt(id, 10)), []byte(strconv.FormatInt(acct, 10))}, nil, nil, nil).Close()
			if err == nil {
				w.note(func() { w.inserted[id] = acct })
				mine = append(mine, id)
			}
		case op < 6:
			k := rng.Int64N(9) + 1
			_, err = conn.Exec(context.Background(), fmt.Sprintf("update accounts set balance = balance + %d where id = %d", k, acct)).ReadAll()
			if err == nil {
				w.note(func() { w.balance[acct] += k })
			}
		case op < 7 && len(mine) > 0:
			j := rng.IntN(len(mine))
			id := mine[j]
			acctOf := w.accountOf(id)
			_, err = conn.Exec(context.Background(), fmt.Sprintf("delete from entries where account_id = %d and id = %d", acctOf, id)).ReadAll()
			if err == nil {
				mine = append(mine[:j], mine[j+1:]...)
				w.note(func() { w.deleted[id] = true })
			}
		case op < 9:
			to := rng.Int64N(reshardAccounts) + 1
			k := rng.Int64N(9) + 1
			next++
			id := next
			_, err = conn.Exec(context.Background(), fmt.Sprintf(`begin;
update accounts set balance = balance - %[1]d where id = %[2]d;
update accounts set balance = balance + %[1]d where id = %[3]d;
insert into entries (id, account_id, amount) values (%[4]d, %[3]d, %[1]d);
commit`, k, acct, to, id)).ReadAll()
			if err == nil {
				w.note(func() { w.balance[acct] -= k; w.balance[to] += k; w.inserted[id] = to })
				mine = append(mine, id)
			}
		default:
			if c != 0 {
				continue // one client names the currency, so its last name is known
			}
			name := fmt.Sprintf("euro %d", i)
			_, err = conn.Exec(context.Background(), "update currencies set name = '"+name+"' where code = 'eur'").ReadAll()
			if err == nil {
				w.note(func() { w.currency = name })
			}
		}
		if err != nil {
			w.mu.Lock()
			w.errors = append(w.errors, err.Error())
			w.mu.Unlock()
			return
		}
	}
}

func (w *workload) note(f func()) {
	w.mu.Lock()
	defer w.mu.Unlock()
	f()
	w.acked++
}

func (w *workload) accountOf(id int64) int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.inserted[id]
}

func (w *workload) count() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.acked
}

// waitFor lets the clients acknowledge n more writes.
func (w *workload) waitFor(n int) {
	for target := w.count() + n; w.count() < target; {
		w.mu.Lock()
		failed := len(w.errors) > 0
		w.mu.Unlock()
		if failed {
			return
		}
		time.Sleep(10 * time.Millisecond) // polling the clients' progress
	}
}

func (w *workload) end() {
	close(w.stop)
	w.wg.Wait()
	for _, e := range w.errors {
		w.t.Errorf("a client saw: %s", e)
	}
}

// check asserts, through a gateway (routing by the final map), that every
// acknowledged insert is there once and no deleted entry is, that every
// balance is the sum of its acknowledged increments, and that the first
// members shards (those of the keyspace) have the currency's last name.
func (e *reshardEnv) check(w *workload, members int) {
	t := e.t
	conn := e.gws[0].connect("app")
	rows := mustQuery(t, conn, "select id, account_id from entries where id >= 1000000000")
	seen := map[int64]int64{}
	for _, r := range rows {
		id, _ := strconv.ParseInt(r[0], 10, 64)
		acct, _ := strconv.ParseInt(r[1], 10, 64)
		if _, twice := seen[id]; twice {
			t.Errorf("entry %d is there twice", id)
		}
		seen[id] = acct
	}
	missing, back := 0, 0
	for id, acct := range w.inserted {
		got, ok := seen[id]
		switch {
		case w.deleted[id] && ok:
			back++
		case !w.deleted[id] && (!ok || got != acct):
			missing++
		}
	}
	if extra := len(seen) - (len(w.inserted) - len(w.deleted) - back); missing > 0 || back > 0 || extra+missing != 0 {
		t.Errorf("entries: %d acknowledged inserts missing, %d deleted ones back, %d never acknowledged there (of %d inserted, %d deleted)", missing, back, extra+missing, len(w.inserted), len(w.deleted))
	}
	wrong := 0
	for _, r := range mustQuery(t, conn, "select id, balance from accounts") {
		id, _ := strconv.ParseInt(r[0], 10, 64)
		bal, _ := strconv.ParseInt(r[1], 10, 64)
		if bal != w.balance[id] {
			if wrong++; wrong <= 5 {
				t.Errorf("account %d: balance %d, acknowledged increments sum to %d", id, bal, w.balance[id])
			}
		}
	}
	if n := len(mustQuery(t, conn, "select id from accounts")); n != reshardAccounts {
		t.Errorf("%d accounts through the gateway, want %d", n, reshardAccounts)
	}
	var copied strings.Builder
	if _, err := conn.CopyTo(context.Background(), &copied, "copy accounts (id) to stdout"); err != nil {
		t.Errorf("copy accounts to stdout: %v", err)
	} else if n := strings.Count(copied.String(), "\n"); n != reshardAccounts {
		t.Errorf("copy accounts to stdout gave %d rows, want %d", n, reshardAccounts)
	}
	if w.currency != "" {
		for i := range members {
			if got := mustQuery(t, e.backend(i), "select name from currencies where code = 'eur'"); got[0][0] != w.currency {
				t.Errorf("shard s%d: currency eur is named %q, the last acknowledged name is %q", i, got[0][0], w.currency)
			}
		}
	}
}

// ownRowsOnly asserts that the targets hold only rows of the logical
// shards the final map places on them.
func (e *reshardEnv) ownRowsOnly() {
	out, _ := e.shardctl(0, "topology", "show", "app")
	for i := 2; i < 4; i++ {
		shard := fmt.Sprintf("s%d", i)
		var in []string
		for _, line := range strings.Split(out, "\n") {
			f := strings.Fields(line)
			if len(f) == 0 || f[len(f)-1] != shard {
				continue
			}
			first, last, ok := strings.Cut(f[0], "-")
			if !ok {
				last = first
			}
			a, _ := strconv.Atoi(first)
			b, _ := strconv.Atoi(last)
			lo, hi := migrate.KeyRange(64, a, b)
			in = append(in, fmt.Sprintf("hashint8extended(%%s, 0) between %d and %d", lo, hi))
		}
		if len(in) == 0 {
			e.t.Fatalf("no logical shards on %s after the cutover:\n%s", shard, out)
		}
		for table, col := range map[string]string{"accounts": "id", "entries": "account_id", "notes": "account_id"} {
			cond := strings.ReplaceAll(strings.Join(in, " or "), "%s", col)
			got := mustQuery(e.t, e.backend(i), fmt.Sprintf("select count(*) filter (where not (%s)), count(*) from %s", cond, table))
			if got[0][0] != "0" || got[0][1] == "0" {
				e.t.Errorf("%s on %s: %s of %s rows belong elsewhere", table, shard, got[0][0], got[0][1])
			}
		}
	}
}

// sameSchema asserts that every shard has the same columns and indexes.
func (e *reshardEnv) sameSchema() {
	const schema = `select string_agg(table_name || '.' || column_name || ' ' || data_type || ' ' || is_nullable || ' ' || coalesce(column_default, ''), ', ' order by table_name, ordinal_position)
from information_schema.columns where table_schema = 'public'
union all select string_agg(indexdef, ', ' order by indexdef) from pg_indexes where schemaname = 'public'`
	want := mustQuery(e.t, e.backend(0), schema)
	for i := 1; i < len(e.shards); i++ {
		if got := mustQuery(e.t, e.backend(i), schema); !slices.EqualFunc(got, want, slices.Equal) {
			e.t.Errorf("shard s%d's schema:\n%v\nshard s0's:\n%v", i, got, want)
		}
	}
}

// movedChecksum sums what the sources hold of the logical shards that
// moved: it must not change once writes go to the targets.
func (e *reshardEnv) movedChecksum() string {
	var parts []string
	for i := range 2 {
		lo, hi := migrate.KeyRange(64, i*32+16, i*32+31)
		r := mustQuery(e.t, e.backend(i), fmt.Sprintf(`select (select coalesce(sum(hashtext(a::text)), 0) from accounts a where hashint8extended(id, 0) between %[1]d and %[2]d),
(select coalesce(sum(hashtext(x::text)), 0) from entries x where hashint8extended(account_id, 0) between %[1]d and %[2]d)`, lo, hi))
		parts = append(parts, r[0][0], r[0][1])
	}
	return strings.Join(parts, " ")
}

// controller starts 'shardctl reshard start' for workflow name, with env
// added to its environment.
func (e *reshardEnv) controller(name string, env ...string) (*exec.Cmd, *syncbuf.Buffer) {
	out := &syncbuf.Buffer{}
	cmd := exec.Command(filepath.Join(binDir, "shardctl"), "--etcd", strings.Join(e.etcd.Endpoints(), ","), "reshard", "start", name, "--lock-ttl", "2s")
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
		if e.t.Failed() {
			e.t.Logf("shardctl reshard start:\n%s", out.String())
		}
	})
	return cmd, out
}

// waitPhase polls 'reshard show' until the workflow is in phase.
func (e *reshardEnv) waitPhase(name, phase string) {
	eventually(e.t, 3*time.Minute, "workflow "+name+" in phase "+phase, func() bool {
		out, _ := e.shardctl(0, "reshard", "show", name)
		return strings.Contains(out, "phase:") && hasField(out, "phase:", phase)
	})
}

func hasField(out, key, value string) bool {
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) == 2 && f[0] == key && f[1] == value {
			return true
		}
	}
	return false
}

// TestReshardUnderLoad grows keyspace app from two shards to four while
// clients write through two gateways the whole time: copy, catch-up and a
// write cutover in batches. Every acknowledged write is then where the
// final map says, exactly once, no client saw an error, and once the
// writes moved the old place of the moved logical shards is not written
// any more.
func TestReshardUnderLoad(t *testing.T) {
	e := newReshardEnv(t)
	w := e.run(4)
	w.waitFor(200)
	e.shardctl(0, "reshard", "create", "grow", "--keyspace", "app", "--to", "s2,s3", "--apply")
	start := time.Now()
	ctl, ctlOut := e.controller("grow")
	e.waitPhase("grow", "catching_up")
	t.Logf("copied in %s while the clients wrote", time.Since(start).Round(time.Millisecond))
	w.waitFor(500)

	// A row changed on a target behind the workflow's back is found,
	// with its key; once it is put back, verify is clean.
	note := mustQuery(t, e.backend(2), "select account_id, seq, body from notes limit 1")[0]
	mustQuery(t, e.backend(2), fmt.Sprintf("update notes set body = 'changed' where account_id = %s and seq = %s", note[0], note[1]))
	out, stderr := e.shardctl(1, "reshard", "verify", "grow")
	if want := fmt.Sprintf("differs: notes %s,%s: different", note[0], note[1]); !strings.Contains(out, want) || !strings.Contains(stderr, "1 rows differ") {
		t.Errorf("verify after a change on the target printed\n%s%s\nwant %q", out, stderr, want)
	}
	mustQuery(t, e.backend(2), fmt.Sprintf("update notes set body = '%s' where account_id = %s and seq = %s", note[2], note[0], note[1]))
	out, _ = e.shardctl(0, "reshard", "verify", "grow")
	t.Logf("verify while catching up:\n%s", out)

	// Schema changes the streams carry run on the sources and the targets
	// alike while the clients write; others wait for the workflow.
	ddl := e.gws[1].connect("app")
	mustQuery(t, ddl, "alter table entries add column memo text not null default 'm'")
	// On entries, which each transaction writes on one shard (DDL on
	// notes, which the readers update on several, could deadlock with
	// them across shards).
	mustQuery(t, ddl, "create index entries_amount on entries (amount)")
	if _, err := query(ddl, "alter table notes drop constraint notes_pkey"); pgCode(err) != "0A000" || !strings.Contains(err.Error(), "reshard workflow grow") {
		t.Errorf("dropping a primary key while resharding: %v, want 0A000 naming the workflow", err)
	}
	w.waitFor(300)

	// Steps out of order: one line each, nothing changed.
	_, stderr = e.shardctl(1, "reshard", "complete", "grow")
	if !strings.Contains(stderr, "complete needs every batch cut over") {
		t.Errorf("complete before the cutover: %q", stderr)
	}
	_, stderr = e.shardctl(1, "reshard", "reverse", "grow")
	if !strings.Contains(stderr, "reverse applies once writes moved") {
		t.Errorf("reverse before the cutover: %q", stderr)
	}

	out, _ = e.shardctl(0, "reshard", "cutover", "grow", "--batch", "8")
	t.Logf("cutover:\n%s", out)
	if strings.Count(out, "cut over") != 4 {
		t.Errorf("reshard cutover printed\n%s\nwant four batches cut over", out)
	}
	show, _ := e.shardctl(0, "reshard", "show", "grow")
	t.Logf("reshard show:\n%s", show)
	page := scrapeMetrics(t, e.gws[0].admin, reshardToken)
	for _, want := range []string{
		`shardgate_reshard_phase{phase="cut_over",workflow="grow"} 1`,
		`shardgate_reshard_cutover_pause_seconds_count{workflow="grow"} 4`,
		`shardgate_reshard_batches{state="cut_over",workflow="grow"} 4`,
		`shardgate_reshard_copied_rows{source="s0",table="accounts",workflow="grow"}`,
		`shardgate_reshard_lag_bytes{stream="reverse:s2",workflow="grow"}`,
	} {
		if !strings.Contains(page, want) {
			t.Errorf("/metrics lacks %s; it has\n%s", want, grepLines(page, "shardgate_reshard_"))
		}
	}
	_, stderr = e.shardctl(1, "reshard", "cancel", "grow")
	if !strings.Contains(stderr, "cancel applies only before the first write cutover") {
		t.Errorf("cancel after the cutover: %q", stderr)
	}
	_, stderr = e.shardctl(1, "reshard", "complete", "grow")
	if !strings.Contains(stderr, "complete needs a verify") {
		t.Errorf("complete before a verify: %q", stderr)
	}
	// On entries, which each transaction writes on one shard: DDL and a
	// transaction that lock a table on two shards in opposite orders
	// would wait for each other (no distributed deadlock detection).
	mustQuery(t, ddl, "create index entries_memo on entries (memo)")
	w.waitFor(300)
	// The reverse streams keep the sources complete: verify compares them
	// with the targets, the clients writing all along.
	out, _ = e.shardctl(0, "reshard", "verify", "grow")
	t.Logf("verify after the cutover:\n%s", out)

	// With the controller and its streams stopped, the sources' moved
	// logical shards must not change while the clients go on.
	if err := ctl.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	if err := ctl.Wait(); err != nil {
		t.Fatalf("reshard start: %v\n%s", err, ctlOut.String())
	}
	before := e.movedChecksum()
	w.waitFor(1000)
	w.end()
	if after := e.movedChecksum(); after != before {
		t.Errorf("the sources' moved logical shards changed after the cutover: %s, then %s", before, after)
	}
	t.Logf("%d writes acknowledged", w.acked)

	// Until complete, the sources hold the moved rows: statements across
	// shards pass over them there.
	e.check(w, 4)
	out, _ = e.shardctl(0, "reshard", "complete", "grow")
	if !strings.Contains(out, "completed workflow grow") {
		t.Errorf("reshard complete printed %q", out)
	}
	if moved := e.movedChecksum(); moved != "0 0 0 0" {
		t.Errorf("after complete the sources still hold moved rows: %s", moved)
	}
	e.check(w, 4)
	e.ownRowsOnly()
	e.sameSchema()
	if out, _ := e.shardctl(0, "reshard", "list"); strings.Contains(out, "grow") {
		t.Errorf("after complete, reshard list printed\n%s", out)
	}
}

// TestReshardReverse: after the writes of every batch moved to the
// targets, reverse moves them back while the clients write on: the
// reverse stream kept the sources complete, so every acknowledged write is
// there. complete is refused then; cancel leaves the targets as they
// were and no slot anywhere.
func TestReshardReverse(t *testing.T) {
	e := newReshardEnv(t)
	w := e.run(4)
	w.waitFor(200)
	e.shardctl(0, "reshard", "create", "grow", "--keyspace", "app", "--to", "s2,s3", "--apply")
	e.controller("grow")
	e.waitPhase("grow", "catching_up")
	e.shardctl(0, "reshard", "cutover", "grow")
	w.waitFor(1500) // written at the targets, carried back by the reverse streams
	out, _ := e.shardctl(0, "reshard", "reverse", "grow")
	t.Logf("reverse:\n%s", out)
	if strings.Count(out, "moved back") != 2 {
		t.Errorf("reshard reverse printed\n%s\nwant both batches moved back", out)
	}
	w.waitFor(500)
	w.end()
	t.Logf("%d writes acknowledged", w.acked)
	e.check(w, 2)
	_, stderr := e.shardctl(1, "reshard", "complete", "grow")
	if !strings.Contains(stderr, "complete needs every batch cut over") {
		t.Errorf("complete after a reverse: %q", stderr)
	}
	out, _ = e.shardctl(0, "reshard", "cancel", "grow")
	if !strings.Contains(out, "cancelled workflow grow") {
		t.Errorf("reshard cancel printed %q", out)
	}
	for i := range e.shards {
		if got := mustQuery(t, e.backend(i), "select (select count(*) from pg_replication_slots), (select count(*) from pg_publication), (select count(*) from pg_tables where schemaname = 'public')"); got[0][0] != "0" || got[0][1] != "0" || i >= 2 && got[0][2] != "0" {
			t.Errorf("shard s%d after cancel: %s slots, %s publications, %s tables", i, got[0][0], got[0][1], got[0][2])
		}
	}
	e.check(w, 2)
}

// TestReshardCrashAnywhere: the process driving the workflow is killed
// (SIGKILL) in the middle of the copy, during the catch-up, and in a
// cutover with a batch's writes held at the gateways and its flip
// recorded but not made. Each time the next controller takes over from
// the record: the copy of a source recorded as done is not made again,
// the fence is lifted and the streams put right, and every batch cuts
// over. No client sees an error, and every acknowledged write is where
// the final map says.
func TestReshardCrashAnywhere(t *testing.T) {
	e := newReshardEnv(t)
	w := e.run(4)
	w.waitFor(200)
	e.shardctl(0, "reshard", "create", "grow", "--keyspace", "app", "--to", "s2,s3", "--apply")
	killed := func(cmd *exec.Cmd, out *syncbuf.Buffer, when string) {
		t.Helper()
		if err := cmd.Wait(); err == nil || !strings.Contains(err.Error(), "killed") {
			t.Fatalf("the controller killed %s: %v\n%s", when, err, out.String())
		}
		show, _ := e.shardctl(0, "reshard", "show", "grow")
		t.Logf("killed %s; reshard show:\n%s", when, show)
	}

	first, out := e.controller("grow", "SHARDGATE_TEST_CRASH=after-seed")
	killed(first, out, "in the copy")
	show, _ := e.shardctl(0, "reshard", "show", "grow")
	if !hasField(show, "phase:", "copying") {
		t.Fatalf("after a kill in the copy, reshard show printed\n%s\nwant phase copying", show)
	}

	second, out := e.controller("grow")
	e.waitPhase("grow", "catching_up")
	w.waitFor(300)
	if err := second.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	killed(second, out, "in the catch-up")

	third, out := e.controller("grow", "SHARDGATE_TEST_CRASH=before-flip")
	e.shardctl(1, "reshard", "cutover", "grow", "--batch", "8", "--wait", "1s")
	killed(third, out, "before a flip")
	show, _ = e.shardctl(0, "reshard", "show", "grow")
	if !hasField(show, "phase:", "cutting_over") || strings.Contains(show, "cut over") {
		t.Fatalf("after the kill, reshard show printed\n%s\nwant cutting_over, no batch cut over", show)
	}

	fourth, _ := e.controller("grow")
	e.waitPhase("grow", "cut_over")
	w.waitFor(500)
	e.shardctl(0, "reshard", "verify", "grow")
	w.end()
	if err := fourth.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	_ = fourth.Wait()
	e.shardctl(0, "reshard", "complete", "grow")
	t.Logf("%d writes acknowledged", w.acked)
	e.check(w, 4)
	e.ownRowsOnly()
}

// TestReshardCancelInCopy: a workflow cancelled in the middle of its copy
// (its controller killed there, the cancel done by 'reshard cancel'
// itself) leaves the targets without its tables and the sources as they
// were: the same rows, no slot, no publication.
func TestReshardCancelInCopy(t *testing.T) {
	e := newReshardEnv(t)
	sums := func() []string {
		var out []string
		for i := range 2 {
			r := mustQuery(t, e.backend(i), "select (select sum(hashtext(a::text)) from accounts a), (select sum(hashtext(x::text)) from entries x), (select count(*) from notes)")
			out = append(out, r[0]...)
		}
		return out
	}
	before := sums()
	e.shardctl(0, "reshard", "create", "grow", "--keyspace", "app", "--to", "s2,s3", "--apply")
	ctl, out := e.controller("grow", "SHARDGATE_TEST_CRASH=after-seed")
	if err := ctl.Wait(); err == nil || !strings.Contains(err.Error(), "killed") {
		t.Fatalf("the controller killed in the copy: %v\n%s", err, out.String())
	}
	if show, _ := e.shardctl(0, "reshard", "show", "grow"); !hasField(show, "phase:", "copying") {
		t.Fatalf("reshard show after the kill:\n%s\nwant phase copying", show)
	}
	eventually(t, time.Minute, "reshard show to say the controller died once its lock expired", func() bool {
		show, _ := e.shardctl(0, "reshard", "show", "grow")
		return strings.Contains(show, "stopped or died ('shardctl reshard start grow' resumes it)")
	})
	// A schema change would wait for the copy's locks: it is refused.
	ddl := e.gws[0].connect("app")
	if _, err := query(ddl, "alter table notes add column seen bool"); pgCode(err) != "55000" || !strings.Contains(err.Error(), "reshard workflow grow is copying") {
		t.Errorf("a schema change during the copy: %v, want 55000 naming the workflow", err)
	}
	cancelled, _ := e.shardctl(0, "reshard", "cancel", "grow")
	if !strings.Contains(cancelled, "cancelled workflow grow") {
		t.Errorf("reshard cancel printed %q", cancelled)
	}
	eventually(t, time.Minute, "the schema change to run once the workflow is gone", func() bool {
		_, err := query(ddl, "alter table notes add column seen bool")
		return err == nil
	})
	for i := range e.shards {
		got := mustQuery(t, e.backend(i), "select (select count(*) from pg_replication_slots), (select count(*) from pg_publication), (select count(*) from pg_tables where schemaname = 'public')")
		if got[0][0] != "0" || got[0][1] != "0" || i >= 2 && got[0][2] != "0" {
			t.Errorf("shard s%d after the cancel: %s slots, %s publications, %s tables", i, got[0][0], got[0][1], got[0][2])
		}
	}
	if after := sums(); !slices.Equal(before, after) {
		t.Errorf("the sources changed: %v, then %v", before, after)
	}
	if list, _ := e.shardctl(0, "reshard", "list"); strings.Contains(list, "grow") {
		t.Errorf("after the cancel, reshard list printed\n%s", list)
	}
}

// TestReshardTwice: the keyspace grows from two shards to four, and once
// that is complete shrinks back to two with a second workflow that moves
// the same logical shards home (onto shards that own others all along),
// the clients writing and reading across shards through both. The
// invariant holds after each, and the shards left empty hold no rows.
func TestReshardTwice(t *testing.T) {
	e := newReshardEnv(t)
	w := e.run(4)
	w.waitFor(200)
	reshard := func(name string, plan ...string) {
		t.Helper()
		e.shardctl(0, append([]string{"reshard", "create", name, "--keyspace", "app", "--apply"}, plan...)...)
		ctl, out := e.controller(name)
		e.waitPhase(name, "catching_up")
		w.waitFor(300)
		e.shardctl(0, "reshard", "cutover", name, "--batch", "8")
		w.waitFor(300)
		if verified, _ := e.shardctl(0, "reshard", "verify", name); !strings.Contains(verified, "no difference") {
			t.Fatalf("reshard verify %s printed\n%s", name, verified)
		}
		e.shardctl(0, "reshard", "complete", name)
		if err := ctl.Wait(); err != nil {
			t.Fatalf("reshard start %s: %v\n%s", name, err, out.String())
		}
		w.waitFor(300)
	}
	reshard("grow", "--to", "s2,s3")
	w.end()
	e.check(w, 4)
	e.ownRowsOnly()

	w = e.runAfter(w, 4)
	w.waitFor(200)
	reshard("shrink", "--move", "16-31:s0", "--move", "48-63:s1")
	w.waitFor(300)
	w.end()
	t.Logf("%d writes acknowledged", w.acked)
	e.check(w, 2)
	for i := 2; i < 4; i++ {
		got := mustQuery(t, e.backend(i), "select (select count(*) from accounts) + (select count(*) from entries) + (select count(*) from notes)")
		if got[0][0] != "0" {
			t.Errorf("shard s%d holds %s rows after the keyspace moved off it", i, got[0][0])
		}
	}
	if out, _ := e.shardctl(0, "topology", "show", "app"); strings.Contains(out, "s2") || strings.Contains(out, "s3") {
		t.Errorf("after the shrink the map still places logical shards on s2 or s3:\n%s", out)
	}
}
