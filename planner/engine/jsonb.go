package engine

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"math"
	"slices"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/cockroachdb/apd/v3"
)

// Postgres's jsonb order, as jsonb_cmp gives it (compareJsonbContainers and
// compareJsonbScalarValue in src/backend/utils/adt/jsonb_util.c), over
// values read back from jsonb_out's text.

// jsonbKind is a jsonb value's type, numbered as Postgres's enum jbvType,
// which ranks values of different types.
type jsonbKind uint8

const (
	jsonbNull jsonbKind = iota
	jsonbString
	jsonbNumber
	jsonbBool
	jsonbArray
	jsonbObject
)

// jsonbValue is a parsed jsonb value.
type jsonbValue struct {
	kind  jsonbKind
	str   []byte      // string, decoded
	num   apd.Decimal // number
	truth bool        // bool
	elems []jsonbValue
	pairs []jsonbPair // object, in Postgres's storage order (see object)
}

type jsonbPair struct {
	key []byte
	val jsonbValue
}

// jsonbOrder compares two jsonb values as Postgres's jsonb_cmp (compareJsonbContainers in src/backend/utils/adt/jsonb_util.c) orders them,
// reading format 0 (jsonb_out text) or 1 (jsonb_send: a version byte 1 then the text).
// Strings (keys and values) compare bytewise, which equals Postgres's order only when the database's default collation is C, POSIX or C.UTF-8; the caller checks that.
func jsonbOrder(format int16) compareFunc {
	return func(a, b []byte) (int, error) {
		x, ok := readJsonb(a, format)
		if !ok {
			return 0, unreadableJsonb(a)
		}
		y, ok := readJsonb(b, format)
		if !ok {
			return 0, unreadableJsonb(b)
		}
		return compareJsonb(x, y), nil
	}
}

// jsonbKey returns a canonical byte string for a jsonb value such that two values have equal keys iff jsonb_cmp says they are equal (numbers by numeric value: 1.0 = 1.00 = 1).
//
// It holds under any collation: Postgres breaks collation ties between
// different strings bytewise (varstr_cmp), so equal strings are equal bytes.
func jsonbKey(v []byte, format int16) ([]byte, bool) {
	x, ok := readJsonb(v, format)
	if !ok {
		return nil, false
	}
	return x.appendKey(nil), true
}

func unreadableJsonb(v []byte) *Error {
	const limit = 64 // a value can be large; its start is enough to find it
	s := string(v)
	if len(s) > limit {
		s = s[:limit] + "..."
	}
	return internal("cannot read %q as jsonb", s)
}

// compareJsonb is jsonb_cmp on two top-level values. Postgres stores a
// top-level scalar as a one-element array flagged "raw scalar" and, against
// a real array, compares it as one: by element count first, then the raw
// scalar below. So the empty array sorts below every scalar, null included,
// and a scalar below every longer array.
func compareJsonb(x, y *jsonbValue) int {
	xScalar, yScalar := x.kind < jsonbArray, y.kind < jsonbArray
	switch {
	case xScalar && y.kind == jsonbArray:
		return cmp.Or(cmp.Compare(1, len(y.elems)), -1)
	case yScalar && x.kind == jsonbArray:
		return cmp.Or(cmp.Compare(len(x.elems), 1), 1)
	}
	return compareJsonbValue(x, y)
}

// compareJsonbValue compares values below the top level, and top-level
// values apart from compareJsonb's case. Arrays and objects compare by size
// first, then element by element or pair by pair in storage order (key,
// then value), as Postgres walks both in step.
func compareJsonbValue(x, y *jsonbValue) int {
	if x.kind != y.kind {
		return cmp.Compare(x.kind, y.kind)
	}
	switch x.kind {
	case jsonbString:
		return bytes.Compare(x.str, y.str)
	case jsonbNumber:
		return x.num.Cmp(&y.num)
	case jsonbBool:
		switch {
		case x.truth == y.truth:
			return 0
		case x.truth:
			return 1
		}
		return -1
	case jsonbArray:
		if c := cmp.Compare(len(x.elems), len(y.elems)); c != 0 {
			return c
		}
		for i := range x.elems {
			if c := compareJsonbValue(&x.elems[i], &y.elems[i]); c != 0 {
				return c
			}
		}
	case jsonbObject:
		if c := cmp.Compare(len(x.pairs), len(y.pairs)); c != 0 {
			return c
		}
		for i := range x.pairs {
			// Keys compare as strings here, not by length as they are stored.
			if c := bytes.Compare(x.pairs[i].key, y.pairs[i].key); c != 0 {
				return c
			}
			if c := compareJsonbValue(&x.pairs[i].val, &y.pairs[i].val); c != 0 {
				return c
			}
		}
	}
	return 0
}

