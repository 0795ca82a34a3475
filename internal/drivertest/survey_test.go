package drivertest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"maps"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/shardgate/shardgate/internal/pgtest"
)

// TestProtocolSurvey runs every client's scenario through a byte-for-byte
// relay that records what the client sends: the startup parameters, the
// CancelRequests, the frontend message kinds and the first statements of each
// session. The log is what a gateway must handle for that client; the test
// fails only when a scenario fails through the relay.
func TestProtocolSurvey(t *testing.T) {
	pg := pgtest.Start(t, 1)[0]
	ctx, cancel := context.WithTimeout(t.Context(), 8*time.Minute)
	t.Cleanup(cancel)
	admin, err := pgx.Connect(ctx, pg.DSN("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range Clients {
		if _, err := admin.Exec(ctx, "create database survey_"+string(c)); err != nil {
			t.Fatal(err)
		}
	}
	if err := admin.Close(ctx); err != nil {
		t.Fatal(err)
	}
	upstream := net.JoinHostPort(pg.Host, strconv.Itoa(pg.Port))

	for _, c := range Clients {
		t.Run(string(c), func(t *testing.T) {
			t.Parallel()
			rec, err := startRecorder(upstream)
			if err != nil {
				t.Fatal(err)
			}
			defer rec.Close()
			env, err := EnvFromDSN(pg.DSN("survey_" + string(c)))
			if err != nil {
				t.Fatal(err)
			}
			env["PGHOST"], env["PGPORT"], _ = net.SplitHostPort(rec.Addr())
			out, err := Run(ctx, c, env)
			if err != nil {
				t.Fatalf("%v\noutput:\n%s", err, out)
			}
			if !strings.Contains(out, "ok all\n") {
				t.Fatalf("no \"ok all\" through the relay; output:\n%s", out)
			}
			rec.Close()
			t.Logf("%s sends:\n%s", c, rec.Report())
		})
	}
}

// recorder relays connections to upstream and records what clients send.
type recorder struct {
	l        net.Listener
	upstream string
	wg       sync.WaitGroup

	mu       sync.Mutex
	sessions []*session
	cancels  int
	ssl      int
	conns    map[net.Conn]struct{} // open connections, both sides
	closed   bool
}

// session is what one client connection sent.
type session struct {
	params map[string]string
	counts map[string]int
	first  []string // the first statements, in order
}

func startRecorder(upstream string) (*recorder, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	r := &recorder{l: l, upstream: upstream, conns: map[net.Conn]struct{}{}}
	r.wg.Go(r.serve)
	return r, nil
}

func (r *recorder) Addr() string { return r.l.Addr().String() }

// Close stops accepting, closes open connections and waits for the relays.
func (r *recorder) Close() {
	r.l.Close()
	r.mu.Lock()
	r.closed = true
	for c := range r.conns {
		c.Close()
	}
	r.mu.Unlock()
	r.wg.Wait()
}

// track adds or removes an open connection. Adding fails, closing c, once
// the recorder is closed.
func (r *recorder) track(c net.Conn, add bool) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !add {
		delete(r.conns, c)
		return true
	}
	if r.closed {
		c.Close()
		return false
	}
	r.conns[c] = struct{}{}
	return true
}

func (r *recorder) serve() {
	for {
		c, err := r.l.Accept()
		if err != nil {
			return
		}
		if r.track(c, true) {
			r.wg.Go(func() { r.relay(c) })
		}
	}
}

// relay serves one client connection, which serve has tracked.
func (r *recorder) relay(client net.Conn) {
	defer r.track(client, false)
	defer client.Close()
	be := pgproto3.NewBackend(client, client)
	var startup *pgproto3.StartupMessage
	for startup == nil {
		msg, err := be.ReceiveStartupMessage()
		if err != nil {
			return
		}
		switch m := msg.(type) {
		case *pgproto3.SSLRequest, *pgproto3.GSSEncRequest:
			r.mu.Lock()
			r.ssl++
			r.mu.Unlock()
			if _, err := client.Write([]byte{'N'}); err != nil {
				return
			}
		case *pgproto3.CancelRequest:
			r.mu.Lock()
			r.cancels++
			r.mu.Unlock()
			buf, _ := m.Encode(nil)
			if up, err := net.Dial("tcp", r.upstream); err == nil {
				up.Write(buf)
				io.Copy(io.Discard, up) // the server closes after reading it
				up.Close()
			}
			return
		case *pgproto3.StartupMessage:
			startup = m
		}
	}
	up, err := net.Dial("tcp", r.upstream)
	if err != nil {
		return
	}
	if !r.track(up, true) {
		return
	}
	defer r.track(up, false)
	defer up.Close()
	buf, _ := startup.Encode(nil)
	if _, err := up.Write(buf); err != nil {
		return
	}
	s := &session{params: maps.Clone(startup.Parameters), counts: map[string]int{}}
	r.mu.Lock()
	r.sessions = append(r.sessions, s)
	r.mu.Unlock()

	done := make(chan struct{})
	go func() {
		defer close(done)
		io.Copy(client, up)
		client.Close()
	}()
	r.tap(s, bufio.NewReader(client), up)
	up.Close()
	<-done
}

