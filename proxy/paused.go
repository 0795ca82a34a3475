package proxy

import (
	"context"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/shardgate/shardgate/planner/engine"
)

// pausedRun is a result from several shards that row-limited Executes
// (JDBC's fetch size, a driver's cursor) read in a transaction: its plan
// runs on its own goroutine and stops in the hand-over of each batch
// until an Execute takes the batch's rows, so the merge keeps its state
// between Executes and holds one batch per shard, whatever the result's
// size. While it is paused its shards' connections are busy with it: any
// other message first settles it (see settle).
type pausedRun struct {
	portal  *portal
	name    string             // the client's name of the portal
	txn     *txn               // the transaction the result runs in
	batches chan *engine.Batch // the plan's next batch
	next    chan struct{}      // the batch is read: go on
	done    chan runResult     // the plan's end
	cancel  context.CancelFunc
	cur     *engine.Batch // the batch being read, off rows of it sent
	off     int
	ended   *runResult
}

type runResult struct {
	tag engine.Tag
	err error
}

// pause starts run, the plan of portal pt, on its own goroutine, under a
// context that outlives this Execute, and answers the Execute with its
// first maxRows rows.
func (s *session) pause(ctx context.Context, pt *portal, name string, maxRows uint32, run func(context.Context, func(*engine.Batch) error) (engine.Tag, error)) error {
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	r := &pausedRun{portal: pt, name: name, txn: s.txn, batches: make(chan *engine.Batch), next: make(chan struct{}),
		done: make(chan runResult, 1), cancel: cancel}
	pt.paused, s.paused = r, r
	go func() {
		tag, err := run(runCtx, func(b *engine.Batch) error {
			select {
			case r.batches <- b:
			case <-runCtx.Done():
				return runCtx.Err()
			}
			select {
			case <-r.next:
				return nil
			case <-runCtx.Done():
				return runCtx.Err()
			}
		})
		r.done <- runResult{tag, err}
	}()
	return s.readPaused(ctx, pt, maxRows)
}

// readPaused answers an Execute of a paused portal: its next maxRows
// (0: all) rows, then PortalSuspended, or CommandComplete counting the
// rows of this Execute once the result ends.
func (s *session) readPaused(ctx context.Context, pt *portal, maxRows uint32) error {
	r := pt.paused
	sent := uint32(0)
	for maxRows == 0 || sent < maxRows {
		if r.cur == nil {
			b, res, err := r.receive(ctx)
			if err != nil {
				// A cancel request or statement_timeout ends the
				// result, as it would end Postgres's portal.
				s.stopPaused()
				return err
			}
			if res != nil {
				s.paused, pt.paused = nil, nil
				if res.err != nil {
					s.countRefusal(res.err)
					return res.err
				}
				verb, _, _ := strings.Cut(string(res.tag), " ")
				return s.portalResult(pt, engine.Tag(verb+" "+strconv.FormatUint(uint64(sent), 10)), false, nil)
			}
			if b.Fields != nil {
				err := s.emit(b)
				r.next <- struct{}{}
				if err != nil {
					s.stopPaused()
					return err
				}
				continue
			}
			r.cur, r.off = b, 0
		}
		n := len(r.cur.Rows) - r.off
		if maxRows > 0 {
			n = min(n, int(maxRows-sent))
		}
		if err := s.emit(&engine.Batch{Rows: r.cur.Rows[r.off : r.off+n]}); err != nil {
			s.stopPaused()
			return err
		}
		r.off += n
		sent += uint32(n)
		if r.off == len(r.cur.Rows) {
			r.cur = nil
			r.next <- struct{}{}
		}
	}
	s.be.Send(&pgproto3.PortalSuspended{})
	return nil
}

// receive waits for the plan's next batch, or its end.
func (r *pausedRun) receive(ctx context.Context) (*engine.Batch, *runResult, error) {
	if r.ended != nil {
		return nil, r.ended, nil
	}
	select {
	case b := <-r.batches:
		return b, nil, nil
	case res := <-r.done:
		r.ended = &res
		return nil, &res, nil
	case <-ctx.Done():
		return nil, nil, ctx.Err()
	}
}

// continuesPaused reports whether msg leaves a paused result paused: its
// next Execute, and the Sync or Flush around it.
func (s *session) continuesPaused(msg pgproto3.FrontendMessage) bool {
	switch m := msg.(type) {
	case *pgproto3.Sync, *pgproto3.Flush:
		return true
	case *pgproto3.Execute:
		return m.Portal == s.paused.name
	}
	return false
}

// settle makes a paused result give its shards' connections back before
// another message needs them: it reads the rest of the result and keeps
// it in the portal for the next Executes, up to maxHeldBytes — past which
// it reads on to the end without keeping rows, so the transaction stays
// usable, and the portal's next Execute fails with 53200.
func (s *session) settle() {
	r := s.paused
	pt := r.portal
	s.paused, pt.paused = nil, nil
	hold := s.holdRows(pt, 0)
	pt.heldTxn = r.txn
	var holdErr error
	keep := func(b *engine.Batch) {
		if holdErr == nil && b.Fields == nil {
			holdErr = hold(b)
		}
	}
	if r.cur != nil {
		keep(&engine.Batch{Rows: r.cur.Rows[r.off:]})
		r.cur = nil
		r.next <- struct{}{}
	}
	for {
		b, res, _ := r.receive(context.Background())
		if res != nil {
			verb, _, _ := strings.Cut(string(res.tag), " ")
			pt.heldVerb, pt.heldErr = verb, res.err
			if holdErr != nil {
				pt.heldErr = holdErr
			}
			return
		}
		keep(b)
		r.next <- struct{}{}
	}
}

// stopPaused ends a paused result without reading it: the session ends,
// or the Execute reading it failed.
func (s *session) stopPaused() {
	r := s.paused
	if r == nil {
		return
	}
	s.paused, r.portal.paused = nil, nil
	r.cancel()
	if r.ended == nil {
		<-r.done
	}
}
