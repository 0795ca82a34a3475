package proxy

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"

	"github.com/jackc/pgx/v5/pgproto3"
)

// clientWire is the session's end of the client connection: it reads the
// client's messages and buffers the answers until Flush. It stands in for
// pgproto3.Backend, whose message types it uses, because the session needs
// three things that one does not give:
//   - whether more of the client's input is already here, so an Execute
//     whose Sync follows in the same write runs as one statement;
//   - every message read to its last byte, as Postgres reads it: trailing
//     bytes are an error (invalidFormatError), not ignored;
//   - no buffer kept at the size of the largest message a client ever sent.
type clientWire struct {
	conn net.Conn
	r    *bufio.Reader
	// wmu guards the answers: the shards of a statement that runs on
	// several at once send their notices from goroutines of their own.
	wmu      sync.Mutex
	wbuf     []byte
	encErr   error
	maxBody  int // 0: no limit
	authType uint32
	body     []byte // reused for bodies up to reusedBody
	lastType byte   // the type byte of the last message received

	// One of each message, reused as pgproto3.Backend does: a message is
	// valid until the next Receive.
	bind     pgproto3.Bind
	close    pgproto3.Close
	describe pgproto3.Describe
	execute  pgproto3.Execute
	fcall    pgproto3.FunctionCall
	copyData pgproto3.CopyData
	copyDone pgproto3.CopyDone
	copyFail pgproto3.CopyFail
	flush    pgproto3.Flush
	parse    pgproto3.Parse
	query    pgproto3.Query
	sync     pgproto3.Sync
	term     pgproto3.Terminate
}

const (
	// reusedBody is the largest message body read into the reused buffer;
	// a larger one gets a buffer of its own that goes with the message.
	reusedBody = 64 << 10
	// keptOutput is the largest answer buffer kept between the flushes of
	// a large answer (a flush comes past flushBytes, so the buffer grows
	// beyond it), idleOutput the largest kept while the client is idle.
	keptOutput = 4 * flushBytes
	idleOutput = 64 << 10

	// The startup packet's codes in place of a protocol version.
	sslRequestCode    = 80877103
	gssEncRequestCode = 80877104
	cancelRequestCode = 80877102
	// maxStartupPacket is Postgres's MAX_STARTUP_PACKET_LENGTH.
	maxStartupPacket = 10000
)

func newClientWire(conn net.Conn) *clientWire {
	return &clientWire{conn: conn, r: bufio.NewReaderSize(conn, 8<<10)}
}

// invalidFormatError is a message whose length does not match its content,
// which Postgres answers with ERROR 08P01 "invalid message format" and
// goes on.
type invalidFormatError struct {
	msg pgproto3.FrontendMessage
}

func (e *invalidFormatError) Error() string { return "invalid message format" }

// isInvalidFormat reports whether err is (or wraps) an invalidFormatError.
// It is asked after every message read, so it looks at nil first: an
// errors.As target escapes to the heap.
func isInvalidFormat(err error) bool {
	if err == nil {
		return false
	}
	var invalid *invalidFormatError
	return errors.As(err, &invalid)
}

// unknownMessageError is a message of a type Postgres does not know.
type unknownMessageError struct{ typ byte }

func (e *unknownMessageError) Error() string {
	return fmt.Sprintf("invalid frontend message type %d", e.typ)
}

// tooLongError is a message above the size limit.
type tooLongError struct{ size, limit int }

func (e *tooLongError) Error() string {
	return fmt.Sprintf("message of %d bytes exceeds the limit of %d bytes", e.size, e.limit)
}

// Send buffers msg for the next Flush.
func (w *clientWire) Send(msg pgproto3.BackendMessage) {
	w.wmu.Lock()
	defer w.wmu.Unlock()
	if w.encErr != nil {
		return
	}
	w.wbuf, w.encErr = msg.Encode(w.wbuf)
}

// Flush writes what Send buffered.
func (w *clientWire) Flush() error {
	w.wmu.Lock()
	defer w.wmu.Unlock()
	if w.encErr != nil {
		return w.encErr
	}
	if len(w.wbuf) == 0 {
		return nil
	}
	_, err := w.conn.Write(w.wbuf)
	if cap(w.wbuf) > keptOutput {
		w.wbuf = nil
	} else {
		w.wbuf = w.wbuf[:0]
	}
	return err
}

// trimOutput lets go of a large answer buffer once everything is written,
// for a client that goes idle.
func (w *clientWire) trimOutput() {
	w.wmu.Lock()
	defer w.wmu.Unlock()
	if len(w.wbuf) == 0 && cap(w.wbuf) > idleOutput {
		w.wbuf = nil
	}
}

// buffered is how many bytes of answers wait for the next Flush.
func (w *clientWire) buffered() int {
	w.wmu.Lock()
	defer w.wmu.Unlock()
	return len(w.wbuf)
}

// inputWaiting reports whether more of the client's input has arrived than
// Receive has returned.
func (w *clientWire) inputWaiting() bool { return w.r.Buffered() > 0 }

// SetMaxBodyLen bounds the body of the next messages; 0 is no bound.
func (w *clientWire) SetMaxBodyLen(n int) { w.maxBody = n }

// SetAuthType tells Receive how to read the next password ('p') message.
func (w *clientWire) SetAuthType(t uint32) error {
	w.authType = t
	return nil
}