// tap copies frontend messages from src to dst unchanged, recording each.
func (r *recorder) tap(s *session, src *bufio.Reader, dst io.Writer) {
	var hdr [5]byte
	for {
		if _, err := io.ReadFull(src, hdr[:]); err != nil {
			return
		}
		n := int(binary.BigEndian.Uint32(hdr[1:])) - 4
		if n < 0 {
			return
		}
		body := make([]byte, n)
		if _, err := io.ReadFull(src, body); err != nil {
			return
		}
		r.mu.Lock()
		s.record(hdr[0], body)
		r.mu.Unlock()
		if _, err := dst.Write(append(hdr[:], body...)); err != nil {
			return
		}
	}
}

var frontendNames = map[byte]string{
	'Q': "Query", 'P': "Parse", 'B': "Bind", 'D': "Describe", 'E': "Execute",
	'S': "Sync", 'H': "Flush", 'C': "Close", 'd': "CopyData", 'c': "CopyDone",
	'f': "CopyFail", 'X': "Terminate", 'p': "PasswordMessage", 'F': "FunctionCall",
}

func (s *session) record(typ byte, body []byte) {
	name, ok := frontendNames[typ]
	if !ok {
		name = fmt.Sprintf("%q", typ)
	}
	first := func(sql string) {
		if len(s.first) < 6 {
			s.first = append(s.first, sql)
		}
	}
	switch typ {
	case 'Q':
		sql, _ := cstring(body)
		first(sql)
	case 'P':
		stmt, rest := cstring(body)
		sql, _ := cstring(rest)
		name += namedOrUnnamed(stmt)
		first(sql)
	case 'B':
		_, rest := cstring(body)
		stmt, rest := cstring(rest)
		name += namedOrUnnamed(stmt)
		if binaryFormats(rest) {
			name += " binary-params"
		}
	case 'D', 'C':
		if len(body) > 0 {
			name += " " + string(body[0])
		}
	}
	s.counts[name]++
}

func namedOrUnnamed(stmt string) string {
	if stmt == "" {
		return " unnamed"
	}
	return " named"
}

// binaryFormats reports whether a Bind body, after its two names, asks for
// any binary parameter.
func binaryFormats(b []byte) bool {
	if len(b) < 2 {
		return false
	}
	n := int(binary.BigEndian.Uint16(b))
	b = b[2:]
	for i := 0; i < n && len(b) >= 2; i++ {
		if binary.BigEndian.Uint16(b) == 1 {
			return true
		}
		b = b[2:]
	}
	return false
}

func cstring(b []byte) (string, []byte) {
	i := bytes.IndexByte(b, 0)
	if i < 0 {
		return string(b), nil
	}
	return string(b[:i]), b[i+1:]
}

// Report summarizes what the clients sent, one block per distinct startup.
func (r *recorder) Report() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var b strings.Builder
	fmt.Fprintf(&b, "%d sessions, %d CancelRequests, %d SSL/GSS requests\n", len(r.sessions), r.cancels, r.ssl)
	if len(r.sessions) == 0 {
		return b.String()
	}
	s := r.sessions[0]
	var params []string
	for _, k := range slices.Sorted(maps.Keys(s.params)) {
		v := s.params[k]
		if k == "database" || k == "user" {
			v = "…"
		}
		params = append(params, k+"="+v)
	}
	fmt.Fprintf(&b, "startup: %s\n", strings.Join(params, " "))
	fmt.Fprintf(&b, "first statements: %q\n", s.first)
	total := map[string]int{}
	for _, s := range r.sessions {
		for k, v := range s.counts {
			total[k] += v
		}
	}
	var counts []string
	for _, k := range slices.Sorted(maps.Keys(total)) {
		counts = append(counts, fmt.Sprintf("%s=%d", k, total[k]))
	}
	fmt.Fprintf(&b, "messages: %s\n", strings.Join(counts, " "))
	return b.String()
}
