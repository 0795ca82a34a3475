package proxy

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
)

// TestMessagesAfterLogin: a message of a type Postgres does not know ends
// the session with FATAL 08P01, as Postgres ends it; a fastpath function
// call with the wrong arguments gets the shard's own error and the session
// goes on.
func TestMessagesAfterLogin(t *testing.T) {
	g := startGateway(t, DefaultPoolConfig)

	conn := dialGateway(t, g)
	startSession(t, conn)
	if _, err := conn.Write([]byte{'!', 0, 0, 0, 4}); err != nil {
		t.Fatal(err)
	}
	b, _ := readUntil(t, conn, 10*time.Second)
	msgs, err := decodeBackend(b)
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 1 {
		t.Fatalf("answer to an unknown message: %d messages %+v, want one FATAL", len(msgs), msgs)
	}
	if e, ok := msgs[0].(*pgproto3.ErrorResponse); !ok || e.Severity != "FATAL" || e.Code != codeProtocolViolation {
		t.Fatalf("answer to an unknown message: %+v, want FATAL 08P01", msgs[0])
	}

	conn = dialGateway(t, g)
	startSession(t, conn)
	fe := pgproto3.NewFrontend(conn, conn)
	fe.Send(&pgproto3.FunctionCall{Function: 764}) // lo_import(text)
	fe.Send(&pgproto3.Query{String: "select 1"})
	if err := fe.Flush(); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	var got []string
	for ready := 0; ready < 2; {
		msg, err := fe.Receive()
		if err != nil {
			t.Fatalf("after %v: %v", got, err)
		}
		switch m := msg.(type) {
		case *pgproto3.ErrorResponse:
			got = append(got, m.Severity+" "+m.Code)
		case *pgproto3.ReadyForQuery:
			got = append(got, "ready")
			ready++
		case *pgproto3.DataRow:
			got = append(got, "row "+string(m.Values[0]))
		}
	}
	want := []string{"ERROR 08P01", "ready", "row 1", "ready"}
	if len(got) != len(want) {
		t.Fatalf("fastpath call, then a query: %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("fastpath call, then a query: %v, want %v", got, want)
		}
	}
}

// TestStatementSizeLimit: a query string or Parse longer than
// max_statement_size gets 54000 and the session goes on; COPY data is not
// statement text.
func TestStatementSizeLimit(t *testing.T) {
	g := startGateway(t, DefaultPoolConfig)
	g.srv.SetLimits(Limits{MaxStatementSize: 1000})
	c := g.connect(t, "app", "")
	long := "select '" + strings.Repeat("x", 1000) + "'"
	if _, err := c.Exec(context.Background(), long).ReadAll(); code(err) != "54000" {
		t.Fatalf("a long query string: %v, want 54000", err)
	}
	if _, err := c.Prepare(context.Background(), "long", long, nil); code(err) != "54000" {
		t.Fatalf("a long Parse: %v, want 54000", err)
	}
	exec(t, c, "select 1")
	var rows strings.Builder
	for i := range 200 {
		fmt.Fprintf(&rows, "%d\tname %d\n", 5000+i, i)
	}
	tag, err := c.CopyFrom(context.Background(), strings.NewReader(rows.String()), "copy users (id, name) from stdin")
	if err != nil || tag.RowsAffected() != 200 {
		t.Fatalf("COPY of more data than the statement limit: %v %v", tag, err)
	}
}

// TestClientThatStopsReading: a client that sends a query with a large
// answer and then reads nothing is dropped after the write timeout, and
// the backend connection its statement held goes back to the pool.
func TestClientThatStopsReading(t *testing.T) {
	g := startGateway(t, DefaultPoolConfig)
	g.srv.SetLimits(Limits{ClientWriteTimeout: time.Second})
	sessions := g.srv.ActiveSessions() // startGateway's own
	conn := dialGateway(t, g)
	startSession(t, conn)
	fe := pgproto3.NewFrontend(conn, conn)
	fe.Send(&pgproto3.Query{String: "select repeat('x', 10000) from generate_series(1, 30000)"})
	if err := fe.Flush(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		inUse := 0
		for _, st := range g.srv.pools.Stats() {
			inUse += st.InUse
		}
		if inUse == 0 && g.srv.ActiveSessions() == sessions {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a client that reads nothing still holds %d backend connections; %d sessions, want %d", inUse, g.srv.ActiveSessions(), sessions)
		}
		time.Sleep(50 * time.Millisecond) // polling for the session to end
	}
	c := g.connect(t, "app", "")
	exec(t, c, "select 1")
}

