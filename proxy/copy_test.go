package proxy

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/shardgate/shardgate/vschema"
)

func TestCopy(t *testing.T) {
	g := startGateway(t, DefaultPoolConfig)
	c := g.connect(t, "app", "")
	ctx := context.Background()
	ks := g.snap.Keyspace("app")

	// CSV with a header, quoting and a multi-line field, split by shard.
	var in strings.Builder
	in.WriteString("id,name\n")
	for id := 1; id <= 500; id++ {
		fmt.Fprintf(&in, "%d,\"user, %d\"\n", id, id)
	}
	in.WriteString("501,\"two\nlines\"\n")
	tag, err := c.CopyFrom(ctx, strings.NewReader(in.String()), "COPY users (id, name) FROM STDIN WITH (FORMAT csv, HEADER)")
	if err != nil || tag.RowsAffected() != 501 {
		t.Fatalf("COPY FROM: %v %v", tag, err)
	}
	for i, sh := range g.shards {
		direct, err := pgconn.Connect(ctx, sh.DSN("postgres"))
		if err != nil {
			t.Fatal(err)
		}
		ids := rows(t, direct, "select id from users")
		if len(ids) == 0 || len(ids) == 501 {
			t.Fatalf("shard s%d holds %d of 501 rows", i, len(ids))
		}
		for _, id := range ids {
			var n int64
			fmt.Sscan(id, &n)
			if got := ks.ShardFor(vschema.HashInt64(n)); got != fmt.Sprintf("s%d", i) {
				t.Fatalf("row %d is on s%d, the map says %s", n, i, got)
			}
		}
		direct.Close(ctx)
	}
	if got := rows(t, c, "select name from users where id = 501"); got[0] != "two\nlines" {
		t.Fatalf("multi-line field: %q", got)
	}

	// COPY TO gathers every shard, with one header.
	var out strings.Builder
	tag, err = c.CopyTo(ctx, &out, "COPY users (id) TO STDOUT WITH (FORMAT csv, HEADER)")
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if err != nil || tag.RowsAffected() != 501 || len(lines) != 502 || lines[0] != "id" || strings.Count(out.String(), "id\n") != 1 {
		t.Fatalf("COPY TO: %v %v, %d lines", tag, err, len(lines))
	}
	out.Reset()
	if _, err := c.CopyTo(ctx, &out, "COPY (select name from users where id = 7) TO STDOUT"); err != nil || out.String() != "user, 7\n" {
		t.Fatalf("COPY (query) TO: %q %v", out.String(), err)
	}

	// A bad row anywhere fails the whole COPY on every shard.
	before := len(rows(t, c, "select id from users"))
	bad := "1001\tok\n1002\tok\nnot-a-number\tbad\n"
	if _, err := c.CopyFrom(ctx, strings.NewReader(bad), "COPY users (id, name) FROM STDIN"); code(err) != "22P02" {
		t.Fatalf("bad key: %v", err)
	}
	dup := "2001\tok\n2002\tok\n1\tduplicate\n"
	if _, err := c.CopyFrom(ctx, strings.NewReader(dup), "COPY users (id, name) FROM STDIN"); code(err) != "23505" {
		t.Fatalf("duplicate key: %v", err)
	}
	if after := len(rows(t, c, "select id from users")); after != before {
		t.Fatalf("failed COPYs left %d rows behind", after-before)
	}
	g.noPrepared(t)

	// Without a column list the table's own column order applies.
	if tag, err := c.CopyFrom(ctx, strings.NewReader("3001\tno list\n"), "COPY users FROM STDIN"); err != nil || tag.RowsAffected() != 1 {
		t.Fatalf("COPY without columns: %v %v", tag, err)
	}
	if _, err := c.CopyFrom(ctx, strings.NewReader("x\n"), "COPY users (name) FROM STDIN"); code(err) != "0A000" {
		t.Fatalf("COPY without the sharding column: %v", err)
	}
	if _, err := c.Exec(ctx, "COPY users FROM '/etc/passwd'").ReadAll(); code(err) != "0A000" {
		t.Fatalf("COPY from a server file: %v", err)
	}
	if got := rows(t, c, "select 1"); got[0] != "1" {
		t.Fatal("session unusable after COPY errors")
	}
}

// endlessRows is COPY data that starts with a row the table refuses and
// never ends.
type endlessRows struct{ started bool }

func (r *endlessRows) Read(p []byte) (int, error) {
	if !r.started {
		r.started = true
		return copy(p, "not a number\n"), nil
	}
	n := 0
	for n+2 <= len(p) {
		n += copy(p[n:], "1\n")
	}
	return n, nil
}

// TestCopyRefusedMidway: a shard's error in the middle of a COPY reaches
// the client while it still sends, as from Postgres, so a client that
// reads while it writes stops at once; the session goes on.
func TestCopyRefusedMidway(t *testing.T) {
	g := startGateway(t, DefaultPoolConfig)
	for _, ks := range []string{"solo", "solotx", "app"} {
		t.Run(ks, func(t *testing.T) {
			c := g.connect(t, ks, "")
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			table := "users (id)"
			if ks != "app" {
				exec(t, c, "create table if not exists numbers_"+ks+" (n int)")
				table = "numbers_" + ks + " (n)"
			}
			_, err := c.CopyFrom(ctx, &endlessRows{}, "copy "+table+" from stdin")
			if ctx.Err() != nil {
				t.Fatal("the COPY's error never came while the client sent")
			}
			if code(err) != "22P02" {
				t.Fatalf("COPY with a bad first row: %v, want 22P02", err)
			}
			if got := one(t, c, "select 1"); got != "1" {
				t.Fatalf("after the COPY: %q", got)
			}
		})
	}
}
