package proxy

import (
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/shardgate/shardgate/planner"
)

// gatewayPIDBase is where the process ids the gateway gives sessions start:
// above any a Linux backend can have (PID_MAX_LIMIT is 1<<22), so that
// pg_cancel_backend and pg_terminate_backend of such an id are the
// gateway's to answer, for the session it names. A session that owns its
// backend (session pooling, unsharded) is told that backend's real id.
const gatewayPIDBase = 1 << 22

// gatewayPID draws a session's process id from the random r.
func gatewayPID(r uint32) uint32 { return gatewayPIDBase + r%(1<<31-gatewayPIDBase) }

// signalled answers a pg_cancel_backend or pg_terminate_backend of a
// gateway session's process id, as Postgres answers one of a backend's:
// it reports whether it did (false: the call goes to a shard as it is).
// bind is nil for the simple protocol, which also gets a RowDescription.
func (s *session) signalled(st *planner.Statement, bind *binding) (bool, error) {
	sig := st.Signal
	if sig == nil {
		return false, nil
	}
	if sig.Self {
		if !sig.Terminate || s.ownsBackends() {
			return false, nil // the shard does it to the session's own backend
		}
		// The backend a pooled session runs on is not its own: what the
		// client asks for is the end of its session, as on Postgres,
		// not of a connection other sessions use next.
		s.terminated.Store(true)
		return true, &planner.Error{Code: codeAdminShutdown, Message: "terminating connection due to administrator command"}
	}
	pid := sig.PID
	if sig.PIDParam > 0 {
		if bind == nil {
			return false, nil
		}
		text, ok := bind.Text(sig.PIDParam - 1)
		if !ok {
			return false, nil
		}
		v, err := strconv.ParseInt(text, 10, 64)
		if err != nil {
			return false, nil
		}
		pid = v
	}
	if pid < gatewayPIDBase || pid > 1<<31-1 {
		return false, nil
	}
	target := s.srv.sessionByPID(uint32(pid))
	name, verb := "pg_cancel_backend", "cancel query"
	if sig.Terminate {
		name, verb = "pg_terminate_backend", "terminate process"
	}
	done := target != nil
	switch {
	case target == nil:
		s.notice("01000", fmt.Sprintf("PID %d is not a PostgreSQL backend process", pid))
	case target.user != s.user:
		return true, &planner.Error{Code: "42501", Message: fmt.Sprintf("permission denied to %s", verb),
			Hint: fmt.Sprintf("Only the user a session logged in as may %s of it with %s.", verb, name)}
	case sig.Terminate:
		target.terminate()
	default:
		target.cancelStatement()
	}
	value := []byte("f")
	if done {
		value = []byte("t")
	}
	if bind == nil {
		s.be.Send(&pgproto3.RowDescription{Fields: []pgproto3.FieldDescription{{Name: []byte(name), DataTypeOID: 16, DataTypeSize: 1, TypeModifier: -1}}})
	} else if len(bind.resultFormats) > 0 && bind.resultFormats[0] == 1 {
		value = []byte{0}
		if done {
			value[0] = 1
		}
	}
	s.be.Send(&pgproto3.DataRow{Values: [][]byte{value}})
	s.be.Send(&pgproto3.CommandComplete{CommandTag: []byte("SELECT 1")})
	return true, nil
}

// terminate ends the session as pg_terminate_backend ends a backend: its
// statement is cancelled, and it ends with FATAL 57P01 at once, also while
// it waits for its client.
func (s *session) terminate() {
	s.terminated.Store(true)
	s.cancelStatement()
	_ = s.conn.SetReadDeadline(time.Now())
}

// sessionByPID returns the session the gateway gave process id pid.
func (s *Server) sessionByPID(pid uint32) *session {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pids[pid]
}

// keyPID is the process id of a cancel key.
func keyPID(key uint64) uint32 { return uint32(key >> 32) }
