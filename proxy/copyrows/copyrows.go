// Package copyrows splits the data stream of COPY ... FROM STDIN (text and
// CSV formats) into rows exactly where PostgreSQL's COPY FROM would, and
// decodes one field of each row, so that the gateway can send every row to the
// shard of its sharding key while the data streams through.
//
// The rules follow PostgreSQL's copyfromparse.c: the newline style (\n, \r\n
// or \r) is fixed by the first line; in text format a backslash escapes the
// next byte, so an escaped delimiter or newline does not end a field or a
// row; in CSV format delimiters and newlines inside quotes are data; the null
// string is compared with the field before de-escaping (and in CSV only when
// the field was not quoted); `\.` ends the data.
//
// The data is scanned byte by byte, which is right when client_encoding is
// UTF-8 or any other encoding PostgreSQL can use on a server: there every byte
// of a multibyte character has the high bit set. The client-only encodings
// SJIS, BIG5, GBK, UHC and GB18030 can hide a backslash or a quote in the
// second byte of a character (PostgreSQL converts to the server encoding
// before it splits lines), so COPY under them must be refused or converted
// first. Invalid encoding is left for the shards to reject.
package copyrows

import (
	"bytes"
	"fmt"
	"strings"
)

// SQLSTATE codes of the errors this package returns.
const (
	CodeBadCopyFileFormat     = "22P04" // bad_copy_file_format
	CodeInvalidParameterValue = "22023" // invalid_parameter_value
	CodeProgramLimitExceeded  = "54000" // program_limit_exceeded
)

// Error is a malformed COPY stream or unusable Options. Message and Hint are
// PostgreSQL's wording where PostgreSQL has the same error.
type Error struct {
	Code    string // SQLSTATE
	Message string
	Hint    string
	// Line is the 1-based line of the COPY data the error is on, counted as
	// PostgreSQL counts it for its "COPY t, line N" context: every row
	// (the header too) is a line, and so is every newline inside a quoted
	// CSV field. It is 0 for errors in Options.
	Line int
}

func (e *Error) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s (COPY data line %d)", e.Message, e.Line)
	}
	return e.Message
}

// Options are the format options of COPY ... FROM STDIN WITH (...). Start from
// TextOptions or CSVOptions and override what the statement sets: Null is used
// as is (the empty string is a valid null marker), while a zero Delimiter,
// Quote or Escape means PostgreSQL's default.
type Options struct {
	CSV       bool   // FORMAT csv; otherwise FORMAT text
	Delimiter byte   // DELIMITER; default '\t' (text), ',' (CSV)
	Null      string // NULL; default `\N` (text), "" (CSV)
	Quote     byte   // QUOTE, CSV only; default '"'
	Escape    byte   // ESCAPE, CSV only; 0 means the same as Quote
	Header    bool   // HEADER (true or MATCH): the first line is not data

	// ForceNull and ForceNotNull say whether the sharding column is listed
	// in FORCE_NULL or FORCE_NOT_NULL (CSV only), which change whether the
	// key is NULL.
	ForceNull    bool
	ForceNotNull bool

	// ServerVersion is server_version_num of the PostgreSQL servers that
	// will parse the rows (for example 170004); 0 means a release before 18.
	// It only changes the end-of-data marker `\.`: before 18 it may end the
	// data in CSV too (alone on a line), and in text format anything on its
	// line before it is a last row; from 18 on CSV has no marker and in text
	// format the marker must be alone on its line.
	ServerVersion int
}

// TextOptions returns PostgreSQL's defaults for FORMAT text.
func TextOptions() Options { return Options{Delimiter: '\t', Null: `\N`} }

// CSVOptions returns PostgreSQL's defaults for FORMAT csv. Escape is left 0,
// so that it follows a Quote set later, as ESCAPE follows QUOTE in COPY.
func CSVOptions() Options { return Options{CSV: true, Delimiter: ',', Quote: '"'} }

// RowFunc receives one row of the COPY data. row is the row's bytes exactly as
// the client sent them, line terminator included, ready to be forwarded; key
// is the decoded value of the key field, nil when null is true. Both are valid
// only until RowFunc returns and must not be modified; they may alias the
// chunk passed to Write.
type RowFunc func(row, key []byte, null bool) error

