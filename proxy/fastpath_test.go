package proxy

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"os"
	osexec "os/exec"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/shardgate/shardgate/internal/pgtest"
	"github.com/shardgate/shardgate/planner/engine"
)

// TestLargeObjectsThroughFastpath: psql's \lo_import and \lo_export use
// libpq's lo_* functions, which speak the fastpath FunctionCall message;
// through an unsharded and a sharded keyspace, in either pooling mode, a
// file goes in and comes back out the same, in another session. On a
// sharded keyspace the object lives on the anchor shard.
func TestLargeObjectsThroughFastpath(t *testing.T) {
	g := startGateway(t, DefaultPoolConfig)
	bin, err := pgtest.Binaries()
	if err != nil {
		t.Fatal(err)
	}
	psql := func(ks string, commands ...string) (string, error) {
		args := []string{"-X", "-v", "ON_ERROR_STOP=1", g.dsn(ks, "")}
		for _, c := range commands {
			args = append(args, "-c", c)
		}
		out, err := osexec.Command(filepath.Join(bin, "psql"), args...).CombinedOutput()
		return string(out), err
	}
	dir := t.TempDir()
	in := filepath.Join(dir, "in.bin")
	data := make([]byte, 300<<10) // several lo_write calls
	rand.Read(data)
	if err := os.WriteFile(in, data, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, ks := range []string{"solo", "solotx", "pinned", "app"} {
		out, err := psql(ks, `\lo_import `+in)
		if err != nil {
			t.Fatalf("%s: \\lo_import: %v\n%s", ks, err, out)
		}
		m := regexp.MustCompile(`lo_import (\d+)`).FindStringSubmatch(out)
		if m == nil {
			t.Fatalf("%s: \\lo_import said %q", ks, out)
		}
		if ks == "app" {
			anchor := engine.AnchorShard(g.snap.Keyspace(ks))
			for i, sh := range g.shards {
				c, err := pgconn.Connect(context.Background(), sh.DSN("postgres"))
				if err != nil {
					t.Fatal(err)
				}
				n := one(t, c, "select count(*) from pg_largeobject_metadata where oid = "+m[1])
				c.Close(context.Background())
				if want := map[bool]string{true: "1", false: "0"}[fmt.Sprintf("s%d", i) == anchor]; n != want {
					t.Fatalf("large object %s on shard s%d: %s, want %s (anchor %s)", m[1], i, n, want, anchor)
				}
			}
		}
		outFile := filepath.Join(dir, ks+".out")
		if out, err := psql(ks, `\lo_export `+m[1]+` `+outFile, "select lo_unlink("+m[1]+")"); err != nil {
			t.Fatalf("%s: \\lo_export: %v\n%s", ks, err, out)
		}
		got, err := os.ReadFile(outFile)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, data) {
			t.Fatalf("%s: the exported object differs from the imported file (%d bytes, want %d)", ks, len(got), len(data))
		}
	}
	if g.srv.pinnedSessions.Load() != 0 {
		t.Errorf("%d sessions still pinned", g.srv.pinnedSessions.Load())
	}
}
