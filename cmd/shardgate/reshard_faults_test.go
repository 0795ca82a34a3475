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
	"testing"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/shardgate/shardgate/internal/syncbuf"
)

// faultLoad is clients inserting entries through whichever gateways are
// up, each insert's outcome kept: acknowledged, or unknown when it failed
// (a shard or a gateway went away under it: it may or may not be there).
type faultLoad struct {
	t    *testing.T
	live func() []*gateway
	stop chan struct{}
	wg   sync.WaitGroup

	mu      sync.Mutex
	acked   map[int64]bool
	unknown map[int64]bool
}

// startFaultLoad starts n clients; client c inserts ids from
// (c+base)*1e9 on.
func (e *reshardEnv) startFaultLoad(n int, live func() []*gateway) *faultLoad {
	l := &faultLoad{t: e.t, live: live, stop: make(chan struct{}), acked: map[int64]bool{}, unknown: map[int64]bool{}}
	for c := range n {
		l.wg.Go(func() { l.client(c) })
	}
	return l
}

// connect opens a session through a live gateway, trying them in turn
// until one answers or the load stops.
func (l *faultLoad) connect(c int) *pgconn.PgConn {
	for i := c; ; i++ {
		select {
		case <-l.stop:
			return nil
		default:
		}
		gws := l.live()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		conn, err := pgconn.Connect(ctx, gws[i%len(gws)].dsn("app"))
		cancel()
		if err == nil {
			return conn
		}
		time.Sleep(50 * time.Millisecond) // a gateway that is going away
	}
}

func (l *faultLoad) client(c int) {
	rng := rand.New(rand.NewPCG(uint64(c), 5))
	conn := l.connect(c)
	defer func() {
		if conn != nil {
			conn.Close(context.Background())
		}
	}()
	pace := time.NewTicker(clientPace)
	defer pace.Stop()
	for next := int64(c+1) * 1_000_000_000; conn != nil; next++ {
		select {
		case <-l.stop:
			return
		case <-pace.C:
		}
		acct := rng.Int64N(reshardAccounts) + 1
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		var err error
		if next%2 == 0 {
			_, err = conn.ExecParams(ctx, "insert into entries (id, account_id, amount) values ($1, $2, 1)",
				[][]byte{[]byte(strconv.FormatInt(next, 10)), []byte(strconv.FormatInt(acct, 10))}, nil, nil, nil).Close()
		} else {
			_, err = conn.Exec(ctx, fmt.Sprintf("insert into entries (id, account_id, amount) values (%d, %d, 1)", next, acct)).ReadAll()
		}
		cancel()
		l.mu.Lock()
		if err == nil {
			l.acked[next] = true
		} else {
			l.unknown[next] = true
		}
		l.mu.Unlock()
		if err != nil && conn.IsClosed() {
			conn.Close(context.Background())
			conn = l.connect(c)
		}
	}
}

func (l *faultLoad) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.acked)
}

// waitFor lets the clients acknowledge n more inserts.
func (l *faultLoad) waitFor(n int) {
	l.t.Helper()
	target := l.count() + n
	eventually(l.t, 3*time.Minute, fmt.Sprintf("%d more acknowledged inserts", n), func() bool { return l.count() >= target })
}

func (l *faultLoad) end() {
	close(l.stop)
	l.wg.Wait()
}

// audit reads the load's entries through gw and counts the acknowledged
// inserts missing and the ids there more than once; with exact set (the
// load ended), an id there that no client sent is an error too.
func (e *reshardEnv) audit(l *faultLoad, gw *gateway, exact bool) (lost, duplicated int) {
	l.mu.Lock()
	acked := make(map[int64]bool, len(l.acked))
	for id := range l.acked {
		acked[id] = true
	}
	l.mu.Unlock()
	seen := map[int64]int{}
	// In a transaction: a read cutover sends no read there to a target,
	// which may be a moment behind.
	conn := gw.connect("app")
	mustQuery(e.t, conn, "begin")
	for _, r := range mustQuery(e.t, conn, "select id from entries where id >= 1000000000") {
		id, _ := strconv.ParseInt(r[0], 10, 64)
		seen[id]++
	}
	mustQuery(e.t, conn, "commit")
	return tally(e.t, l, acked, seen, exact)
}