type eolType uint8

const (
	eolUnknown eolType = iota
	eolNL
	eolCR
	eolCRNL
)

// lexState is where the line scanner is inside the current row.
type lexState uint8

const (
	stStart        lexState = iota // no byte of the row seen yet
	stData                         // inside the row
	stEsc                          // text: after a backslash
	stCR                           // after an unquoted \r whose meaning depends on the next byte
	stCSVBackslash                 // CSV before 18: a backslash was the row's first byte
	stDot                          // after `\.`
	stDotCR                        // after `\.\r` with \r\n newlines
)

// maxRowBytes bounds one row, as PostgreSQL's line buffer is bounded, so a
// client cannot make the gateway buffer without limit.
var maxRowBytes = 1<<30 - 1

// Splitter splits a COPY FROM STDIN data stream into rows. Feed it the
// payloads of the client's CopyData messages with Write, in order, and call
// Close at CopyDone. It buffers at most one incomplete row. A Splitter is not
// safe for concurrent use. After any error, including one returned by a
// RowFunc, it returns that error from every later call.
type Splitter struct {
	csv        bool
	delim      byte
	quote, esc byte
	hasEsc     bool // CSV escape character differs from the quote character
	null       string
	forceNull  bool
	forceNN    bool
	oldMarker  bool // PostgreSQL before 18
	keyField   int
	headerFunc func(line []byte) error

	header     bool // the next row is the header line
	eol        eolType
	line       int // line number of the current row
	st         lexState
	inQuote    bool
	lastWasEsc bool
	markerAt   int // text: length of the row before the backslash of `\.`
	done       bool
	err        error

	special [256]bool // bytes the text scanner or CSV scanner outside quotes must look at
	quoted  [256]bool // bytes the CSV scanner inside quotes must look at

	carry  []byte // the current row's bytes from earlier chunks
	keyBuf []byte // the decoded key when it differs from its raw bytes
}

// NewSplitter returns a Splitter for data in the format opts describes, which
// extracts field keyField (0-based) of every row.
func NewSplitter(opts Options, keyField int) (*Splitter, error) {
	if opts.Delimiter == 0 {
		opts.Delimiter = '\t'
		if opts.CSV {
			opts.Delimiter = ','
		}
	}
	if opts.Quote == 0 {
		opts.Quote = '"'
	}
	if opts.Escape == 0 {
		opts.Escape = opts.Quote
	}
	invalid := func(format string, args ...any) (*Splitter, error) {
		return nil, &Error{Code: CodeInvalidParameterValue, Message: fmt.Sprintf(format, args...)}
	}
	switch {
	case keyField < 0:
		return invalid("copyrows: key field %d out of range", keyField)
	case opts.Delimiter == '\n' || opts.Delimiter == '\r':
		return invalid("COPY delimiter cannot be newline or carriage return")
	case strings.ContainsAny(opts.Null, "\r\n"):
		return invalid("COPY null representation cannot use newline or carriage return")
	case !opts.CSV && strings.IndexByte(`\.abcdefghijklmnopqrstuvwxyz0123456789`, opts.Delimiter) >= 0:
		return invalid("COPY delimiter cannot be %q", string(opts.Delimiter))
	case strings.IndexByte(opts.Null, opts.Delimiter) >= 0:
		return invalid("COPY delimiter character must not appear in the NULL specification")
	}
	if opts.CSV {
		switch {
		case opts.Delimiter == opts.Quote:
			return invalid("COPY delimiter and quote must be different")
		case opts.Quote == '\n' || opts.Quote == '\r' || opts.Escape == '\n' || opts.Escape == '\r':
			return invalid("COPY quote and escape cannot be newline or carriage return")
		case strings.IndexByte(opts.Null, opts.Quote) >= 0:
			return invalid("CSV quote character must not appear in the NULL specification")
		}
	}
	s := &Splitter{
		csv:       opts.CSV,
		delim:     opts.Delimiter,
		null:      opts.Null,
		oldMarker: opts.ServerVersion < 180000,
		keyField:  keyField,
		header:    opts.Header,
		line:      1,
	}
	s.special['\n'], s.special['\r'] = true, true
	if opts.CSV {
		s.quote, s.esc = opts.Quote, opts.Escape
		s.hasEsc = s.esc != s.quote
		s.forceNull, s.forceNN = opts.ForceNull, opts.ForceNotNull
		s.special[s.quote] = true
		s.quoted['\n'], s.quoted['\r'], s.quoted[s.quote], s.quoted[s.esc] = true, true, true, true
	} else {
		s.special['\\'] = true
	}
	return s, nil
}

