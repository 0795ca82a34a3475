package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shardgate/shardgate/migrate"
	"github.com/shardgate/shardgate/topology"
)

// movingAccounts returns n accounts of the logical shards a grow to s2,s3
// moves (16-31 of s0, 48-63 of s1), half from each source.
func (e *reshardEnv) movingAccounts(n int) []int64 {
	var out []int64
	for i := range 2 {
		lo, hi := migrate.KeyRange(64, i*32+16, i*32+31)
		for _, r := range mustQuery(e.t, e.backend(i), fmt.Sprintf("select id from accounts where hashint8extended(id, 0) between %d and %d order by id limit %d", lo, hi, n/2)) {
			id, _ := strconv.ParseInt(r[0], 10, 64)
			out = append(out, id)
		}
	}
	return out
}

// shadowSummary reads what the gateways' shadow reads of workflow found,
// from the first gateway's admin endpoint.
func (e *reshardEnv) shadowSummary(workflow string) topology.ShadowSummary {
	e.t.Helper()
	req, _ := http.NewRequest("GET", "http://"+e.gws[0].admin+"/workflows/"+workflow+"/shadow", nil)
	req.Header.Set("Authorization", "Bearer "+reshardToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	var sum topology.ShadowSummary
	if resp.StatusCode != http.StatusOK {
		e.t.Fatalf("/workflows/%s/shadow: %s", workflow, resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(&sum); err != nil {
		e.t.Fatal(err)
	}
	return sum
}

// shardctlExit runs shardctl and returns its exit code and output.
func (e *reshardEnv) shardctlExit(args ...string) (int, string) {
	cmd := exec.Command(filepath.Join(binDir, "shardctl"), append([]string{"--etcd", strings.Join(e.etcd.Endpoints(), ",")}, args...)...)
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode(), string(out)
	}
	if err != nil {
		e.t.Fatal(err)
	}
	return 0, string(out)
}

// probes reads moving accounts by key through every gateway, in both
// protocols, until stop: their notes (whose bodies nothing changes), their
// balances and entries. Key hot, if not 0, is read every round.
func (e *reshardEnv) probes(accounts []int64, hot func() int64, stop chan struct{}) *sync.WaitGroup {
	var wg sync.WaitGroup
	for g, gw := range e.gws {
		conn := gw.connect("app")
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(g), 3))
			for {
				select {
				case <-stop:
					return
				case <-time.After(5 * time.Millisecond):
				}
				id := accounts[rng.IntN(len(accounts))]
				if h := hot(); h != 0 && rng.IntN(3) == 0 {
					id = h
				}
				key := []byte(strconv.FormatInt(id, 10))
				var err error
				switch rng.IntN(4) {
				case 0:
					_, err = conn.ExecParams(context.Background(), "select account_id, seq, body from notes where account_id = $1", [][]byte{key}, nil, nil, nil).Close()
				case 1:
					_, err = conn.Exec(context.Background(), fmt.Sprintf("select account_id, seq, body from notes where account_id = %d", id)).ReadAll()
				case 2:
					_, err = conn.ExecParams(context.Background(), "select id, balance from accounts where id = $1", [][]byte{key}, nil, nil, nil).Close()
				default:
					_, err = conn.Exec(context.Background(), fmt.Sprintf("select id, amount from entries where account_id = %d", id)).ReadAll()
				}
				if err != nil {
					e.t.Errorf("a probe read of account %d: %v", id, err)
					return
				}
			}
		})
	}
	return &wg
}

