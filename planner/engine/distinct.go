package engine

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
)

// distinctEntryBytes is what a HashDistinct counts for each key it
// remembers besides the key's own bytes: the map entry and the string's
// header and allocation slack.
const distinctEntryBytes = 48

// HashDistinct finishes a SELECT DISTINCT without ORDER BY whose rows span
// shards: each shard returns its own distinct rows (the statement's columns,
// then Hidden columns), in no particular order, and HashDistinct passes on
// the first row of every set of rows whose visible columns are equal as
// Postgres's = for their types says — 1.5 and 1.50, -0 and 0, '1 mon' and
// '30 days' are equal; all NULLs of a column are equal to each other and to
// no value — dropping the others and the hidden columns. A row goes to the
// client as soon as it arrives; HashDistinct remembers a key per row it
// passed on, up to the session's shardgate.query_memory (memoryLimit),
// past which the statement fails with 53200. The command tag counts the
// rows passed on.
//
// Text (text, varchar, name, and character without its trailing spaces) is
// equal when its bytes are, which is Postgres's equality under a
// deterministic collation only: with Deterministic set, the last hidden
// column says whether the columns' collations all are, and HashDistinct
// refuses the statement when they are not (ICU's case-insensitive ones,
// say). Types, formats and settings whose values the gateway
// cannot tell equal exactly are refused with 0A000 when the columns arrive,
// as comparator refuses them.
type HashDistinct struct {
	Input Primitive
	// Columns are the distinct columns as the statement wrote them, for
	// messages.
	Columns []string
	Hidden  int
	// Deterministic says the last hidden column is true when every
	// column's collation is deterministic.
	Deterministic bool
}

var _ Primitive = (*HashDistinct)(nil)

// Inputs implements Primitive.
func (d *HashDistinct) Inputs() []Primitive { return []Primitive{d.Input} }

// Describe implements Primitive.
func (d *HashDistinct) Describe() string {
	return fmt.Sprintf("HashDistinct cols(%s)", strings.Join(d.Columns, ", "))
}

// Stream implements Primitive.
func (d *HashDistinct) Stream(ctx context.Context, x Executor, args Params, emit func(*Batch) error) (Tag, error) {
	limit, err := memoryLimit(x)
	if err != nil {
		return "", err
	}
	var (
		described bool
		keys      []keyFunc
		types     []string // the visible columns' type names, for messages
		seen      = map[string]struct{}{}
		held      int
		passed    int64
		key       []byte
		out       [][][]byte
		fields    []Field
		checked   bool // the collations were checked
	)
	_, err = d.Input.Stream(ctx, x, args, func(b *Batch) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		if b.Fields != nil {
			if described {
				return internal("the shards described DISTINCT's columns twice")
			}
			described = true
			fields = slices.Clone(b.Fields)
			visible := len(b.Fields) - d.Hidden
			if visible != len(d.Columns) {
				return internal("DISTINCT's shards returned %d columns, want %d and %d hidden", len(b.Fields), len(d.Columns), d.Hidden)
			}
			for i, f := range b.Fields[:visible] {
				k, err := distinctKey("DISTINCT "+d.Columns[i], f.DataTypeOID, f.Format, x)
				if err != nil {
					return err
				}
				keys = append(keys, k)
				types = append(types, typeName(f.DataTypeOID))
			}
			return emit(&Batch{Fields: slices.Clone(b.Fields[:visible])})
		}
		if !described {
			return internal("a shard sent DISTINCT's rows without describing them")
		}
		for _, row := range b.Rows {
			if len(row) != len(keys)+d.Hidden {
				return internal("a shard sent a row of %d columns for DISTINCT's %d and %d hidden", len(row), len(keys), d.Hidden)
			}
			if d.Deterministic && !checked {
				if err := d.checkCollations(row[len(row)-1], fields[len(row)-1].Format); err != nil {
					return err
				}
				checked = true
			}
			var err error
			if key, err = appendRowKey(key[:0], row, keys, d.Columns, types); err != nil {
				return err
			}
			if _, dup := seen[string(key)]; dup {
				continue
			}
			if held += len(key) + distinctEntryBytes; held > limit {
				return outOfMemory("the distinct rows of a statement across shards take", limit,
					"Add an ORDER BY of the distinct columns, so that the gateway merges the shards' distinct rows in order instead of remembering them, narrow the statement")
			}
			seen[string(key)] = struct{}{}
			out = append(out, row[:len(keys):len(keys)])
		}
		if len(out) == 0 {
			return nil
		}
		passed += int64(len(out))
		err := emit(&Batch{Rows: out})
		clear(out) // the rows are the sender's: do not keep them
		out = out[:0]
		return err
	})
	if err != nil {
		return "", err
	}
	return Tag("SELECT " + strconv.FormatInt(passed, 10)), nil
}