// tally compares what is there with what the clients were told.
func tally(t *testing.T, l *faultLoad, acked map[int64]bool, seen map[int64]int, exact bool) (lost, duplicated int) {
	for id := range acked {
		if seen[id] == 0 {
			lost++
		}
	}
	for id, n := range seen {
		if n > 1 {
			duplicated++
		}
		if exact && !acked[id] && !l.unknown[id] {
			t.Errorf("entry %d is there, and no client sent it", id)
		}
	}
	return lost, duplicated
}

// faultRow is one line of the fault matrix.
type faultRow struct {
	fault, phase, outcome string
	acked, lost, dup      int
}

// TestReshardFaultMatrix grows keyspace app from two shards to four while
// clients insert through two gateways, and injects a fault in each phase:
// the workflow's controller SIGKILLed in the copy, the catch-up, under
// shadow reads, under a read cutover and at each step of a write cutover;
// the target crash-restarted during the copy and a source during the
// catch-up; a gateway SIGKILLed while a cutover's fence holds writes; etcd
// restarted during the cutover; and schema changes between two cutover
// batches. After each fault the workflow goes on, no
// acknowledged insert is lost and none is there twice; verify finds no
// difference at the end, and the test prints the matrix.
func TestReshardFaultMatrix(t *testing.T) {
	// A commit acknowledged before a crash must survive it, as on any
	// production server (the test servers otherwise run without it).
	e := newReshardEnvWith(t, map[string]string{"synchronous_commit": "on"}, "--gateway-ttl", "3s")
	var (
		liveMu sync.Mutex
		live   = slices.Clone(e.gws)
	)
	liveGateways := func() []*gateway {
		liveMu.Lock()
		defer liveMu.Unlock()
		return slices.Clone(live)
	}
	load := e.startFaultLoad(2, liveGateways)
	var rows []faultRow
	row := func(fault, phase, outcome string) {
		t.Helper()
		load.waitFor(100)
		lost, dup := e.audit(load, liveGateways()[0], false)
		rows = append(rows, faultRow{fault, phase, outcome, load.count(), lost, dup})
		if lost > 0 || dup > 0 {
			t.Errorf("%s in %s: %d acknowledged inserts lost, %d there twice", fault, phase, lost, dup)
		}
	}
	defer func() {
		var b strings.Builder
		tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "FAULT\tPHASE\tOUTCOME\tACKNOWLEDGED\tLOST\tDUPLICATED")
		for _, r := range rows {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%d\n", r.fault, r.phase, r.outcome, r.acked, r.lost, r.dup)
		}
		tw.Flush()
		t.Logf("fault matrix:\n%s", b.String())
	}()
	load.waitFor(100)
	e.waitLatencies()

	// The copy, held by the throttle so that the faults land in it.
	e.shardctl(0, "reshard", "create", "grow", "--keyspace", "app", "--to", "s2,s3", "--apply")
	e.shardctl(0, "reshard", "throttle", "grow", "--max-latency", "1ns")
	ctl := e.startController()
	e.waitShow("grow", "the copy held", func(show string) bool {
		return hasField(show, "phase:", "copying") && strings.Contains(showField(show, "throttle:"), "backing off")
	})
	ctl = e.killController(ctl)
	e.waitShow("grow", "the next controller driving", func(show string) bool {
		return strings.Contains(show, ":"+strconv.Itoa(ctl.cmd.Process.Pid)) && hasField(show, "phase:", "copying")
	})
	row("controller SIGKILL", "copy", "the next controller took the copy over")
	if err := e.shards[2].CrashRestart(t.Context()); err != nil {
		t.Fatal(err)
	}
	e.shardctl(0, "reshard", "throttle", "grow", "--max-latency", "0")
	e.waitPhase("grow", "catching_up")
	row("target crash-restart", "copy", "the copy failed there and was made again")

	// The catch-up.
	if err := e.shards[0].CrashRestart(t.Context()); err != nil {
		t.Fatal(err)
	}
	e.verifyClean("grow")
	row("source crash-restart", "catch-up", "the streams started again from their slots")
	ctl = e.killController(ctl)
	e.verifyClean("grow")
	row("controller SIGKILL", "catch-up", "the next controller's streams went on")

	// Shadow reads, then half the reads at the targets.
	e.shardctl(0, "reshard", "shadow", "grow", "--percent", "100", "--window", "1s")
	stop := make(chan struct{})
	probes := e.probes(e.movingAccounts(1000), func() int64 { return 0 }, stop)
	eventually(t, time.Minute, "shadow reads compared", func() bool { return e.shadowSummary("grow").Total.Matches >= 200 })
	ctl = e.killController(ctl)
	before := e.shadowSummary("grow").Total.Matches
	eventually(t, time.Minute, "shadow reads going on", func() bool { return e.shadowSummary("grow").Total.Matches >= before+100 })
	if sum := e.shadowSummary("grow"); sum.Total.Differences != 0 {
		t.Errorf("shadow reads found differences: %+v", sum.Recent)
	}
	row("controller SIGKILL", "shadow reads", "shadow reads went on, no difference")
	e.shardctl(0, "reshard", "switch", "grow", "--reads", "50%")
	ctl = e.killController(ctl)
	e.verifyClean("grow")
	row("controller SIGKILL", "read cutover", "reads went on at both places")
	close(stop)
	probes.Wait()

	// The write cutover, a controller killed at each of its steps, a
	// gateway while a fence holds writes, and etcd.
	if err := ctl.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-ctl.done
	ctl = e.startController("SHARDGATE_TEST_CRASH=after-fence")
	e.shardctl(1, "reshard", "cutover", "grow", "--batch", "4", "--wait", "1s")
	e.waitExit(ctl)
	// The fence that controller raised holds writes to its batch: kill a
	// gateway now, then controllers that die before and after the flip.
	liveMu.Lock()
	live = e.gws[:1]
	liveMu.Unlock()
	if err := e.gws[1].cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	ctl = e.startController("SHARDGATE_TEST_CRASH=before-flip")
	e.waitExit(ctl)
	ctl = e.startController("SHARDGATE_TEST_CRASH=after-flip")
	e.waitExit(ctl)
	// Between two batches of the cutover, schema changes reach the
	// sources and the targets alike; the streams carry the new column.
	ddl := e.gws[0].connect("app")
	mustQuery(t, ddl, "alter table entries add column memo text not null default 'm'")
	mustQuery(t, ddl, "create index entries_memo on entries (memo)")
	row("controller SIGKILL", "cutover: fence up", "the next controller lifted it and tried again")
	row("gateway SIGKILL", "cutover: fence up", "the fence drained once its lease expired")
	row("controller SIGKILL", "cutover: flip recorded", "the next controller put the streams right")
	row("controller SIGKILL", "cutover: flipped", "the next controller found the batch done")

	ctl = e.startController()
	e.waitShow("grow", "the last controller driving", func(show string) bool {
		return strings.Contains(show, ":"+strconv.Itoa(ctl.cmd.Process.Pid))
	})
	addr := strings.TrimPrefix(e.etcd.Endpoints()[0], "http://")
	e.etcd.Close()
	e.startEtcd(addr)
	outcome := "the controller went on"
	eventually(t, 3*time.Minute, "every batch cut over", func() bool {
		if ctl.exited() {
			outcome = "the controller lost its lock; the next one went on"
			ctl = e.startController()
		}
		out, _ := e.shardctl(0, "reshard", "show", "grow")
		return hasField(out, "phase:", "cut_over")
	})
	row("etcd restart", "cutover", outcome)

	load.waitFor(200)
	e.verifyClean("grow", func() {
		if ctl.exited() {
			ctl = e.startController()
		}
	})
	load.end()
	if lost, dup := e.audit(load, e.gws[0], true); lost > 0 || dup > 0 {
		t.Errorf("at the end: %d acknowledged inserts lost, %d there twice", lost, dup)
	}
	e.shardctl(0, "reshard", "complete", "grow")
	seen := map[int64]int{}
	for i := range 4 {
		for _, r := range mustQuery(t, e.backend(i), "select id from entries where id >= 1000000000") {
			id, _ := strconv.ParseInt(r[0], 10, 64)
			seen[id]++
		}
	}
	lost, dup := tally(t, load, load.acked, seen, true)
	rows = append(rows, faultRow{"none", "complete", "every shard holds only its own rows", load.count(), lost, dup})
	if lost > 0 || dup > 0 {
		t.Errorf("after complete, on the shards: %d acknowledged inserts lost, %d there twice", lost, dup)
	}
	e.ownRowsOnly()
	e.sameSchema()
}