// TestReshardShadowAndReads: while catching up under the write workload,
// shadow reads at 100% find no difference; a row changed on the target
// behind the workflow's back is found with its key, and the write cutover
// is refused until the difference is older than the gate's window. Then,
// at 50% of reads sent to the targets, about half of the reads of moving
// logical shards are answered by the targets (each answer names the
// server that gave it), every answer is what the sources hold, a session
// reads its own writes, and the workload's readers get exact answers over
// every shard; the cutover and the invariant check follow.
func TestReshardShadowAndReads(t *testing.T) {
	e := newReshardEnv(t)
	w := e.run(4)
	w.waitFor(200)
	e.shardctl(0, "reshard", "create", "grow", "--keyspace", "app", "--to", "s2,s3", "--apply")
	e.controller("grow")
	e.waitPhase("grow", "catching_up")
	accounts := e.movingAccounts(2000)

	// No difference under the writes.
	const window = 15 * time.Second
	e.shardctl(0, "reshard", "shadow", "grow", "--percent", "100", "--window", window.String())
	stop := make(chan struct{})
	var hot struct {
		sync.Mutex
		id int64
	}
	hotID := func() int64 {
		hot.Lock()
		defer hot.Unlock()
		return hot.id
	}
	readers := e.probes(accounts, hotID, stop)
	eventually(t, 2*time.Minute, "400 shadow reads compared", func() bool {
		return e.shadowSummary("grow").Total.Matches >= 400
	})
	w.waitFor(300)
	clean := e.shadowSummary("grow")
	t.Logf("shadow reads under the workload: %+v", clean.Total)
	if clean.Total.Differences != 0 {
		t.Fatalf("shadow reads found differences with nothing wrong on the targets: %+v", clean.Recent)
	}

	// A note changed on its target is found, and holds the cutover back.
	bad := accounts[len(accounts)/3]
	changed := 0
	for i := 2; i < 4; i++ {
		tag, err := e.backend(i).Exec(context.Background(), fmt.Sprintf("update notes set body = 'changed' where account_id = %d", bad)).ReadAll()
		if err != nil {
			t.Fatal(err)
		}
		changed += int(tag[0].CommandTag.RowsAffected())
	}
	if changed != 1 {
		t.Fatalf("changed %d notes of account %d on the targets, want 1", changed, bad)
	}
	hot.Lock()
	hot.id = bad
	hot.Unlock()
	key := strconv.FormatInt(bad, 10)
	eventually(t, time.Minute, "a shadow difference on account "+key, func() bool {
		for _, d := range e.shadowSummary("grow").Recent {
			if d.Key == key && strings.Contains(d.SQL, "notes") {
				return true
			}
		}
		return false
	})
	found := e.shadowSummary("grow")
	for _, d := range found.Recent {
		if d.Key != key {
			t.Errorf("a shadow difference on account %s, which nothing changed: %+v", d.Key, d)
		}
	}
	code, out := e.shardctlExit("reshard", "cutover", "grow")
	if code == 0 || !strings.Contains(out, "shadow reads found") || !strings.Contains(out, "key "+key) {
		t.Fatalf("reshard cutover with a difference: exit %d\n%s\nwant it refused, naming key %s", code, out, key)
	}
	show, _ := e.shardctl(0, "reshard", "show", "grow")
	t.Logf("reshard show:\n%s", show)
	if !strings.Contains(show, key) {
		t.Errorf("reshard show does not name account %s's difference", key)
	}
	mustQuery(t, e.backend(2), fmt.Sprintf("update notes set body = 'note %d' where account_id = %d", bad, bad))
	mustQuery(t, e.backend(3), fmt.Sprintf("update notes set body = 'note %d' where account_id = %d", bad, bad))
	close(stop)
	readers.Wait()
	w.end()
	e.shardctl(0, "reshard", "shadow", "grow", "--percent", "0")

	// Half the reads to the targets; the writes are stopped, so every
	// answer must be what was acknowledged.
	e.shardctl(0, "reshard", "switch", "grow", "--reads", "50%")
	port := map[string]string{}
	for i := range 4 {
		port[strconv.Itoa(e.shards[i].Port)] = fmt.Sprintf("s%d", i)
	}
	conn := e.gws[0].connect("app")
	served := map[string]int{}
	const reads = 400
	for i := range reads {
		id := accounts[(i*7)%len(accounts)]
		var sql, want string
		if i%2 == 0 {
			sql, want = fmt.Sprintf("select balance, current_setting('port') from accounts where id = %d", id), strconv.FormatInt(w.balance[id], 10)
		} else {
			sql, want = fmt.Sprintf("select body, current_setting('port') from notes where account_id = %d", id), fmt.Sprintf("note %d", id)
		}
		rows := mustQuery(t, conn, sql)
		if len(rows) != 1 || rows[0][0] != want {
			t.Fatalf("%s gave %v, want %q", sql, rows, want)
		}
		served[port[rows[0][1]]]++
	}
	toTargets := served["s2"] + served["s3"]
	t.Logf("at 50%% reads, %d of %d reads of moving accounts were answered by the targets: %v", toTargets, reads, served)
	if toTargets < reads*30/100 || toTargets > reads*70/100 {
		t.Errorf("the targets answered %d of %d reads at 50%%", toTargets, reads)
	}
	page := scrapeMetrics(t, e.gws[0].admin, reshardToken)
	if !strings.Contains(page, `shardgate_reshard_reads_total{served_by="target",workflow="grow"}`) {
		t.Errorf("/metrics lacks the reads served by the targets:\n%s", grepLines(page, "shardgate_reshard_reads"))
	}

	// A session reads its own writes, wherever its reads go.
	for i := range 100 {
		id := accounts[i]
		mustQuery(t, conn, fmt.Sprintf("update accounts set balance = balance + 1 where id = %d", id))
		w.balance[id]++
		rows := mustQuery(t, conn, fmt.Sprintf("select balance from accounts where id = %d", id))
		if rows[0][0] != strconv.FormatInt(w.balance[id], 10) {
			t.Fatalf("account %d: read %s after writing %d", id, rows[0][0], w.balance[id])
		}
	}

	// Reads over every shard stay exact with half of them at the targets.
	w = e.runAfter(w, 4)
	w.waitFor(600)
	eventually(t, window+time.Minute, "the cutover allowed once the difference aged out of the gate's window", func() bool {
		code, out = e.shardctlExit("reshard", "cutover", "grow", "--batch", "8")
		return code == 0
	})
	if strings.Count(out, "cut over") != 4 {
		t.Errorf("reshard cutover printed\n%s\nwant four batches cut over", out)
	}
	w.waitFor(300)
	if verified, _ := e.shardctl(0, "reshard", "verify", "grow"); !strings.Contains(verified, "no difference") {
		t.Errorf("reshard verify printed\n%s", verified)
	}
	w.end()
	t.Logf("%d writes acknowledged", w.acked)
	e.check(w, 4)
	e.shardctl(0, "reshard", "complete", "grow")
	if tr := mustQuery(t, e.gws[0].connect("app"), "select count(*) from accounts"); tr[0][0] != strconv.Itoa(reshardAccounts) {
		t.Errorf("after complete: %s accounts", tr[0][0])
	}
	e.check(w, 4)
	e.ownRowsOnly()
}
