package proxy

import (
	"bytes"
	"crypto/rand"
	"os"
	osexec "os/exec"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/shardgate/shardgate/internal/pgtest"
)

// TestLargeObjectsThroughFastpath: psql's \lo_import and \lo_export use
// libpq's lo_* functions, which speak the fastpath FunctionCall message;
// through an unsharded keyspace, in either pooling mode, a file goes in and
// comes back out the same. On a sharded keyspace the call is refused and
// the session goes on.
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
	for _, ks := range []string{"solo", "solotx"} {
		out, err := psql(ks, `\lo_import `+in)
		if err != nil {
			t.Fatalf("%s: \\lo_import: %v\n%s", ks, err, out)
		}
		m := regexp.MustCompile(`lo_import (\d+)`).FindStringSubmatch(out)
		if m == nil {
			t.Fatalf("%s: \\lo_import said %q", ks, out)
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
	out, err := psql("app", `\lo_import `+in)
	if err == nil || !regexp.MustCompile(`0A000|only on an unsharded keyspace`).MatchString(out) {
		t.Fatalf("\\lo_import on a sharded keyspace: %v\n%s", err, out)
	}
	if g.srv.pinnedSessions.Load() != 0 {
		t.Errorf("%d sessions still pinned", g.srv.pinnedSessions.Load())
	}
}