// SetHeaderFunc sets the function that receives the header line when
// Options.Header is set, raw and with its terminator, valid only during the
// call (for example to forward it to every shard). Without one the header
// line is dropped.
func (s *Splitter) SetHeaderFunc(fn func(line []byte) error) { s.headerFunc = fn }

// Done reports whether the data has ended, at the end-of-data marker `\.` or
// at Close. Data written after the marker is ignored, as PostgreSQL ignores
// it until CopyDone.
func (s *Splitter) Done() bool { return s.done }

func (s *Splitter) fail(msg, hint string) error {
	s.err = &Error{Code: CodeBadCopyFileFormat, Message: msg, Hint: hint, Line: s.line}
	return s.err
}

func (s *Splitter) crError() error {
	if s.csv {
		return s.fail("unquoted carriage return found in data", "Use quoted CSV field to represent carriage return.")
	}
	return s.fail("literal carriage return found in data", `Use "\r" to represent carriage return.`)
}

func (s *Splitter) nlError() error {
	if s.csv {
		return s.fail("unquoted newline found in data", "Use quoted CSV field to represent newline.")
	}
	return s.fail("literal newline found in data", `Use "\n" to represent newline.`)
}

func (s *Splitter) markerError(styleMismatch bool) error {
	switch {
	case styleMismatch:
		return s.fail("end-of-copy marker does not match previous newline style", "")
	case s.oldMarker:
		return s.fail("end-of-copy marker corrupt", "")
	}
	return s.fail("end-of-copy marker is not alone on its line", "")
}

// csvStep updates the CSV quoting state for byte c, as PostgreSQL's line
// reader does: the escape character only counts inside quotes, and only
// right before a quote or another escape character.
func (s *Splitter) csvStep(c byte) {
	if s.inQuote && s.hasEsc && c == s.esc {
		s.lastWasEsc = !s.lastWasEsc
	}
	if c == s.quote && !s.lastWasEsc {
		s.inQuote = !s.inQuote
	}
	if !s.hasEsc || c != s.esc {
		s.lastWasEsc = false
	}
	// PostgreSQL counts newlines inside quoted fields as lines.
	if s.inQuote && ((c == '\n' && s.eol == eolNL) || (c == '\r' && s.eol != eolNL)) {
		s.line++
	}
}

