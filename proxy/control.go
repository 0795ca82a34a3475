package proxy

import (
	"context"
	"fmt"
	"maps"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/shardgate/shardgate/planner"
	"github.com/shardgate/shardgate/planner/engine"
	"github.com/shardgate/shardgate/topology"
)

// control runs a transaction-control statement the way Postgres does,
// across every shard the transaction touched.
func (s *session) control(ctx context.Context, st *planner.Statement) error {
	t := s.txn
	c := st.Control
	complete := func(tag string) error {
		s.be.Send(&pgproto3.CommandComplete{CommandTag: []byte(tag)})
		return nil
	}
	switch c.Kind {
	case planner.PrepareTransaction, planner.CommitPrepared, planner.RollbackPrepared:
		return s.clientTwoPhase(ctx, st)
	case planner.Begin:
		if t != nil && t.explicit {
			s.notice("25001", "there is already a transaction in progress")
			return complete("BEGIN")
		}
		if t == nil {
			s.txn = newTxn(true, st.SQL, s.settings)
		} else {
			// BEGIN inside a multi-statement string makes its implicit
			// transaction explicit; what ran before belongs to it.
			t.explicit, t.begin = true, st.SQL
		}
		return complete("BEGIN")
	case planner.Commit, planner.Rollback:
		if c.Chain && (t == nil || !t.explicit) {
			return &planner.Error{Code: "25P01", Message: fmt.Sprintf("%s AND CHAIN can only be used in transaction blocks", firstWords(st.SQL))}
		}
	}
	switch c.Kind {
	case planner.Commit:
		if t == nil {
			s.notice("25P01", "there is no transaction in progress")
			return complete("COMMIT")
		}
		if !t.explicit {
			// COMMIT inside a multi-statement string ends its implicit
			// transaction, with Postgres's warning.
			s.notice("25P01", "there is no transaction in progress")
			s.txn = nil
			if err := s.commit(ctx, t); err != nil {
				return err
			}
			s.settings = t.settings
			return complete("COMMIT")
		}
		s.txn = nil
		clear(s.portals) // portals end with their transaction
		if t.failed {
			_ = s.rollback(ctx, t)
			s.chain(c, t)
			return complete("ROLLBACK")
		}
		if err := s.commit(ctx, t); err != nil {
			return err
		}
		s.settings = t.settings
		s.chain(c, t)
		return complete("COMMIT")
	case planner.Rollback:
		if t == nil {
			s.notice("25P01", "there is no transaction in progress")
			return complete("ROLLBACK")
		}
		if !t.explicit {
			s.notice("25P01", "there is no transaction in progress")
			s.txn = nil
			if err := s.rollback(ctx, t); err != nil {
				return err
			}
			return complete("ROLLBACK")
		}
		s.txn = nil
		clear(s.portals)
		if err := s.rollback(ctx, t); err != nil {
			return err
		}
		s.chain(c, t)
		return complete("ROLLBACK")
	}
	if t == nil || !t.explicit {
		return &planner.Error{Code: "25P01", Message: fmt.Sprintf("%s can only be used in transaction blocks", firstWords(st.SQL))}
	}
	switch c.Kind {
	case planner.Savepoint:
		if err := s.onEveryBackend(ctx, t, st.SQL); err != nil {
			return err
		}
		t.replay = append(t.replay, "SAVEPOINT "+engine.QuoteIdent(c.Savepoint))
		t.savepoints = append(t.savepoints, savepoint{name: c.Savepoint, replay: len(t.replay), sequences: len(t.sequences), settings: maps.Clone(t.settings)})
		return complete("SAVEPOINT")
	case planner.Release:
		i, err := t.findSavepoint(c.Savepoint)
		if err != nil {
			return &planner.Error{Code: "3B001", Message: fmt.Sprintf("savepoint %q does not exist", c.Savepoint)}
		}
		if err := s.onEveryBackend(ctx, t, st.SQL); err != nil {
			return err
		}
		t.savepoints = t.savepoints[:i]
		t.replay = append(t.replay, "RELEASE "+engine.QuoteIdent(c.Savepoint))
		return complete("RELEASE")
	case planner.RollbackTo:
		i, err := t.findSavepoint(c.Savepoint)
		if err != nil {
			return &planner.Error{Code: "3B001", Message: fmt.Sprintf("savepoint %q does not exist", c.Savepoint)}
		}
		if err := s.onEveryBackend(ctx, t, st.SQL); err != nil {
			return err
		}
		sp := t.savepoints[i]
		t.savepoints = t.savepoints[:i+1]
		t.replay = t.replay[:sp.replay]
		t.sequences = t.sequences[:sp.sequences]
		t.settings = maps.Clone(sp.settings)
		t.failed = false
		return complete("ROLLBACK")
	}
	return fmt.Errorf("unknown transaction control %d", c.Kind)
}

