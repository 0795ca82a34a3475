package main

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/shardgate/shardgate/internal/pgtest"
)

// showField returns the value of a 'reshard show' line that starts with
// key.
func showField(out, key string) string {
	for _, line := range strings.Split(out, "\n") {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(line), key); ok {
			return strings.TrimSpace(rest)
		}
	}
	return ""
}

// TestReshardThrottle: with a latency limit no gateway can meet, the copy
// holds its rows; while a source's standby does not replay, and while a
// source runs more statements at once than allowed, the streams hold the
// sources' changes; 'reshard show' says why each time. A transaction
// left open on a source holds the cutover's batches from there back. Lifting the
// limit, and the standby catching up, let each go on, and the reshard ends
// with every acknowledged write in place.
func TestReshardThrottle(t *testing.T) {
	e := newReshardEnv(t)
	standby := pgtest.StartStandby(t, e.shards[0])
	w := e.run(2)
	w.waitFor(100)
	// The controller reads the gateways' latencies once before it copies:
	// they must have published some by then.
	e.waitLatencies()
	e.shardctl(0, "reshard", "create", "grow", "--keyspace", "app", "--to", "s2,s3", "--apply")
	e.shardctl(0, "reshard", "throttle", "grow", "--max-latency", "1ns")
	e.controller("grow")
	e.waitPhase("grow", "copying")
	var show string
	eventually(t, time.Minute, "the copy backing off", func() bool {
		show, _ = e.shardctl(0, "reshard", "show", "grow")
		return strings.Contains(showField(show, "throttle:"), "backing off")
	})
	if !strings.Contains(show, "p99 statement latency") {
		t.Errorf("reshard show does not say why the copy backs off:\n%s", show)
	}
	w.waitFor(300) // time for a copy that is not held to finish
	show, _ = e.shardctl(0, "reshard", "show", "grow")
	if phase := showField(show, "phase:"); phase != "copying" {
		t.Fatalf("the copy went on while held: phase %s\n%s", phase, show)
	}
	t.Logf("held:\n%s", show)

	e.shardctl(0, "reshard", "throttle", "grow", "--max-latency", "0")
	e.waitPhase("grow", "catching_up")
	show, _ = e.shardctl(0, "reshard", "show", "grow")
	if strings.Contains(showField(show, "throttle:"), "backing off") {
		t.Errorf("still backing off with no limit:\n%s", show)
	}

	// The streams hold while a source's standby replays too far behind:
	// the sources' changes wait.
	e.shardctl(0, "reshard", "throttle", "grow", "--max-replica-lag", "1s")
	replica, err := pgconn.Connect(context.Background(), standby.DSN("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer replica.Close(context.Background())
	mustQuery(t, replica, "select pg_wal_replay_pause()")
	eventually(t, time.Minute, "the streams backing off", func() bool {
		show, _ = e.shardctl(0, "reshard", "show", "grow")
		return strings.Contains(showField(show, "throttle:"), "backing off")
	})
	if !strings.Contains(show, "source s0's standbys replay") {
		t.Errorf("reshard show does not say why the streams back off:\n%s", show)
	}
	// A change made now stays on its source while the streams hold.
	x := e.movingAccounts(2)[0]
	onTargets := func() string {
		t.Helper()
		for i := 2; i < 4; i++ {
			if rows := mustQuery(t, e.backend(i), fmt.Sprintf("select body from notes where account_id = %d", x)); len(rows) == 1 {
				return rows[0][0]
			}
		}
		t.Fatalf("account %d's note is on no target", x)
		return ""
	}
	mustQuery(t, e.gws[0].connect("app"), fmt.Sprintf("update notes set body = 'held' where account_id = %d", x))
	w.waitFor(300)
	if got := onTargets(); got == "held" {
		t.Fatalf("a change reached the target while the streams held")
	}
	mustQuery(t, replica, "select pg_wal_replay_resume()")
	eventually(t, time.Minute, "the streams going on once the standby caught up", func() bool {
		show, _ = e.shardctl(0, "reshard", "show", "grow")
		return !strings.Contains(showField(show, "throttle:"), "backing off")
	})
	eventually(t, time.Minute, "the held change on the target", func() bool { return onTargets() == "held" })

	// And while a source runs too many statements at once.
	e.shardctl(0, "reshard", "throttle", "grow", "--max-replica-lag", "0", "--max-active", "3")
	var sleepers sync.WaitGroup
	for range 5 {
		conn := e.backend(0)
		sleepers.Go(func() { _, _ = conn.Exec(context.Background(), "select pg_sleep(120)").ReadAll() })
	}
	eventually(t, time.Minute, "the streams backing off for a busy source", func() bool {
		show, _ = e.shardctl(0, "reshard", "show", "grow")
		return strings.Contains(showField(show, "throttle:"), "statements at once")
	})
	mustQuery(t, e.backend(0), "select pg_cancel_backend(pid) from pg_stat_activity where query = 'select pg_sleep(120)'")
	sleepers.Wait()
	eventually(t, time.Minute, "the streams going on once the source is quiet", func() bool {
		show, _ = e.shardctl(0, "reshard", "show", "grow")
		return !strings.Contains(showField(show, "throttle:"), "backing off")
	})
	// A transaction on a source that began before a batch's fence, which
	// no gateway drains (here a client of the source itself), holds the
	// batch back: it could commit there after the flip.
	direct := e.backend(0)
	mustQuery(t, direct, "begin")
	mustQuery(t, direct, "select count(*) from accounts")
	if code, out := e.shardctlExit("reshard", "cutover", "grow", "--wait", "8s"); code == 0 {
		t.Fatalf("the cutover went on past an older transaction on s0:\n%s", out)
	}
	show, _ = e.shardctl(0, "reshard", "show", "grow")
	if !strings.Contains(show, "began before the fence") {
		t.Errorf("reshard show does not name the older transaction:\n%s", show)
	}
	mustQuery(t, direct, "commit")
	e.waitPhase("grow", "cut_over")
	w.waitFor(200)
	if verified, _ := e.shardctl(0, "reshard", "verify", "grow"); !strings.Contains(verified, "no difference") {
		t.Errorf("reshard verify printed\n%s", verified)
	}
	w.end()
	e.check(w, 4)
	e.shardctl(0, "reshard", "complete", "grow")
	e.check(w, 4)
}