// checkCollations refuses rows whose text columns are equal under another
// rule than their bytes: hidden column Deterministic's value v is false.
func (d *HashDistinct) checkCollations(v []byte, format int16) error {
	if v == nil {
		return nil // no text column
	}
	deterministic, err := readBool(v, format)
	if err != nil {
		return err
	}
	if !deterministic {
		return Unsupported("DISTINCT %s across shards is not supported under a nondeterministic collation: shardgate tells text apart by its bytes", strings.Join(d.Columns, ", "))
	}
	return nil
}

// byteSize prints a memory limit, a whole number of KiB, in MiB when it
// is a whole number of them.
func byteSize(n int) string {
	if n%(1<<20) == 0 {
		return fmt.Sprintf("%d MiB", n>>20)
	}
	return fmt.Sprintf("%d KiB", n>>10)
}

// appendRowKey appends to dst the key of row's first len(keys) columns,
// each NULL or its value's key, so that rows get the same key if and only
// if Postgres calls them equal; columns and types name them in messages.
func appendRowKey(dst []byte, row [][]byte, keys []keyFunc, columns, types []string) ([]byte, error) {
	for i, k := range keys {
		v := row[i]
		if v == nil {
			dst = append(dst, 0)
			continue
		}
		var ok bool
		if dst, ok = k(append(dst, 1), v); !ok {
			return dst, unreadable(columns[i], types[i], v)
		}
	}
	return dst, nil
}

// keyFunc appends to dst a canonical form of a non-NULL value of one
// column: two values of the column get the same form if and only if
// Postgres's = says they are equal. Every form is self-delimiting, so the
// forms of a row's columns concatenate into the row's key. It returns false
// for a value it cannot read.
type keyFunc func(dst, v []byte) ([]byte, bool)

