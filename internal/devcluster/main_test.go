package main

import (
	"bytes"
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shardgate/shardgate/internal/pgtest"
)

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// TestMakeRun starts the cluster `make run` starts, with no setup, reads the
// psql line it prints, runs psql with it as a new user would, then stops it
// the way Ctrl-C does, and starts it again over the same data.
func TestMakeRun(t *testing.T) {
	bin := t.TempDir()
	build := exec.Command("go", "build", "-o", bin+string(filepath.Separator), "github.com/shardgate/shardgate/cmd/shardgate", "github.com/shardgate/shardgate/cmd/shardctl")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	// The Postgres servers run as the postgres user when we are root: the
	// data folder must be reachable by it.
	runDir, err := os.MkdirTemp("", "devcluster-")
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(runDir, 0o755)
	t.Cleanup(func() { os.RemoveAll(runDir) })
	psqlBin, err := pgtest.Binaries()
	if err != nil {
		t.Fatal(err)
	}
	shardPort := freePort(t)
	c := cluster{repo: filepath.Join("..", ".."), runDir: runDir, bin: bin,
		listen: "127.0.0.1:" + strconv.Itoa(freePort(t)), admin: "127.0.0.1:" + strconv.Itoa(freePort(t)),
		etcd: "127.0.0.1:" + strconv.Itoa(freePort(t)), firstPort: shardPort}
	line := regexp.MustCompile(`psql "([^"]+)"`)

	for round := 1; round <= 2; round++ {
		out := &syncBuffer{}
		c.out = out
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- c.run(ctx) }()
		deadline := time.Now().Add(2 * time.Minute)
		for !strings.Contains(out.String(), "Press Ctrl-C") {
			select {
			case err := <-done:
				cancel()
				t.Fatalf("round %d: devcluster ended: %v\n%s", round, err, out.String())
			case <-time.After(50 * time.Millisecond):
			}
			if time.Now().After(deadline) {
				cancel()
				t.Fatalf("round %d: no psql line after 2 minutes:\n%s", round, out.String())
			}
		}
		m := line.FindStringSubmatch(out.String())
		if m == nil {
			cancel()
			t.Fatalf("no psql line:\n%s", out.String())
		}
		psql := exec.Command(filepath.Join(psqlBin, "psql"), "-X", "-At", m[1], "-c", "select count(*) from users", "-c", "select name from users where id = 42")
		got, err := psql.CombinedOutput()
		if err != nil || string(got) != "100\nuser 42\n" {
			cancel()
			t.Fatalf("round %d: psql with the printed line: %v\n%s", round, err, got)
		}
		if !strings.Contains(m[1], "sslmode=require") {
			t.Errorf("the printed line does not ask for TLS: %s", m[1])
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatalf("round %d: stopping: %v\n%s", round, err, out.String())
		}
	}
}
