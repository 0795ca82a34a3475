package pgtest

import (
	"errors"
	"fmt"
	"os"
	"syscall"
)

// ServerUser returns the name of the OS user the servers run as, and whether
// it is another user than this process's (postgres, when this process is
// root). A data directory must then lie where that user can reach it, which
// a folder private to this process's user is not.
func ServerUser() (name string, other bool, err error) {
	r, err := serverUser()
	if err != nil {
		return "", false, err
	}
	return r.name, r.cred != nil, nil
}

// MkdirServer makes dir, a directory for data directories, belong to the
// server's OS user with mode 0700, creating it (but not its parents) when it
// is missing. Because dir may lie in a world-writable folder such as
// /var/tmp, an existing dir must be a real directory, not a symbolic link,
// owned by the server's user or by this process's: one that someone else
// planted there is refused.
func MkdirServer(dir string) error {
	r, err := serverUser()
	if err != nil {
		return err
	}
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
		return fmt.Errorf("pgtest: %w", err)
	}
	fi, err := os.Lstat(dir)
	if err != nil {
		return fmt.Errorf("pgtest: %w", err)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !fi.IsDir() || !ok || (int(st.Uid) != r.uid && int(st.Uid) != os.Geteuid()) {
		return fmt.Errorf("pgtest: %s is not a directory owned by OS user %s; move it away", dir, r.name)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return fmt.Errorf("pgtest: %w", err)
	}
	if err := r.own(dir); err != nil {
		return fmt.Errorf("pgtest: %w", err)
	}
	return nil
}