// appendKey appends x in a self-delimiting form (a kind byte, lengths before
// variable parts), so different values never append alike. Numbers are
// reduced first (no trailing zeros, zero unsigned), so equal ones do.
func (x *jsonbValue) appendKey(dst []byte) []byte {
	dst = append(dst, byte(x.kind))
	switch x.kind {
	case jsonbString:
		dst = appendKeyBytes(dst, x.str)
	case jsonbNumber:
		var d apd.Decimal
		d.Reduce(&x.num)
		dst = append(dst, keyBool(d.Negative))
		dst = appendKeyBytes(dst, []byte(d.Coeff.String()))
		dst = binary.AppendVarint(dst, int64(d.Exponent))
	case jsonbBool:
		dst = append(dst, keyBool(x.truth))
	case jsonbArray:
		dst = binary.AppendUvarint(dst, uint64(len(x.elems)))
		for i := range x.elems {
			dst = x.elems[i].appendKey(dst)
		}
	case jsonbObject:
		dst = binary.AppendUvarint(dst, uint64(len(x.pairs)))
		for i := range x.pairs {
			dst = appendKeyBytes(dst, x.pairs[i].key)
			dst = x.pairs[i].val.appendKey(dst)
		}
	}
	return dst
}

func appendKeyBytes(dst, b []byte) []byte {
	return append(binary.AppendUvarint(dst, uint64(len(b))), b...)
}

func keyBool(b bool) byte {
	if b {
		return 1
	}
	return 0
}

// readJsonb reads jsonb_out's text (format 0) or jsonb_send's (format 1:
// version 1, then the text). It takes any JSON that jsonb_in takes (spacing,
// key order, duplicate keys, escapes, exponents) and makes the same value of
// it, though jsonb_out's text is already normalized.
func readJsonb(v []byte, format int16) (*jsonbValue, bool) {
	if format == 1 {
		if len(v) == 0 || v[0] != 1 {
			return nil, false
		}
		v = v[1:]
	}
	p := jsonbParser{s: v}
	var x jsonbValue
	ok := p.value(&x)
	p.space()
	return &x, ok && p.i == len(p.s)
}

// jsonbParser reads JSON from s, at i.
type jsonbParser struct {
	s []byte
	i int
}

func (p *jsonbParser) space() {
	for p.i < len(p.s) && (p.s[p.i] == ' ' || p.s[p.i] == '\t' || p.s[p.i] == '\n' || p.s[p.i] == '\r') {
		p.i++
	}
}

// take consumes c, after any space, if it comes next.
func (p *jsonbParser) take(c byte) bool {
	p.space()
	if p.i < len(p.s) && p.s[p.i] == c {
		p.i++
		return true
	}
	return false
}

func (p *jsonbParser) literal(word string) bool {
	if bytes.HasPrefix(p.s[p.i:], []byte(word)) {
		p.i += len(word)
		return true
	}
	return false
}

func (p *jsonbParser) value(x *jsonbValue) bool {
	p.space()
	if p.i == len(p.s) {
		return false
	}
	switch c := p.s[p.i]; {
	case c == '"':
		x.kind = jsonbString
		var ok bool
		x.str, ok = p.string()
		return ok
	case c == '[':
		x.kind = jsonbArray
		return p.array(x)
	case c == '{':
		x.kind = jsonbObject
		return p.object(x)
	case c == '-' || c >= '0' && c <= '9':
		x.kind = jsonbNumber
		return p.number(&x.num)
	case p.literal("null"):
		x.kind = jsonbNull
		return true
	case p.literal("true"):
		x.kind, x.truth = jsonbBool, true
		return true
	case p.literal("false"):
		x.kind = jsonbBool
		return true
	}
	return false
}

func (p *jsonbParser) array(x *jsonbValue) bool {
	p.i++ // '['
	if p.take(']') {
		return true
	}
	for {
		x.elems = append(x.elems, jsonbValue{})
		if !p.value(&x.elems[len(x.elems)-1]) {
			return false
		}
		if p.take(']') {
			return true
		}
		if !p.take(',') {
			return false
		}
	}
}