// waitLatencies waits until every gateway published a statement latency,
// which the throttle reads.
func (e *reshardEnv) waitLatencies() {
	eventually(e.t, time.Minute, "every gateway's latency published", func() bool {
		applied, err := e.store().GatewaysApplied(context.Background())
		if err != nil || len(applied) != len(e.gws) {
			return false
		}
		for _, a := range applied {
			if a.LatencyP99 == 0 {
				return false
			}
		}
		return true
	})
}

// waitShow polls 'reshard show' until ok holds for its output.
func (e *reshardEnv) waitShow(name, what string, ok func(show string) bool) {
	e.t.Helper()
	eventually(e.t, 3*time.Minute, what, func() bool {
		out, _ := e.shardctl(0, "reshard", "show", name)
		return ok(out)
	})
}

// ctlProc is a running 'reshard start' of workflow grow.
type ctlProc struct {
	cmd  *exec.Cmd
	done chan struct{} // closed once it exited; err is why
	err  error
}

// startController starts a controller of grow with env added; the test's
// end kills it if it still runs.
func (e *reshardEnv) startController(env ...string) *ctlProc {
	out := &syncbuf.Buffer{}
	cmd := exec.Command(filepath.Join(binDir, "shardctl"), "--etcd", strings.Join(e.etcd.Endpoints(), ","), "reshard", "start", "grow", "--lock-ttl", "2s")
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	p := &ctlProc{cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	e.t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-p.done
		if e.t.Failed() {
			e.t.Logf("shardctl reshard start (%v):\n%s", env, out.String())
		}
	})
	return p
}