// Write consumes the next chunk of the COPY data and calls fn for every row
// the chunk completes. It keeps the bytes of a row the chunk leaves
// incomplete, so the caller may reuse chunk once Write returns. It returns
// fn's error or an *Error for malformed data. PostgreSQL loads nothing from a
// COPY that fails, so on any error the caller must fail the COPY on every
// shard, including those that were sent rows before the error.
func (s *Splitter) Write(chunk []byte, fn RowFunc) error {
	if s.err != nil {
		return s.err
	}
	if s.done {
		return nil
	}
	b := chunk
	start := 0 // the current row's bytes not yet in carry are b[start:i]
	i := 0
	for i < len(b) {
		switch s.st {
		case stStart:
			if !s.header && len(s.carry) == 0 {
				n, err := s.fastRows(b[i:], fn)
				if err != nil {
					return err
				}
				i += n
				start = i
				if i == len(b) {
					continue
				}
			}
			if s.csv && s.oldMarker && b[i] == '\\' {
				s.csvStep('\\')
				s.st = stCSVBackslash
				i++
				continue
			}
			s.st = stData
		case stData:
			if s.csv {
				if s.inQuote {
					j := i
					for j < len(b) && !s.quoted[b[j]] {
						j++
					}
					if j > i {
						s.lastWasEsc = false
						i = j
						continue
					}
				} else {
					for i < len(b) && !s.special[b[i]] {
						i++
					}
					if i == len(b) {
						continue
					}
				}
				c := b[i]
				s.csvStep(c)
				if s.inQuote || c != '\n' && c != '\r' {
					i++
					continue
				}
			} else {
				for i < len(b) && !s.special[b[i]] {
					i++
				}
				if i == len(b) {
					continue
				}
			}
			switch b[i] {
			case '\n':
				if s.eol == eolCR || s.eol == eolCRNL {
					return s.nlError()
				}
				s.eol = eolNL
				i++
				if err := s.endRow(b, start, i, 1, fn); err != nil {
					return err
				}
				start = i
			case '\r':
				switch s.eol {
				case eolNL:
					return s.crError()
				case eolCR:
					i++
					if err := s.endRow(b, start, i, 1, fn); err != nil {
						return err
					}
					start = i
				default:
					s.st = stCR
					i++
				}
			case '\\':
				s.markerAt = len(s.carry) + i - start
				s.st = stEsc
				i++
			}
		case stEsc:
			// A backslash makes the next byte data, whatever it is,
			// unless the two are the end-of-data marker.
			if b[i] == '.' {
				s.st = stDot
			} else {
				s.st = stData
			}
			i++
		case stCR:
			if b[i] == '\n' {
				s.eol = eolCRNL
				i++
				if err := s.endRow(b, start, i, 2, fn); err != nil {
					return err
				}
			} else {
				if s.eol == eolCRNL {
					return s.crError()
				}
				s.eol = eolCR
				if err := s.endRow(b, start, i, 1, fn); err != nil {
					return err
				}
			}
			start = i
		case stCSVBackslash:
			if b[i] == '.' {
				s.st = stDot
				i++
			} else {
				s.st = stData
			}
		case stDot, stDotCR:
			switch m, err := s.marker(b[i]); {
			case err != nil:
				return err
			case m == markerMore:
				i++
				continue
			case m == markerData:
				// CSV: the line only starts with `\.`; it is data.
				s.replayMarker()
				continue
			}
			i++
			if !s.csv && s.oldMarker && s.markerAt > 0 {
				s.carry = append(s.carry, b[start:i]...)
				if err := s.finalRow(s.markerAt, fn); err != nil {
					return err
				}
			}
			s.done = true
			s.carry = s.carry[:0]
			return nil
		}
	}
	if len(s.carry)+len(b)-start > maxRowBytes {
		s.err = &Error{Code: CodeProgramLimitExceeded, Message: fmt.Sprintf("COPY row is longer than %d bytes", maxRowBytes), Line: s.line}
		return s.err
	}
	s.carry = append(s.carry, b[start:]...)
	return nil
}

type markerResult uint8

const (
	markerMore markerResult = iota // the marker needs another byte
	markerEnd                      // the marker is complete: the data ends
	markerData                     // CSV: not a marker after all
)

// marker consumes byte c following `\.` (state stDot or stDotCR). In text
// format a byte that does not complete the marker is an error; in CSV it
// makes the line data.
func (s *Splitter) marker(c byte) (markerResult, error) {
	if s.st == stDot && s.eol == eolCRNL {
		switch {
		case c == '\r':
			s.st = stDotCR
			return markerMore, nil
		case s.csv:
			return markerData, nil
		default:
			return 0, s.markerError(c == '\n')
		}
	}
	if c != '\r' && c != '\n' {
		if s.csv {
			return markerData, nil
		}
		return 0, s.markerError(false)
	}
	if (s.eol == eolNL || s.eol == eolCRNL) && c != '\n' || s.eol == eolCR && c != '\r' {
		return 0, s.markerError(true)
	}
	if !s.csv && !s.oldMarker && s.markerAt > 0 {
		return 0, s.markerError(false)
	}
	return markerEnd, nil
}