// ReceiveStartupMessage reads the first packet of a connection, which has no
// type byte: a StartupMessage, SSLRequest, GSSEncRequest or CancelRequest.
func (w *clientWire) ReceiveStartupMessage() (pgproto3.FrontendMessage, error) {
	var head [4]byte
	if _, err := io.ReadFull(w.r, head[:]); err != nil {
		return nil, err
	}
	n := int(int32(binary.BigEndian.Uint32(head[:]))) - 4
	if n < 4 || n > maxStartupPacket {
		return nil, fmt.Errorf("invalid length of startup packet: %d", n)
	}
	buf := make([]byte, n)
	if _, err := io.ReadFull(w.r, buf); err != nil {
		return nil, unexpectedEOF(err)
	}
	var msg pgproto3.FrontendMessage
	switch code := binary.BigEndian.Uint32(buf); code {
	case pgproto3.ProtocolVersion30, pgproto3.ProtocolVersion32:
		msg = &pgproto3.StartupMessage{}
	case sslRequestCode:
		msg = &pgproto3.SSLRequest{}
	case gssEncRequestCode:
		msg = &pgproto3.GSSEncRequest{}
	case cancelRequestCode:
		msg = &pgproto3.CancelRequest{}
	default:
		return nil, fmt.Errorf("unknown startup message code: %d", code)
	}
	if err := msg.Decode(buf); err != nil {
		return nil, err
	}
	return msg, nil
}

// Receive reads the client's next message. A message with bytes left over
// after its content is returned with an invalidFormatError.
func (w *clientWire) Receive() (pgproto3.FrontendMessage, error) {
	var head [5]byte
	if _, err := io.ReadFull(w.r, head[:]); err != nil {
		return nil, err // io.EOF only between messages
	}
	typ := head[0]
	w.lastType = typ
	n := int(int32(binary.BigEndian.Uint32(head[1:]))) - 4
	if n < 0 {
		return nil, fmt.Errorf("invalid message length: %d", n+4)
	}
	if w.maxBody > 0 && n > w.maxBody {
		return nil, &tooLongError{size: n, limit: w.maxBody}
	}
	msg := w.message(typ)
	if msg == nil {
		return nil, &unknownMessageError{typ: typ}
	}
	body := w.readBody(n)
	if _, err := io.ReadFull(w.r, body); err != nil {
		return nil, unexpectedEOF(err)
	}
	if err := msg.Decode(body); err != nil {
		return nil, err
	}
	if size, ok := wireSize(msg); ok && size != n {
		return msg, &invalidFormatError{msg: msg}
	}
	return msg, nil
}

// message is the reused message of type typ, nil for a type the client may
// not send.
func (w *clientWire) message(typ byte) pgproto3.FrontendMessage {
	switch typ {
	case 'B':
		return &w.bind
	case 'C':
		return &w.close
	case 'D':
		return &w.describe
	case 'E':
		return &w.execute
	case 'F':
		return &w.fcall
	case 'H':
		return &w.flush
	case 'P':
		return &w.parse
	case 'Q':
		return &w.query
	case 'S':
		return &w.sync
	case 'X':
		return &w.term
	case 'c':
		return &w.copyDone
	case 'd':
		return &w.copyData
	case 'f':
		return &w.copyFail
	case 'p':
		switch w.authType {
		case pgproto3.AuthTypeSASL:
			return &pgproto3.SASLInitialResponse{}
		case pgproto3.AuthTypeSASLContinue, pgproto3.AuthTypeSASLFinal:
			return &pgproto3.SASLResponse{}
		default:
			return &pgproto3.PasswordMessage{}
		}
	}
	return nil
}

// readBody returns a buffer for a body of n bytes.
func (w *clientWire) readBody(n int) []byte {
	if n > reusedBody {
		return make([]byte, n)
	}
	if cap(w.body) < n {
		w.body = make([]byte, n, max(n, 512))
	}
	return w.body[:n]
}

// wireSize is the body size of a message as decoded; false for a type whose
// decoding already reads it all.
func wireSize(msg pgproto3.FrontendMessage) (int, bool) {
	switch m := msg.(type) {
	case *pgproto3.Parse:
		return len(m.Name) + 1 + len(m.Query) + 1 + 2 + 4*len(m.ParameterOIDs), true
	case *pgproto3.Bind:
		n := len(m.DestinationPortal) + 1 + len(m.PreparedStatement) + 1 + 2 + 2*len(m.ParameterFormatCodes) + 2 + 2 + 2*len(m.ResultFormatCodes)
		for _, p := range m.Parameters {
			n += 4 + len(p)
		}
		return n, true
	case *pgproto3.Describe:
		return 1 + len(m.Name) + 1, true
	case *pgproto3.Close:
		return 1 + len(m.Name) + 1, true
	case *pgproto3.Execute:
		return len(m.Portal) + 1 + 4, true
	case *pgproto3.Sync, *pgproto3.Flush, *pgproto3.Terminate, *pgproto3.CopyDone:
		return 0, true
	case *pgproto3.CopyFail:
		return len(m.Message) + 1, true
	}
	return 0, false
}

// unexpectedEOF turns an EOF inside a message into io.ErrUnexpectedEOF.
func unexpectedEOF(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

// parameterDescription encodes a ParameterDescription as Postgres does,
// also for more than 65535 parameters, which a statement may have but
// pgproto3 refuses to encode: the count wraps, and clients count the OIDs.
type parameterDescription struct{ pgproto3.ParameterDescription }

func (p *parameterDescription) Encode(dst []byte) ([]byte, error) {
	dst = append(dst, 't')
	dst = binary.BigEndian.AppendUint32(dst, uint32(4+2+4*len(p.ParameterOIDs)))
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(p.ParameterOIDs)))
	for _, oid := range p.ParameterOIDs {
		dst = binary.BigEndian.AppendUint32(dst, oid)
	}
	return dst, nil
}