// object reads an object and puts its pairs in Postgres's storage order:
// keys by length, then bytes; of duplicate keys the last one stays.
func (p *jsonbParser) object(x *jsonbValue) bool {
	p.i++ // '{'
	if !p.take('}') {
		for {
			p.space()
			if p.i == len(p.s) || p.s[p.i] != '"' {
				return false
			}
			key, ok := p.string()
			if !ok || !p.take(':') {
				return false
			}
			x.pairs = append(x.pairs, jsonbPair{key: key})
			if !p.value(&x.pairs[len(x.pairs)-1].val) {
				return false
			}
			if p.take('}') {
				break
			}
			if !p.take(',') {
				return false
			}
		}
	}
	// A stable sort keeps duplicates in input order, so the last of each
	// run is the one to keep.
	slices.SortStableFunc(x.pairs, func(a, b jsonbPair) int {
		return cmp.Or(cmp.Compare(len(a.key), len(b.key)), bytes.Compare(a.key, b.key))
	})
	unique := x.pairs[:0]
	for i, pair := range x.pairs {
		if i+1 < len(x.pairs) && bytes.Equal(pair.key, x.pairs[i+1].key) {
			continue
		}
		unique = append(unique, pair)
	}
	x.pairs = unique
	return true
}

// string reads a string, at its opening quote, and decodes its escapes.
// Other bytes are kept as they are, valid UTF-8 or not, as a SQL_ASCII
// database keeps them.
func (p *jsonbParser) string() ([]byte, bool) {
	p.i++ // '"'
	out := []byte{}
	for p.i < len(p.s) {
		c := p.s[p.i]
		p.i++
		switch {
		case c == '"':
			return out, true
		case c < ' ':
			return nil, false // JSON wants control characters escaped
		case c != '\\':
			out = append(out, c)
			continue
		}
		if p.i == len(p.s) {
			return nil, false
		}
		c = p.s[p.i]
		p.i++
		switch c {
		case '"', '\\', '/':
			out = append(out, c)
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'u':
			r, ok := p.codePoint()
			if !ok {
				return nil, false
			}
			out = utf8.AppendRune(out, r)
		default:
			return nil, false
		}
	}
	return nil, false
}

// codePoint reads the hex digits of a \u escape, and a second escape after
// a high surrogate to pair with it; Postgres refuses a lone surrogate.
func (p *jsonbParser) codePoint() (rune, bool) {
	r, ok := p.hex4()
	if !ok || r == 0 {
		return 0, false // Postgres refuses \u0000: text cannot hold it
	}
	if !utf16.IsSurrogate(r) {
		return r, true
	}
	if !p.literal(`\u`) {
		return 0, false
	}
	low, ok := p.hex4()
	r = utf16.DecodeRune(r, low)
	return r, ok && r != utf8.RuneError
}

func (p *jsonbParser) hex4() (rune, bool) {
	if len(p.s)-p.i < 4 {
		return 0, false
	}
	n, err := strconv.ParseUint(string(p.s[p.i:p.i+4]), 16, 16)
	p.i += 4
	return rune(n), err == nil
}

// number reads a JSON number into d, exactly: display scale does not matter
// to jsonb_cmp.
func (p *jsonbParser) number(d *apd.Decimal) bool {
	d.Negative = p.literal("-")
	whole := p.digits()
	if len(whole) == 0 || len(whole) > 1 && whole[0] == '0' {
		return false
	}
	var frac []byte
	if p.literal(".") {
		if frac = p.digits(); len(frac) == 0 {
			return false
		}
	}
	var exp int64
	if p.literal("e") || p.literal("E") {
		start := p.i
		if !p.literal("+") {
			p.literal("-")
		}
		if len(p.digits()) == 0 {
			return false
		}
		var err error
		exp, err = strconv.ParseInt(string(p.s[start:p.i]), 10, 32)
		if err != nil || exp >= math.MaxInt32/2 || exp <= -math.MaxInt32/2 {
			return false // as numeric_in, even for zero
		}
	}
	digits := string(whole) + string(frac)
	exponent := exp - int64(len(frac))
	// numeric_in also refuses more than 16383 digits after the point (as
	// written) or 131072 before it.
	significant := strings.TrimLeft(digits, "0")
	if -exponent > decMaxDscale || significant != "" && int64(len(significant))+exponent > (decMaxWeight+1)*decDigits {
		return false
	}
	d.Exponent = int32(exponent)
	_, ok := d.Coeff.SetString(digits, 10)
	return ok
}

func (p *jsonbParser) digits() []byte {
	start := p.i
	for p.i < len(p.s) && p.s[p.i] >= '0' && p.s[p.i] <= '9' {
		p.i++
	}
	return p.s[start:p.i]
}
