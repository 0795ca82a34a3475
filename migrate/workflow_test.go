package migrate

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pglogrepl"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/shardgate/shardgate/internal/pgtest"
	"github.com/shardgate/shardgate/topology"
)

// The environment that makes this test binary a controller process (see
// TestMain): etcd endpoints, cluster and workflow.
const (
	envEtcd     = "SHARDGATE_TEST_CONTROLLER_ETCD"
	envCluster  = "SHARDGATE_TEST_CONTROLLER_CLUSTER"
	envWorkflow = "SHARDGATE_TEST_CONTROLLER_WORKFLOW"
	// envKillAfterSeed makes the process kill itself once a source's copy
	// is recorded as done.
	envKillAfterSeed = "SHARDGATE_TEST_CONTROLLER_KILL_AFTER_SEED"
)

func TestMain(m *testing.M) {
	if os.Getenv(envEtcd) != "" {
		os.Exit(controllerProcess())
	}
	os.Exit(m.Run())
}

// controllerProcess drives the workflow the environment names until it
// ends, as 'shardctl reshard start' does; the test kills it.
func controllerProcess() int {
	cli, err := clientv3.New(clientv3.Config{Endpoints: strings.Split(os.Getenv(envEtcd), ","), DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	c := &Controller{Store: topology.NewStore(cli, os.Getenv(envCluster)), Name: os.Getenv(envWorkflow),
		ID: fmt.Sprintf("child %d", os.Getpid()), Log: zap.NewNop(), LockTTL: time.Second}
	if os.Getenv(envKillAfterSeed) != "" {
		c.At = func(h Hook) {
			if h == HookAfterSeed {
				_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
			}
		}
	}
	if err := c.Run(context.Background()); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// workflowEnv is a keyspace of 16 logical shards over two sources, s0 and
// s1, each holding rows of its own logical shards, and an empty target s2.
type workflowEnv struct {
	t       *testing.T
	pg      []*pgtest.Cluster
	etcd    *topology.Embedded
	store   *topology.Store
	writes  atomic.Int64
	stop    chan struct{}
	writers sync.WaitGroup
}

func newWorkflowEnv(t *testing.T, rows int) *workflowEnv {
	e := &workflowEnv{t: t, pg: pgtest.Start(t, 3), stop: make(chan struct{})}
	var err error
	e.etcd, err = topology.StartEmbedded(t.Context(), t.TempDir(), "", zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.etcd.Close)
	cli, err := clientv3.New(clientv3.Config{Endpoints: e.etcd.Endpoints(), DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	e.store = topology.NewStore(cli, "test")
	ctx := t.Context()
	for i, name := range []string{"s0", "s1", "s2"} {
		if err := e.store.AddShard(ctx, topology.Shard{Name: name, DSN: e.pg[i].DSN("postgres")}); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.store.CreateKeyspace(ctx, "app", 16, []string{"s0", "s1"}); err != nil {
		t.Fatal(err)
	}
	if err := e.store.ApplyVSchemas(ctx, streamKeyspace); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		lo, hi := KeyRange(16, i*8, i*8+7)
		run(t, connect(t, e.pg[i]), fmt.Sprintf(`create table users (id bigint primary key, name text, big text);
create table orders (id bigint primary key, user_id bigint not null, note text);
create table countries (code text primary key, name text);
insert into users select g, 'u' || g, null from generate_series(1, %[1]d) g where hashint8extended(g, 0) between %[2]d and %[3]d;
insert into orders select g, g %% %[1]d + 1, 'o' || g from generate_series(1, %[1]d) g where hashint8extended(g %% %[1]d + 1, 0) between %[2]d and %[3]d;
insert into countries values ('de', 'Germany'), ('fr', 'France');`, rows, lo, hi))
	}
	t.Cleanup(e.stopWrites)
	return e
}

// write runs single-row writes on both sources until stopWrites: inserts,
// updates and deletes of orders of the source's own users, updates of
// users.
func (e *workflowEnv) write() {
	for i := range 2 {
		conn := connect(e.t, e.pg[i])
		lo, hi := KeyRange(16, i*8, i*8+7)
		e.writers.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(i), 7))
			for n := int64(10_000_000 * (i + 1)); ; n++ {
				select {
				case <-e.stop:
					return
				default:
				}
				user := rng.IntN(1000) + 1
				var sql string
				switch rng.IntN(3) {
				case 0:
					sql = fmt.Sprintf("insert into orders select %d, %d, 'new' where hashint8extended(%d, 0) between %d and %d", n, user, user, lo, hi)
				case 1:
					sql = fmt.Sprintf("update users set name = 'w%d' where id = %d", n, user)
				default:
					sql = fmt.Sprintf("delete from orders where id = %d", rng.IntN(2000)+1)
				}
				if err := conn.Exec(context.Background(), sql).Close(); err != nil {
					e.t.Errorf("%s: %v", sql, err)
					return
				}
				e.writes.Add(1)
			}
		})
	}
}

func (e *workflowEnv) stopWrites() {
	select {
	case <-e.stop:
	default:
		close(e.stop)
	}
	e.writers.Wait()
}

// create records workflow name moving logical shards 4-7 (s0) and 12-15
// (s1) to s2.
func (e *workflowEnv) create(name string) {
	var moves []topology.Move
	for l := 4; l < 8; l++ {
		moves = append(moves, topology.Move{Logical: l, From: "s0", To: "s2"}, topology.Move{Logical: l + 8, From: "s1", To: "s2"})
	}
	if err := e.store.CreateWorkflow(e.t.Context(), topology.Workflow{Name: name, Keyspace: "app", Moves: moves}); err != nil {
		e.t.Fatal(err)
	}
}

// controller runs a controller of workflow name in this process until
// the returned stop is called; stop returns what Run returned.
func (e *workflowEnv) controller(name string) (stop func() error) {
	c := &Controller{Store: e.store, Name: name, ID: "test", Log: zap.NewNop(), LockTTL: time.Second}
	ctx, cancel := context.WithCancel(e.t.Context())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	return func() error { cancel(); return <-done }
}

// child starts a controller process of workflow name, with env added.
func (e *workflowEnv) child(name string, env ...string) *exec.Cmd {
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(append(os.Environ(), envEtcd+"="+strings.Join(e.etcd.Endpoints(), ","), envCluster+"=test", envWorkflow+"="+name), env...)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	return cmd
}

// waitFor polls the workflow's record until ok holds of it.
func (e *workflowEnv) waitFor(name, what string, ok func(*topology.Workflow) bool) *topology.Workflow {
	deadline := time.Now().Add(2 * time.Minute)
	for {
		w, err := e.store.Workflow(e.t.Context(), name)
		if err != nil {
			e.t.Fatal(err)
		}
		if ok(w) {
			return w
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("workflow %s: %s did not happen; the record is %+v (error %q)", name, what, w, w.Error)
		}
		time.Sleep(50 * time.Millisecond) // polling the record
	}
}

// caughtUp waits until every source's recorded stream position passes
// its current WAL insert position.
func (e *workflowEnv) caughtUp(name string) {
	var ends [2]pglogrepl.LSN
	for i := range 2 {
		end, err := pglogrepl.ParseLSN(run(e.t, connect(e.t, e.pg[i]), "select pg_current_wal_insert_lsn()")[0][0])
		if err != nil {
			e.t.Fatal(err)
		}
		ends[i] = end
	}
	e.waitFor(name, "catching up", func(w *topology.Workflow) bool {
		for i, s := range []string{"s0", "s1"} {
			p := w.Sources[s]
			if p == nil {
				return false
			}
			if at, _ := pglogrepl.ParseLSN(p.Flushed); at < ends[i] {
				return false
			}
		}
		return true
	})
}

// verify compares every moving range of both sources with the target:
// no difference, and the target holds no row of another range.
func (e *workflowEnv) verify() {
	dst := connect(e.t, e.pg[2])
	for i := range 2 {
		src := connect(e.t, e.pg[i])
		lo, hi := KeyRange(16, i*8+4, i*8+7)
		for _, name := range []string{"users", "orders", "countries"} {
			ct, err := Columns(e.t.Context(), src, name, streamKeyspace.Tables[name])
			if err != nil {
				e.t.Fatal(err)
			}
			diffs, err := VerifyRange(e.t.Context(), src, dst, ct, lo, hi)
			if err != nil {
				e.t.Fatal(err)
			}
			if len(diffs) > 0 {
				e.t.Errorf("%s from s%d: %d differences, first %+v", name, i, len(diffs), diffs[0])
			}
		}
	}
	for _, name := range []string{"users", "orders"} {
		var in []string
		for i := range 2 {
			lo, hi := KeyRange(16, i*8+4, i*8+7)
			in = append(in, inRange(streamKeyspace.Tables[name], lo, hi))
		}
		if out := run(e.t, dst, fmt.Sprintf("select count(*) from %s where not (%s)", name, strings.Join(in, " or "))); out[0][0] != "0" {
			e.t.Errorf("%s on the target: %s rows of ranges that do not move", name, out[0][0])
		}
	}
}

// slots lists the replication slots and publications on the sources.
func (e *workflowEnv) slots() string {
	var out []string
	for i := range 2 {
		for _, r := range run(e.t, connect(e.t, e.pg[i]), "select slot_name from pg_replication_slots union all select pubname from pg_publication") {
			out = append(out, fmt.Sprintf("s%d:%s", i, r[0]))
		}
	}
	return strings.Join(out, " ")
}

// TestWorkflowCopyCatchUpCancel: a controller copies two sources'
// moving logical shards to a target under writes and streams their
// changes; the target then matches the sources. A cancel asked of the
// running controller drops the slots, the publications and the tables it
// made, and the record.
func TestWorkflowCopyCatchUpCancel(t *testing.T) {
	e := newWorkflowEnv(t, 20000)
	e.create("grow")
	e.write()
	stop := e.controller("grow")
	w := e.waitFor("grow", "the catch-up", func(w *topology.Workflow) bool { return w.Phase == topology.PhaseCatchingUp })
	copied := w.CopiedTotal()
	if copied.Rows == 0 || copied.Bytes == 0 || w.Sources["s0"].Consistent == "" || w.CopyStarted.IsZero() {
		t.Fatalf("after the copy the record holds %+v, sources %+v", w, w.Sources)
	}
	t.Logf("copied %d rows (%d bytes) from two sources while %d writes ran", copied.Rows, copied.Bytes, e.writes.Load())
	for e.writes.Load() < 2000 {
		time.Sleep(10 * time.Millisecond) // polling the writers' progress
	}
	e.stopWrites()
	e.caughtUp("grow")
	e.verify()
	w, _ = e.store.Workflow(t.Context(), "grow")
	if w.Sources["s0"].Applied == 0 || w.Controller != "test" {
		t.Errorf("the record after the catch-up: %+v, s0 %+v", w, w.Sources["s0"])
	}

	if _, err := e.store.UpdateWorkflow(t.Context(), "grow", func(w *topology.Workflow) error {
		w.Request = topology.RequestCancel
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := e.store.Workflow(t.Context(), "grow"); errors.Is(err, topology.ErrNotFound) {
			break
		}
		time.Sleep(50 * time.Millisecond) // polling the record
	}
	if err := stop(); err != nil {
		t.Fatalf("the controller after the cancel: %v", err)
	}
	if s := e.slots(); s != "" {
		t.Errorf("after the cancel the sources still hold %s", s)
	}
	if out := run(t, connect(t, e.pg[2]), "select count(*) from pg_tables where schemaname = 'public'"); out[0][0] != "0" {
		t.Errorf("after the cancel the target holds %s tables", out[0][0])
	}
}

// TestWorkflowResumesAfterKill: the process driving a workflow is killed
// (SIGKILL) during the copy and again during the catch-up; each time
// another controller takes over from the record, and the target ends
// matching the sources.
func TestWorkflowResumesAfterKill(t *testing.T) {
	e := newWorkflowEnv(t, 100000)
	e.create("grow")
	e.write()

	// Killed once the first source's copy is recorded, the other's
	// under way.
	child := e.child("grow", envKillAfterSeed+"=1")
	if err := child.Wait(); err == nil || !strings.Contains(err.Error(), "killed") {
		t.Fatalf("the controller that kills itself after a copy: %v", err)
	}
	w, _ := e.store.Workflow(t.Context(), "grow")
	if w.Phase != topology.PhaseCopying {
		t.Fatalf("killed in the copy, the workflow is in phase %s", w.Phase)
	}
	seeded := map[string]string{} // source: its slot's consistent point
	for s, p := range w.Sources {
		if p.Seeded {
			seeded[s] = p.Consistent
		}
	}
	t.Logf("killed during the copy, %d of 2 sources seeded, %d bytes copied", len(seeded), w.CopiedTotal().Bytes)

	child = e.child("grow")
	w = e.waitFor("grow", "the catch-up", func(w *topology.Workflow) bool {
		return w.Phase == topology.PhaseCatchingUp && w.Sources["s0"].Applied > 0 && w.Sources["s1"].Applied > 0
	})
	for s, consistent := range seeded { // not copied again
		if w.Sources[s].Consistent != consistent {
			t.Errorf("source %s, seeded before the kill, was seeded again", s)
		}
	}
	if err := child.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = child.Wait()

	stop := e.controller("grow")
	defer func() {
		if err := stop(); !errors.Is(err, context.Canceled) {
			t.Errorf("controller: %v", err)
		}
	}()
	e.waitFor("grow", "the new controller", func(w *topology.Workflow) bool { return w.Controller == "test" })
	for n := e.writes.Load() + 1000; e.writes.Load() < n; {
		time.Sleep(10 * time.Millisecond) // polling the writers' progress
	}
	e.stopWrites()
	e.caughtUp("grow")
	e.verify()
	if s := e.slots(); strings.Count(s, "sg_grow_") != 4 {
		t.Errorf("the sources hold %q: want one slot and one publication each", s)
	}
}
