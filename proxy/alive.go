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
	n, _, ok := peek(c)
	return ok && n < 0
}

// peek looks, without waiting and without consuming anything, at what c
// has to read: n is -1 for nothing yet, 0 for the end of the stream, 1 for
// a byte, which is first. ok is false for a connection it cannot look
// into or that failed.
func peek(c net.Conn) (n int, first byte, ok bool) {
	if tc, ok := c.(*tls.Conn); ok {
		c = tc.NetConn()
	}
	sc, isSys := c.(syscall.Conn)
	if !isSys {
		return -1, 0, true // counts as nothing to read
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return -1, 0, true
	}
	var buf [1]byte
	n, ok = -1, true
	err = raw.Control(func(fd uintptr) {
		got, _, err := syscall.Recvfrom(int(fd), buf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		switch {
		case err == nil:
			n = got
		case !errors.Is(err, syscall.EAGAIN) && !errors.Is(err, syscall.EINTR):
			ok = false
		}
	})
	return n, buf[0], ok && err == nil
}