// distinctKey returns the keyFunc for values of type oid sent in format
// (0 text, 1 binary), under settings env, for the column use describes
// ("DISTINCT name", "UNION name"); or an *Error with code 0A000 when the
// gateway cannot tell such values equal as Postgres does (XX000 for a
// format other than 0 and 1).
func distinctKey(use string, oid uint32, format int16, env Settings) (keyFunc, error) {
	// Telling values equal needs what ordering them needs: values that
	// print alike only when they are equal (extra_float_digits), in a form
	// the readers know (DateStyle, IntervalStyle), in an encoding that
	// keeps text apart (client_encoding). comparator refuses the rest,
	// and the types it cannot read.
	if _, err := comparator(use, oid, format, env); err != nil {
		return nil, err
	}
	text := format == 0
	switch oid {
	case oidBool:
		return keyBy(pick(text, boolText, boolBinary), binary.AppendVarint), nil
	case oidInt2:
		return keyBy(pick(text, intText(16), intBinary(2)), binary.AppendVarint), nil
	case oidInt4:
		return keyBy(pick(text, intText(32), intBinary(4)), binary.AppendVarint), nil
	case oidInt8:
		return keyBy(pick(text, intText(64), intBinary(8)), binary.AppendVarint), nil
	case oidOID:
		return keyBy(pick(text, uint32Text, uint32Binary), binary.AppendVarint), nil
	case oidFloat4:
		return keyBy(pick(text, floatText(32), float4Binary), appendFloatKey), nil
	case oidFloat8:
		return keyBy(pick(text, floatText(64), float8Binary), appendFloatKey), nil
	case oidNumeric:
		return keyBy(pick(text, decimalTextBytes, decimalBinary), appendDecimalKey), nil
	case oidText, oidVarchar, oidName:
		return func(dst, v []byte) ([]byte, bool) { return appendBytesKey(dst, v), true }, nil
	case oidBpchar:
		// Trailing spaces of character(n) are insignificant, in both formats.
		return func(dst, v []byte) ([]byte, bool) { return appendBytesKey(dst, bytes.TrimRight(v, " ")), true }, nil
	case oidBytea:
		return keyBy(pick(text, byteaText, byteaBinary), appendBytesKey), nil
	case oidUUID:
		return keyBy(pick(text, uuidText, uuidBinary), appendBytesKey), nil
	case oidDate:
		return keyBy(pick(text, dateText, intBinary(4)), binary.AppendVarint), nil
	case oidTimestamp:
		return keyBy(pick(text, timestampText(false), intBinary(8)), binary.AppendVarint), nil
	case oidTimestamptz:
		return keyBy(pick(text, timestampText(true), intBinary(8)), binary.AppendVarint), nil
	case oidInterval:
		return keyBy(pick(text, intervalText, intervalBinary), appendSpanKey), nil
	case oidInet, oidCidr:
		return keyBy(pick(text, inetText, inetBinary), func(dst []byte, v inet) []byte {
			return append(append(dst, byte(v.family), byte(v.bits)), v.addr...)
		}), nil
	case oidTime:
		return keyBy(pick(text, timeText, intBinary(8)), binary.AppendVarint), nil
	case oidTimetz:
		return keyBy(pick(text, timetzText, timetzBinary), func(dst []byte, t timetz) []byte {
			return binary.AppendVarint(binary.AppendVarint(dst, t.utc), t.zone)
		}), nil
	case oidJsonb:
		return func(dst, v []byte) ([]byte, bool) {
			k, ok := jsonbKey(v, format)
			return appendBytesKey(dst, k), ok
		}, nil
	}
	if elem, ok := arrayElements[oid]; ok && !collatable(elem) && elem != oidBytea {
		// One-dimensional arrays from 1, as comparator takes them: the
		// elements' keys, each marked NULL or not, then their count.
		elemKey, err := distinctKey(use, elem, format, env)
		if err != nil {
			return nil, err
		}
		return func(dst, v []byte) ([]byte, bool) {
			if multiDimensional(v, format) || format == 0 && bytes.HasPrefix(v, []byte("[")) ||
				format == 1 && len(v) >= 20 && binary.BigEndian.Uint32(v[16:]) != 1 {
				return dst, false
			}
			a, ok := splitArray(v, format)
			if !ok {
				return dst, false
			}
			for _, e := range a.elems {
				if e == nil {
					dst = append(dst, 0)
					continue
				}
				if dst, ok = elemKey(append(dst, 1), e); !ok {
					return dst, false
				}
			}
			return binary.AppendUvarint(append(dst, 2), uint64(len(a.elems))), true
		}, nil
	}
	return nil, Unsupported("%s of type %s across shards is not supported", use, typeName(oid))
}

// keyBy appends what put makes of what read makes of a value.
func keyBy[T any](read func([]byte) (T, bool), put func([]byte, T) []byte) keyFunc {
	return func(dst, v []byte) ([]byte, bool) {
		x, ok := read(v)
		if !ok {
			return dst, false
		}
		return put(dst, x), true
	}
}

// appendFloatKey appends a float's bits, with -0 as 0 and every NaN as one:
// Postgres's float = holds between them.
func appendFloatKey(dst []byte, f float64) []byte {
	switch {
	case math.IsNaN(f):
		f = math.NaN()
	case f == 0:
		f = 0
	}
	return binary.BigEndian.AppendUint64(dst, math.Float64bits(f))
}

// appendBytesKey appends b after its length.
func appendBytesKey(dst, b []byte) []byte {
	return append(binary.AppendUvarint(dst, uint64(len(b))), b...)
}

// appendSpanKey appends an interval's span, which Postgres's interval =
// compares.
func appendSpanKey(dst []byte, s int128) []byte {
	return binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint64(dst, uint64(s.hi)), s.lo)
}

// appendDecimalKey appends a numeric by its value, whatever its scale:
// the kind, then for a nonzero finite value its sign, and its digits
// without trailing zeros and their exponent.
func appendDecimalKey(dst []byte, x decimal) []byte {
	dst = append(dst, byte(x.kind))
	if x.kind != numericFinite {
		return dst
	}
	all := x.d.Coeff.Append(nil, 10)
	digits := bytes.TrimRight(all, "0")
	if len(digits) == 0 {
		return append(dst, 0) // zero, of any scale
	}
	sign := byte(1)
	if x.d.Negative {
		sign = 2
	}
	dst = binary.AppendVarint(append(dst, sign), int64(x.d.Exponent)+int64(len(all)-len(digits)))
	return appendBytesKey(dst, digits)
}

func decimalTextBytes(b []byte) (decimal, bool) { return decimalText(string(b)) }
