package proxy

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/shardgate/shardgate/planner"
)

// codeNotInPrerequisiteState answers a PAUSE of what is paused and a
// RESUME of what is not.
const codeNotInPrerequisiteState = "55000"

// pauseTimeout bounds how long PAUSE waits for the transactions it must let
// finish: a client that keeps one open would otherwise keep PAUSE, and
// every statement held meanwhile, waiting for ever.
const pauseTimeout = 30 * time.Second

// pausePoll is how often PAUSE looks whether the sessions it waits for are
// done. Sessions do not report the end of their statements to anyone, so
// PAUSE looks; it runs rarely, and the look is cheap.
const pausePoll = 10 * time.Millisecond

// pauseGate holds the statements of client sessions while an admin has
// paused their keyspace (or everything) with the admin console's PAUSE,
// as pgbouncer's PAUSE does: new statements wait, they do not fail, and
// RESUME lets them go. Safe for concurrent use.
type pauseGate struct {
	// timeout bounds PAUSE's wait; tests shorten it.
	timeout time.Duration
	// anyPaused is set while anything is paused, so that statements pass
	// the gate without its lock the rest of the time.
	anyPaused atomic.Bool
	// xacts counts the transactions begun: statements and extended-protocol
	// batches that found no transaction open (as Postgres's xact_commit
	// counts them, near enough), for SHOW STATS.
	xacts atomic.Int64
	// heldNanos is the time statements spent held, for SHOW STATS.
	heldNanos atomic.Int64

	mu     sync.Mutex
	all    bool            // PAUSE without a keyspace
	paused map[string]bool // PAUSE of one keyspace
	// resumed is closed (and replaced) whenever a pause ends, so that the
	// held sessions look again.
	resumed chan struct{}
	// held are the sessions held now, with the time each was stopped.
	held map[*session]time.Time
}

func newPauseGate() *pauseGate {
	return &pauseGate{timeout: pauseTimeout, paused: map[string]bool{}, resumed: make(chan struct{}), held: map[*session]time.Time{}}
}

// covers reports whether keyspace ks is paused. g.mu must be held.
func (g *pauseGate) covers(ks string) bool { return g.all || g.paused[ks] }

// waitResumed is called before a client's statement (a Query, or the
// messages up to a Sync or Flush) runs: while an admin's PAUSE covers the
// session's keyspace it holds the statement until RESUME. A cancel request
// for the session or the session's end stops the wait with an error.
//
// A session inside a transaction is never held: it holds backend
// connections and maybe locks, and PAUSE waits for its transaction to end.
func (s *session) waitResumed(ctx context.Context) error {
	s.requested.Store(time.Now().UnixNano())
	if s.txn != nil {
		return nil
	}
	g := s.srv.gate
	g.xacts.Add(1)
	if !g.anyPaused.Load() {
		return nil
	}
	ctx, done := s.statementContext(ctx)
	defer done()
	return g.wait(ctx, s)
}

// wait holds s while its keyspace is paused or until ctx ends.
func (g *pauseGate) wait(ctx context.Context, s *session) error {
	g.mu.Lock()
	if !g.covers(s.keyspace) {
		g.mu.Unlock()
		return nil
	}
	start := time.Now()
	g.held[s] = start
	defer func() {
		g.mu.Lock()
		delete(g.held, s)
		g.mu.Unlock()
		g.heldNanos.Add(int64(time.Since(start)))
	}()
	for g.covers(s.keyspace) {
		resumed := g.resumed
		g.mu.Unlock()
		select {
		case <-resumed:
		case <-ctx.Done():
			return ctx.Err()
		}
		g.mu.Lock()
	}
	g.mu.Unlock()
	return nil
}

// heldSince returns when s was held, if it is held now. g.mu must be held.
func (g *pauseGate) heldSince(s *session) (time.Time, bool) {
	t, ok := g.held[s]
	return t, ok
}

