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
	return newProbe(c).idleAlive()
}

// peek looks, without waiting and without consuming anything, at what c
// has to read: n is -1 for nothing yet, 0 for the end of the stream, 1 for
// a byte, which is first. ok is false for a connection it cannot look
// into or that failed.
func peek(c net.Conn) (n int, first byte, ok bool) {
	return newProbe(c).peek()
}

// probe peeks into one connection (see peek). Made once for a connection
// that is looked into often, it allocates nothing per look.
type probe struct {
	raw  syscall.RawConn // nil: the connection cannot be looked into
	look func(fd uintptr)
	// What the last look found.
	buf [1]byte
	n   int
	ok  bool
}

func newProbe(c net.Conn) *probe {
	p := &probe{}
	if tc, ok := c.(*tls.Conn); ok {
		c = tc.NetConn()
	}
	sc, isSys := c.(syscall.Conn)
	if !isSys {
		return p
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return p
	}
	p.raw = raw
	p.look = func(fd uintptr) {
		got, _, err := syscall.Recvfrom(int(fd), p.buf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		switch {
		case err == nil:
			p.n = got
		case !errors.Is(err, syscall.EAGAIN) && !errors.Is(err, syscall.EINTR):
			p.ok = false
		}
	}
	return p
}

func (p *probe) peek() (n int, first byte, ok bool) {
	if p.raw == nil {
		return -1, 0, true // counts as nothing to read
	}
	p.buf[0], p.n, p.ok = 0, -1, true
	err := p.raw.Control(p.look)
	return p.n, p.buf[0], p.ok && err == nil
}

func (p *probe) idleAlive() bool {
	n, _, ok := p.peek()
	return ok && n < 0
}