// replayMarker undoes a CSV `\.` that turned out not to be a marker: the bytes
// after the backslash are ordinary data, scanned again (the byte that
// disproved the marker is still to be scanned by the caller).
func (s *Splitter) replayMarker() {
	wasCR := s.st == stDotCR
	s.st = stData
	s.csvStep('.')
	if !wasCR {
		return
	}
	s.csvStep('\r')
	if !s.inQuote {
		// With \r\n newlines an unquoted \r must be followed by \n;
		// stCR checks the next byte.
		s.st = stCR
	}
}

// endRow passes the row ending at b[end] (with a terminator of termLen bytes)
// to fn or the header function, and starts the next row.
func (s *Splitter) endRow(b []byte, start, end, termLen int, fn RowFunc) error {
	row := b[start:end]
	if len(s.carry) > 0 {
		s.carry = append(s.carry, row...)
		row = s.carry
	}
	err := s.emit(row, len(row)-termLen, fn)
	s.carry = s.carry[:0]
	s.st = stStart
	s.line++
	return err
}

// finalRow passes the first n bytes of carry as a row ended by the end of the
// data, with a line terminator of the stream's style appended so that the
// row stands alone wherever it is forwarded.
//
// The exception is a last CSV line `\.` before PostgreSQL 18: it is data only
// because no newline follows it, so it is passed on as it came and must stay
// the last row its shard receives (which it is, being the last of all).
func (s *Splitter) finalRow(n int, fn RowFunc) error {
	s.carry = s.carry[:n]
	if s.csv && s.oldMarker && string(s.carry) == `\.` {
		return s.emit(s.carry, n, fn)
	}
	switch s.eol {
	case eolCR:
		s.carry = append(s.carry, '\r')
	case eolCRNL:
		s.carry = append(s.carry, '\r', '\n')
	default:
		s.carry = append(s.carry, '\n')
	}
	return s.emit(s.carry, n, fn)
}

func (s *Splitter) emit(row []byte, n int, fn RowFunc) error {
	if s.header {
		s.header = false
		if s.headerFunc != nil {
			if err := s.headerFunc(row); err != nil {
				s.err = err
				return err
			}
		}
		return nil
	}
	var (
		key  []byte
		null bool
		err  error
	)
	if s.csv {
		key, null, err = s.csvKey(row[:n])
	} else {
		key, null, err = s.textKey(row[:n])
	}
	if err == nil {
		err = fn(row, key, null)
	}
	if err != nil {
		s.err = err
	}
	return err
}

// Close ends the data (the client's CopyDone) and passes a last row that has
// no line terminator to fn, with one appended (in the stream's newline style;
// a text-format backslash right at the end, which PostgreSQL ignores, is
// dropped first; a last CSV line `\.` before PostgreSQL 18 is passed as it
// came, as a newline would make it the end-of-data marker). It returns an
// *Error if the data ends inside a quoted CSV field or an unfinished
// end-of-data marker.
func (s *Splitter) Close(fn RowFunc) error {
	if s.err != nil {
		return s.err
	}
	if s.done {
		return nil
	}
	s.done = true
	if s.st == stDot || s.st == stDotCR {
		if !s.csv {
			return s.markerError(false)
		}
		s.replayMarker()
	}
	n := len(s.carry)
	switch s.st {
	case stStart:
		return nil
	case stEsc:
		// A backslash at the very end is dropped: PostgreSQL ends the
		// field before it.
		n--
	case stCR:
		if s.eol == eolCRNL {
			return s.crError()
		}
		s.eol = eolCR
		return s.endRow(nil, 0, 0, 1, fn)
	}
	if s.csv && s.inQuote && !s.header {
		return s.fail("unterminated CSV quoted field", "")
	}
	err := s.finalRow(n, fn)
	s.carry = s.carry[:0]
	return err
}

