package proxy

import (
	"net"
	"testing"
	"time"
)

// TestIdleAliveBesideABlockedRead: idleAlive answers at once while another
// goroutine waits in a Read on the same connection, as pgconn's background
// reader can on an idle pooled connection, and sees the peer's close.
func TestIdleAliveBesideABlockedRead(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := l.Accept()
		if err == nil {
			accepted <- c
		}
		close(accepted)
	}()
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	peer := <-accepted
	if peer == nil {
		t.Fatal("accept failed")
	}
	reading := make(chan struct{})
	readDone := make(chan struct{})
	go func() {
		close(reading)
		var b [1]byte
		_, _ = c.Read(b[:]) // returns when the peer closes
		close(readDone)
	}()
	<-reading
	answer := make(chan bool, 1)
	go func() { answer <- idleAlive(c) }()
	select {
	case alive := <-answer:
		if !alive {
			t.Fatal("an idle open connection counts as dead")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("idleAlive waited for the other goroutine's Read")
	}
	peer.Close()
	<-readDone
	if idleAlive(c) {
		t.Fatal("a connection whose peer closed counts as alive")
	}
}
