package pgtest

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// TestMkdirServer checks that MkdirServer leaves a private directory of the
// server's user, and refuses what someone else may have planted in a shared
// folder such as /var/tmp.
func TestMkdirServer(t *testing.T) {
	r, err := serverUser()
	if err != nil {
		t.Fatal(err)
	}
	parent := t.TempDir()
	type mkdirCase struct {
		name    string
		prepare func(dir string) error
		refused bool
	}
	tests := []mkdirCase{
		{"missing", func(string) error { return nil }, false},
		{"open to all", func(dir string) error { return os.Mkdir(dir, 0o777) }, false},
		{"symlink to a directory", func(dir string) error { return os.Symlink(parent, dir) }, true},
		{"file", func(dir string) error { return os.WriteFile(dir, nil, 0o600) }, true},
	}
	if os.Geteuid() == 0 {
		// Only root can make a directory that belongs to someone else.
		tests = append(tests, mkdirCase{"another user's", func(dir string) error {
			if err := os.Mkdir(dir, 0o700); err != nil {
				return err
			}
			return os.Chown(dir, r.uid+1, r.gid)
		}, true})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(parent, tt.name)
			if err := tt.prepare(dir); err != nil {
				t.Fatal(err)
			}
			err := MkdirServer(dir)
			if tt.refused {
				if err == nil {
					t.Fatalf("MkdirServer accepted it")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			fi, err := os.Lstat(dir)
			if err != nil {
				t.Fatal(err)
			}
			if uid := fi.Sys().(*syscall.Stat_t).Uid; !fi.IsDir() || fi.Mode().Perm() != 0o700 || int(uid) != r.uid {
				t.Errorf("%v owned by uid %d, want a directory of mode 0700 owned by %s (uid %d)", fi.Mode(), uid, r.name, r.uid)
			}
		})
	}
}