// fastRows passes on the rows at the start of b that need no state machine:
// complete lines, in the stream's newline style, without a backslash (text)
// or quote (CSV). It returns how many bytes of b they take.
func (s *Splitter) fastRows(b []byte, fn RowFunc) (int, error) {
	if s.eol == eolCR {
		return 0, nil
	}
	n := 0
	for {
		rest := b[n:]
		j := bytes.IndexByte(rest, '\n')
		if j < 0 {
			return n, nil
		}
		content := rest[:j]
		eol := eolNL
		if s.eol == eolCRNL || s.eol == eolUnknown && j > 0 && rest[j-1] == '\r' {
			if j == 0 || rest[j-1] != '\r' {
				return n, nil
			}
			content = rest[:j-1]
			eol = eolCRNL
		}
		if bytes.IndexByte(content, '\r') >= 0 {
			return n, nil
		}
		if s.csv {
			if bytes.IndexByte(content, s.quote) >= 0 || s.oldMarker && len(content) > 0 && content[0] == '\\' {
				return n, nil
			}
		} else if bytes.IndexByte(content, '\\') >= 0 {
			return n, nil
		}
		s.eol = eol
		key, null, err := s.plainKey(content)
		if err == nil {
			err = fn(rest[:j+1], key, null)
		}
		if err != nil {
			s.err = err
			return n, err
		}
		s.line++
		n += j + 1
	}
}

// plainKey extracts the key field of a line that has no escapes or quotes.
func (s *Splitter) plainKey(line []byte) ([]byte, bool, error) {
	p := 0
	for f := 0; f < s.keyField; f++ {
		j := bytes.IndexByte(line[p:], s.delim)
		if j < 0 {
			return nil, false, s.fieldCountError(f + 1)
		}
		p += j + 1
	}
	field := line[p:]
	if j := bytes.IndexByte(field, s.delim); j >= 0 {
		field = field[:j]
	}
	return s.csvNull(field, string(field) == s.null)
}

func (s *Splitter) fieldCountError(n int) error {
	fields := "fields"
	if n == 1 {
		fields = "field"
	}
	return &Error{
		Code:    CodeBadCopyFileFormat,
		Message: fmt.Sprintf("row has only %d %s, sharding column is field %d", n, fields, s.keyField+1),
		Line:    s.line,
	}
}

// csvNull applies FORCE_NOT_NULL and FORCE_NULL to a decoded key (a no-op in
// text format).
func (s *Splitter) csvNull(key []byte, null bool) ([]byte, bool, error) {
	switch {
	case null && s.forceNN:
		return key, false, nil // the unquoted null string, taken as a value
	case null:
		return nil, true, nil
	case s.forceNull && string(key) == s.null:
		return nil, true, nil
	}
	return key, false, nil
}

// textKey extracts and de-escapes the key field of a text-format line.
func (s *Splitter) textKey(line []byte) ([]byte, bool, error) {
	p := 0
	for f := 0; ; f++ {
		begin := p
		end, next, escaped := s.textField(line, p)
		if f == s.keyField {
			field := line[begin:end]
			if string(field) == s.null {
				return nil, true, nil
			}
			if !escaped {
				return field, false, nil
			}
			s.keyBuf = appendUnescaped(s.keyBuf[:0], field)
			return s.keyBuf, false, nil
		}
		if next < 0 {
			return nil, false, s.fieldCountError(f + 1)
		}
		p = next
	}
}

// textField scans the text-format field starting at line[p]. It returns the
// end of the field's raw bytes, the start of the next field (-1 if this is
// the last) and whether the field has a backslash.
func (s *Splitter) textField(line []byte, p int) (end, next int, escaped bool) {
	for p < len(line) {
		c := line[p]
		if c == s.delim {
			return p, p + 1, escaped
		}
		if c != '\\' {
			p++
			continue
		}
		if p+1 == len(line) {
			return p, -1, escaped // a trailing backslash is not part of the field
		}
		escaped = true
		p = skipEscape(line, p+1)
	}
	return p, -1, escaped
}

// skipEscape returns the end of the escape sequence whose first byte after
// the backslash is line[p]. Digits belong to the sequence as de-escaping
// consumes them, because they could be the delimiter (an upper-case hex
// digit can be).
func skipEscape(line []byte, p int) int {
	c := line[p]
	p++
	switch {
	case isOctal(c):
		for k := 0; k < 2 && p < len(line) && isOctal(line[p]); k++ {
			p++
		}
	case c == 'x':
		for k := 0; k < 2 && p < len(line) && hexValue(line[p]) >= 0; k++ {
			p++
		}
	}
	return p
}