// chain begins, after COMMIT AND CHAIN or ROLLBACK AND CHAIN, a new
// transaction with the BEGIN of the one that ended (its isolation level
// and access mode), as Postgres does, also after a failed transaction.
func (s *session) chain(c *planner.Control, ended *txn) {
	if c.Chain {
		s.txn = newTxn(true, ended.begin, s.settings)
	}
}

// onEveryBackend runs sql on each backend of the transaction.
func (s *session) onEveryBackend(ctx context.Context, t *txn, sql string) error {
	for _, shard := range t.order {
		if err := t.backends[shard].run(ctx, sql); err != nil {
			return err
		}
	}
	return nil
}

// set runs a SET, RESET or set_config statement. In a transaction it runs
// on every backend of the transaction (joining any shard if there is none
// yet) and lasts as Postgres says: SET LOCAL until the transaction ends, SET
// until COMMIT. Outside one it runs on a backend of any shard and becomes
// part of the settings every backend gets.
func (s *session) set(ctx context.Context, ks *topology.Keyspace, st *planner.Statement) error {
	set := st.Setting
	forwardOnce := func(b *backend, emitted *bool) error {
		out := s.emitter()
		if *emitted {
			out = discardRows
		}
		err := b.exec(ctx, st.SQL, out, func(tag engine.Tag) error {
			if !*emitted {
				s.be.Send(&pgproto3.CommandComplete{CommandTag: []byte(tag)})
			}
			return nil
		})
		*emitted = true
		return err
	}
	if t := s.txn; t != nil {
		if len(t.order) == 0 {
			err := s.onAnyShard(ks, func(shard string) error {
				_, err := s.join(ctx, t, shard)
				return err
			})
			if err != nil {
				return err
			}
		}
		emitted := false
		for _, shard := range t.order {
			if err := forwardOnce(t.backends[shard], &emitted); err != nil {
				return err
			}
		}
		s.reportParameters(t.backends[t.order[0]])
		t.replay = append(t.replay, st.SQL)
		if set.Name == "search_path" || set.Name == "" {
			// Statements prepared from now on resolve names anew.
			for _, b := range t.backends {
				b.scope += "\x00" + st.SQL
			}
		}
		if !set.Local {
			applySetting(t.settings, set, st.SQL)
			// COMMIT keeps the change on these backends, ROLLBACK undoes
			// it: either way, resync them from scratch when they return.
			t.settingsChanged = true
		}
		return nil
	}
	var b *backend
	err := s.onAnyShard(ks, func(shard string) error {
		var err error
		b, err = s.backendFor(ctx, shard, nil)
		return err
	})
	if err != nil {
		return err
	}
	defer s.giveBack(b)
	emitted := false
	if err := forwardOnce(b, &emitted); err != nil {
		return err
	}
	if !set.Local {
		applySetting(s.settings, set, st.SQL)
		if b.state.settings == nil {
			b.state.settings = map[string]string{}
		}
		applySetting(b.state.settings, set, st.SQL)
		// RESET returns to the startup value, which the backend lacks.
		if err := b.syncSettings(ctx, s.effective(nil)); err != nil {
			return err
		}
	}
	s.reportParameters(b)
	return nil
}

// applySetting records a setting statement in settings.
func applySetting(settings map[string]string, set *planner.Setting, sql string) {
	switch {
	case set.Reset && set.Name == "":
		clear(settings)
	case set.Reset:
		delete(settings, set.Name)
	default:
		settings[set.Name] = sql
	}
}
