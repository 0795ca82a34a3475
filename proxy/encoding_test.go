package proxy

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/shardgate/shardgate/vschema"
)

// TestClientEncoding: a LATIN1 client writes and reads non-ASCII text in
// its own encoding, rows it keys by text land on the shard their UTF-8 hash
// names (literals and bound parameters alike), and a UTF-8 client reads
// the same text; an encoding the gateway cannot convert is refused at
// login.
func TestClientEncoding(t *testing.T) {
	g := startGateway(t, DefaultPoolConfig)
	ctx := context.Background()
	utf := g.connect(t, "app", "")
	exec(t, utf, "create table tags (tag text primary key, n int)")

	latin := g.connect(t, "app", "client_encoding=LATIN1")
	if got := latin.ParameterStatus("client_encoding"); got != "LATIN1" {
		t.Fatalf("client_encoding reported %q", got)
	}
	const cafeLatin1 = "caf\xe9" // café in LATIN1
	exec(t, latin, "insert into users (id, name) values (7, '"+cafeLatin1+"')")
	if got := one(t, latin, "select name from users where id = 7"); got != cafeLatin1 {
		t.Errorf("read back in LATIN1: %q, want %q", got, cafeLatin1)
	}
	if got := one(t, utf, "select name from users where id = 7"); got != "café" {
		t.Errorf("read in UTF8: %q, want café", got)
	}

	// Keys: a literal, and a bound parameter in LATIN1.
	exec(t, latin, "insert into tags (tag, n) values ('"+cafeLatin1+"', 1)")
	const naiveLatin1 = "na\xefve" // naïve
	if _, err := latin.ExecParams(ctx, "insert into tags (tag, n) values ($1, 2)", [][]byte{[]byte(naiveLatin1)}, nil, nil, nil).Close(); err != nil {
		t.Fatal(err)
	}
	for tag, n := range map[string]string{"café": "1", "naïve": "2"} {
		name := g.snap.Keyspace("app").ShardFor(vschema.HashText(tag))
		direct, err := pgconn.Connect(ctx, g.shards[shardIndex(t, name)].DSN("postgres"))
		if err != nil {
			t.Fatal(err)
		}
		got := one(t, direct, fmt.Sprintf("select count(*) from tags where tag = '%s' and n = %s", tag, n))
		direct.Close(ctx)
		if got != "1" {
			t.Errorf("tag %s is not on shard %s, where its hash puts it", tag, name)
		}
		res := latin.ExecParams(ctx, "select n from tags where tag = $1", [][]byte{[]byte(latin1(t, tag))}, nil, nil, nil).Read()
		if res.Err != nil || len(res.Rows) != 1 || string(res.Rows[0][0]) != n {
			t.Errorf("tag %s looked up in LATIN1: %v %v", tag, res.Rows, res.Err)
		}
	}
	if _, err := latin.CopyFrom(ctx, strings.NewReader("x\t1\n"), "copy tags (tag, n) from stdin"); code(err) != "0A000" {
		t.Errorf("COPY into a sharded table in LATIN1: %v, want 0A000", err)
	}
	exec(t, latin, "select 1")

	if _, err := pgconn.Connect(ctx, g.dsn("app", "client_encoding=EUC_TW")); code(err) != "0A000" {
		t.Errorf("login with client_encoding EUC_TW: %v, want 0A000", err)
	}
}

// latin1 encodes s, which must be LATIN1 text, in LATIN1.
func latin1(t *testing.T, s string) string {
	t.Helper()
	out := make([]byte, 0, len(s))
	for _, r := range s {
		if r > 0xff {
			t.Fatalf("%q is not LATIN1", s)
		}
		out = append(out, byte(r))
	}
	return string(out)
}

// shardIndex returns the index in g.shards of the shard named name (s0, s1).
func shardIndex(t *testing.T, name string) int {
	t.Helper()
	var i int
	if _, err := fmt.Sscanf(name, "s%d", &i); err != nil {
		t.Fatalf("shard %q", name)
	}
	return i
}
