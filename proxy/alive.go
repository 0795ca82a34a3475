package proxy

import (
	"crypto/tls"
	"errors"
	"net"
	"syscall"
)

// idleAlive reports, without waiting and without consuming anything,
// whether an idle backend connection can still be used. An idle
// connection has nothing to read: bytes waiting (the FATAL a terminated
// backend sends as it goes) or the end of the stream mean its backend is
// gone. A connection it cannot look into counts as alive.
//
// It peeks through Control, not Read: a Read waits for the descriptor's
// read lock, which pgconn's background reader may hold on an idle
// connection (it starts when a write is slow and stays in a read until
// bytes come), so a Read could wait for ever.
func idleAlive(c net.Conn) bool {
	if tc, ok := c.(*tls.Conn); ok {
		c = tc.NetConn()
	}
	sc, ok := c.(syscall.Conn)
	if !ok {
		return true
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return true
	}
	dead := false
	var buf [1]byte
	err = raw.Control(func(fd uintptr) {
		_, _, err := syscall.Recvfrom(int(fd), buf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		switch {
		case err == nil:
			dead = true // bytes waiting, or the stream ended (0 bytes)
		case !errors.Is(err, syscall.EAGAIN) && !errors.Is(err, syscall.EINTR):
			dead = true
		}
	})
	return err == nil && !dead
}