// TestCancelBeforeSync: a cancel request that comes after an Execute but
// before its Sync cancels that statement, as on Postgres, where it would
// have been running.
func TestCancelBeforeSync(t *testing.T) {
	g := startGateway(t, DefaultPoolConfig)
	conn := dialGateway(t, g)
	_ = conn.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := conn.Write(startupPacket("user", "hostile", "database", "app")); err != nil {
		t.Fatal(err)
	}
	fe := pgproto3.NewFrontend(conn, conn)
	var key pgproto3.BackendKeyData
	for {
		msg, err := fe.Receive()
		if err != nil {
			t.Fatal(err)
		}
		if k, ok := msg.(*pgproto3.BackendKeyData); ok {
			key = pgproto3.BackendKeyData{ProcessID: k.ProcessID, SecretKey: bytes.Clone(k.SecretKey)}
		}
		if _, ok := msg.(*pgproto3.ReadyForQuery); ok {
			break
		}
	}
	fe.Send(&pgproto3.Parse{Query: "select pg_sleep(30)"})
	fe.Send(&pgproto3.Bind{})
	fe.Send(&pgproto3.Execute{})
	if err := fe.Flush(); err != nil {
		t.Fatal(err)
	}
	// The cancel must find the Execute waiting in the gateway, as on
	// Postgres it must find the statement running.
	deadline := time.Now().Add(10 * time.Second)
	for !executeWaiting(g.srv) {
		if time.Now().After(deadline) {
			t.Fatal("the Execute never reached the gateway")
		}
		time.Sleep(5 * time.Millisecond) // polling the session
	}
	// The gateway closes a cancel request's connection once it acted on it.
	cancel := dialGateway(t, g)
	req, err := (&pgproto3.CancelRequest{ProcessID: key.ProcessID, SecretKey: key.SecretKey}).Encode(nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cancel.Write(req); err != nil {
		t.Fatal(err)
	}
	readUntil(t, cancel, 10*time.Second)

	start := time.Now()
	fe.Send(&pgproto3.Sync{})
	if err := fe.Flush(); err != nil {
		t.Fatal(err)
	}
	var code string
	for {
		msg, err := fe.Receive()
		if err != nil {
			t.Fatalf("after the Sync: %v", err)
		}
		if e, ok := msg.(*pgproto3.ErrorResponse); ok {
			code = e.Code
		}
		if _, ok := msg.(*pgproto3.ReadyForQuery); ok {
			break
		}
	}
	if code != "57014" {
		t.Fatalf("the Execute cancelled before its Sync answered %q after %v, want 57014", code, time.Since(start))
	}
}

// executeWaiting reports whether a session of srv holds an Execute that
// waits for its Sync.
func executeWaiting(srv *Server) bool {
	srv.mu.Lock()
	defer srv.mu.Unlock()
	for sess := range srv.sessions {
		sess.stmtMu.Lock()
		queued := sess.executeQueued
		sess.stmtMu.Unlock()
		if queued {
			return true
		}
	}
	return false
}

// TestMessageTrailingBytes: a message with bytes after its content is
// answered as Postgres answers it, ERROR 08P01 "invalid message format";
// in the extended protocol the rest up to the Sync is skipped, and the
// session goes on.
func TestMessageTrailingBytes(t *testing.T) {
	g := startGateway(t, DefaultPoolConfig)
	conn := dialGateway(t, g)
	startSession(t, conn)
	parse := encodeMsgs(&pgproto3.Parse{Query: "select 1", ParameterOIDs: []uint32{23}})
	// Say no parameter types, but keep the one: four bytes too many.
	parse[len("select 1")+2+5+1] = 0
	if _, err := conn.Write(cat(parse, encodeMsgs(&pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Sync{},
		&pgproto3.Query{String: "select 2"}))); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	fe := pgproto3.NewFrontend(conn, conn)
	var got []string
	for ready := 0; ready < 2; {
		msg, err := fe.Receive()
		if err != nil {
			t.Fatalf("after %v: %v", got, err)
		}
		switch m := msg.(type) {
		case *pgproto3.ErrorResponse:
			got = append(got, m.Severity+" "+m.Code+" "+m.Message)
		case *pgproto3.ReadyForQuery:
			got = append(got, "ready")
			ready++
		case *pgproto3.DataRow:
			got = append(got, "row "+string(m.Values[0]))
		default:
			got = append(got, fmt.Sprintf("%T", m))
		}
	}
	want := "ERROR 08P01 invalid message format|ready|*pgproto3.RowDescription|row 2|*pgproto3.CommandComplete|ready"
	if strings.Join(got, "|") != want {
		t.Fatalf("a Parse with trailing bytes, then a query:\n got %s\nwant %s", strings.Join(got, "|"), want)
	}
}