// appendUnescaped appends the de-escaped value of text-format field raw.
func appendUnescaped(dst, raw []byte) []byte {
	for p := 0; p < len(raw); {
		c := raw[p]
		p++
		if c != '\\' || p == len(raw) {
			if c != '\\' {
				dst = append(dst, c)
			}
			continue
		}
		c = raw[p]
		p++
		switch c {
		case '0', '1', '2', '3', '4', '5', '6', '7':
			v := int(c - '0')
			for k := 0; k < 2 && p < len(raw) && isOctal(raw[p]); k++ {
				v = v<<3 + int(raw[p]-'0')
				p++
			}
			c = byte(v)
		case 'x':
			if p < len(raw) && hexValue(raw[p]) >= 0 {
				v := hexValue(raw[p])
				p++
				if p < len(raw) && hexValue(raw[p]) >= 0 {
					v = v<<4 + hexValue(raw[p])
					p++
				}
				c = byte(v)
			}
		case 'b':
			c = '\b'
		case 'f':
			c = '\f'
		case 'n':
			c = '\n'
		case 'r':
			c = '\r'
		case 't':
			c = '\t'
		case 'v':
			c = '\v'
		}
		dst = append(dst, c)
	}
	return dst
}

func isOctal(c byte) bool { return c >= '0' && c <= '7' }

func hexValue(c byte) int {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0')
	case c >= 'a' && c <= 'f':
		return int(c-'a') + 10
	case c >= 'A' && c <= 'F':
		return int(c-'A') + 10
	}
	return -1
}

// csvKey extracts and de-quotes the key field of a CSV line.
func (s *Splitter) csvKey(line []byte) ([]byte, bool, error) {
	p := 0
	for f := 0; ; f++ {
		begin := p
		end, next, quoted, err := s.csvField(line, p)
		if err != nil {
			return nil, false, err
		}
		if f == s.keyField {
			field := line[begin:end]
			if !quoted {
				return s.csvNull(field, string(field) == s.null)
			}
			s.keyBuf = s.appendUnquoted(s.keyBuf[:0], field)
			return s.csvNull(s.keyBuf, false)
		}
		if next < 0 {
			return nil, false, s.fieldCountError(f + 1)
		}
		p = next
	}
}

// csvField scans the CSV field starting at line[p]. It returns the end of the
// field's raw bytes, the start of the next field (-1 if this is the last) and
// whether the field has a quote.
func (s *Splitter) csvField(line []byte, p int) (end, next int, quoted bool, err error) {
	for {
		for p < len(line) && line[p] != s.delim && line[p] != s.quote {
			p++
		}
		if p == len(line) {
			return p, -1, quoted, nil
		}
		if line[p] == s.delim {
			return p, p + 1, quoted, nil
		}
		quoted = true
		p++
		for {
			if p == len(line) {
				return 0, 0, false, &Error{Code: CodeBadCopyFileFormat, Message: "unterminated CSV quoted field", Line: s.line}
			}
			c := line[p]
			p++
			if c == s.esc && p < len(line) && (line[p] == s.esc || line[p] == s.quote) {
				p++
				continue
			}
			if c == s.quote {
				break
			}
		}
	}
}

// appendUnquoted appends the value of CSV field raw, which csvField has
// checked.
func (s *Splitter) appendUnquoted(dst, raw []byte) []byte {
	inQuote := false
	for p := 0; p < len(raw); {
		c := raw[p]
		p++
		if !inQuote {
			if c == s.quote {
				inQuote = true
			} else {
				dst = append(dst, c)
			}
			continue
		}
		if c == s.esc && p < len(raw) && (raw[p] == s.esc || raw[p] == s.quote) {
			dst = append(dst, raw[p])
			p++
			continue
		}
		if c == s.quote {
			inQuote = false
			continue
		}
		dst = append(dst, c)
	}
	return dst
}