// start pauses keyspace ks ("" for every keyspace): from now on new
// statements of its sessions are held.
func (g *pauseGate) start(ks string) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	switch {
	case g.all:
		return &planner.Error{Code: codeNotInPrerequisiteState, Message: "everything is paused already", Hint: "RESUME ends the pause."}
	case ks != "" && g.paused[ks]:
		return &planner.Error{Code: codeNotInPrerequisiteState, Message: fmt.Sprintf("keyspace %q is paused already", ks)}
	case ks == "":
		g.all = true
	default:
		g.paused[ks] = true
	}
	g.anyPaused.Store(true)
	return nil
}

// resume ends the pause of keyspace ks, or with ks "" every pause, and
// lets the held statements run.
func (g *pauseGate) resume(ks string) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	switch {
	case ks == "" && !g.all && len(g.paused) == 0:
		return &planner.Error{Code: codeNotInPrerequisiteState, Message: "nothing is paused"}
	case ks == "":
		g.all = false
		clear(g.paused)
	case g.paused[ks]:
		delete(g.paused, ks)
	case g.all:
		return &planner.Error{Code: codeNotInPrerequisiteState, Message: "everything is paused, not one keyspace",
			Hint: "RESUME without a keyspace ends the pause."}
	default:
		return &planner.Error{Code: codeNotInPrerequisiteState, Message: fmt.Sprintf("keyspace %q is not paused", ks)}
	}
	g.anyPaused.Store(g.all || len(g.paused) > 0)
	close(g.resumed)
	g.resumed = make(chan struct{})
	return nil
}

// isPaused reports whether keyspace ks is paused.
func (g *pauseGate) isPaused(ks string) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.covers(ks)
}

// pause pauses keyspace ks ("" for every keyspace) and returns once the
// pause is in effect: every session of it is between transactions, and
// whatever it sends next is held until RESUME. Sessions inside a
// transaction go on until it ends.
//
// If that takes longer than the gate's timeout, or ctx ends first (a
// cancel request), pause takes the pause back, lets any statement it held
// run, and returns an error: a half-done PAUSE would hold new statements
// for as long as one client keeps its transaction open, which is an
// outage rather than a maintenance window.
func (srv *Server) pause(ctx context.Context, ks string) error {
	g := srv.gate
	if err := g.start(ks); err != nil {
		return err
	}
	wctx, cancel := context.WithTimeout(ctx, g.timeout)
	defer cancel()
	tick := time.NewTicker(pausePoll)
	defer tick.Stop()
	for {
		busy := srv.busySessions(ks)
		if len(busy) == 0 {
			return nil
		}
		select {
		case <-tick.C:
			continue
		case <-wctx.Done():
		}
		// Taking back what start did cannot fail.
		_ = g.resume(ks)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return &planner.Error{Code: codeQueryCanceled,
			Message: fmt.Sprintf("PAUSE gave up after %s: %d sessions are still in a transaction or running a statement; nothing is paused",
				g.timeout, len(busy)),
			Hint: "Waiting for: " + strings.Join(busy, ", ") + ". SHOW CLIENTS shows them; PAUSE again once they finish."}
	}
}

// busySessions describes the client sessions of keyspace ks ("" for every
// keyspace) that PAUSE must wait for: those inside a transaction, and
// those running a statement the gate did not hold.
func (srv *Server) busySessions(ks string) []string {
	srv.mu.Lock()
	defer srv.mu.Unlock()
	srv.gate.mu.Lock()
	defer srv.gate.mu.Unlock()
	var busy []string
	for sess, state := range srv.sessions {
		// A session still logging in has no keyspace to read yet; its
		// first statement meets the gate.
		if state == clientLogin || sess.console || ks != "" && sess.keyspace != ks {
			continue
		}
		if _, held := srv.gate.heldSince(sess); state == clientIdleInTransaction || state == clientActive && !held {
			busy = append(busy, fmt.Sprintf("%s@%s (%s)", sess.user, sess.addr, state))
		}
	}
	sort.Strings(busy)
	return busy
}