func (p *ctlProc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// killController SIGKILLs p and starts the next controller.
func (e *reshardEnv) killController(p *ctlProc) *ctlProc {
	e.t.Helper()
	if err := p.cmd.Process.Kill(); err != nil {
		e.t.Fatal(err)
	}
	<-p.done
	return e.startController()
}

// waitExit waits for a controller that kills itself at a hook.
func (e *reshardEnv) waitExit(p *ctlProc) {
	e.t.Helper()
	select {
	case <-p.done:
		if p.err == nil || !strings.Contains(p.err.Error(), "killed") {
			e.t.Fatalf("the controller ended with %v, want killed at its hook", p.err)
		}
	case <-time.After(3 * time.Minute):
		e.t.Fatal("the controller did not reach its hook in 3 minutes")
	}
}

// verifyClean runs 'reshard verify' until it finds no difference: the
// streams carry what a fault held back. keep, if set, is called before
// each try (to start a controller again).
func (e *reshardEnv) verifyClean(name string, keep ...func()) {
	e.t.Helper()
	var out string
	deadline := time.Now().Add(3 * time.Minute)
	for !strings.Contains(out, "no difference") {
		if time.Now().After(deadline) {
			e.t.Fatalf("reshard verify %s found differences for 3 minutes; the last time:\n%s", name, out)
		}
		for _, f := range keep {
			f()
		}
		_, out = e.shardctlExit("reshard", "verify", name)
	}
}
