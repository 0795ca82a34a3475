package engine

import (
	"bytes"
	"encoding/binary"
	"slices"
	"strings"
)

// Ordered aggregates (array_agg, string_agg) across shards: each shard
// returns, per group, its own elements in the aggregate's order and an
// array of each ORDER BY key's values in the same order; the gateway
// merges the shards' elements by the keys into the one array or string
// Postgres would build. Without ORDER BY, the shards' elements follow one
// another, which is an order Postgres could give too.

// arrayElements are the element types of the array types whose values the
// gateway splits and builds, by array type.
var arrayElements = map[uint32]uint32{
	1000: oidBool, 1001: oidBytea, 1003: oidName, 1005: oidInt2, 1007: oidInt4, 1016: oidInt8,
	1009: oidText, 1014: oidBpchar, 1015: oidVarchar, 1021: oidFloat4, 1022: oidFloat8,
	1231: oidNumeric, 1182: oidDate, 1115: oidTimestamp, 1185: oidTimestamptz, 1187: oidInterval,
	2951: oidUUID, 3807: oidJsonb, 1028: oidOID,
}

// arrayValue is one array, split into its elements (nil for NULL), each
// as the array's format writes it: in text, the element's own text, with
// raw its token as array_out quoted it; in binary, the element's bytes.
type arrayValue struct {
	elems [][]byte
	raw   [][]byte // text only
	oid   uint32   // element type, binary only
}

// splitArray reads a one-dimensional array in text or binary format.
func splitArray(v []byte, format int16) (arrayValue, bool) {
	if format == 1 {
		return splitBinaryArray(v)
	}
	var a arrayValue
	if len(v) < 2 || v[0] != '{' || v[len(v)-1] != '}' {
		return a, false
	}
	body := v[1 : len(v)-1]
	for i := 0; i < len(body); {
		start := i
		var elem []byte
		switch body[i] {
		case '{':
			return a, false // more than one dimension
		case '"':
			elem = []byte{}
			for i++; i < len(body) && body[i] != '"'; i++ {
				if body[i] == '\\' {
					i++
				}
				if i < len(body) {
					elem = append(elem, body[i])
				}
			}
			if i >= len(body) {
				return a, false
			}
			i++
		default:
			for i < len(body) && body[i] != ',' {
				i++
			}
			elem = body[start:i]
			if strings.EqualFold(string(elem), "NULL") {
				elem = nil
			}
		}
		a.elems, a.raw = append(a.elems, elem), append(a.raw, body[start:i])
		if i < len(body) {
			if body[i] != ',' {
				return a, false
			}
			i++
		}
	}
	return a, true
}

// multiDimensional reports whether v is an array of more than one
// dimension (array_agg of arrays).
func multiDimensional(v []byte, format int16) bool {
	if format == 1 {
		return len(v) >= 4 && binary.BigEndian.Uint32(v) > 1
	}
	return bytes.HasPrefix(v, []byte("{{"))
}

// splitBinaryArray reads array_send's format: dimensions, a has-nulls
// flag, the element type, each dimension's size and lower bound, then
// each element's length (-1 for NULL) and bytes.
func splitBinaryArray(v []byte) (arrayValue, bool) {
	var a arrayValue
	if len(v) < 12 {
		return a, false
	}
	ndim := binary.BigEndian.Uint32(v)
	a.oid = binary.BigEndian.Uint32(v[8:])
	if ndim == 0 {
		return a, len(v) == 12
	}
	if ndim != 1 || len(v) < 20 {
		return a, false
	}
	n := int(binary.BigEndian.Uint32(v[12:]))
	rest := v[20:]
	for range n {
		if len(rest) < 4 {
			return a, false
		}
		size := int32(binary.BigEndian.Uint32(rest))
		rest = rest[4:]
		if size < 0 {
			a.elems = append(a.elems, nil)
			continue
		}
		if int(size) > len(rest) {
			return a, false
		}
		a.elems = append(a.elems, rest[:size:size])
		rest = rest[size:]
	}
	return a, len(rest) == 0
}

// orderedPart is one shard's partial of an ordered aggregate in a group:
// its elements and, for each element, its ORDER BY keys.
type orderedPart struct {
	value arrayValue
	keys  [][][]byte // keys[k][i]: key k of element i
}

// orderedElement is one element with its keys, for the merge.
type orderedElement struct {
	elem, raw []byte
	keys      [][]byte
}

// mergeOrdered merges the parts' elements by keys (each part is sorted
// already; equal keys keep the parts' order).
func mergeOrdered(parts []orderedPart, keys []SortKey, cmps []compareFunc) ([]orderedElement, error) {
	var all []orderedElement
	for _, p := range parts {
		for i, e := range p.value.elems {
			oe := orderedElement{elem: e}
			if p.value.raw != nil {
				oe.raw = p.value.raw[i]
			}
			for k := range keys {
				oe.keys = append(oe.keys, p.keys[k][i])
			}
			all = append(all, oe)
		}
	}
	var err error
	slices.SortStableFunc(all, func(a, b orderedElement) int {
		c, e := compareKeys(keys, cmps, func(i int) []byte { return a.keys[i] }, func(i int) []byte { return b.keys[i] })
		if e != nil && err == nil {
			err = e
		}
		return c
	})
	return all, err
}

// buildArray writes merged elements as one array in format, of element
// type oid (binary).
func buildArray(elems []orderedElement, format int16, oid uint32) []byte {
	if format == 0 {
		var b bytes.Buffer
		b.WriteByte('{')
		for i, e := range elems {
			if i > 0 {
				b.WriteByte(',')
			}
			b.Write(e.raw)
		}
		b.WriteByte('}')
		return b.Bytes()
	}
	hasNull := uint32(0)
	for _, e := range elems {
		if e.elem == nil {
			hasNull = 1
		}
	}
	out := binary.BigEndian.AppendUint32(nil, 1)
	out = binary.BigEndian.AppendUint32(out, hasNull)
	out = binary.BigEndian.AppendUint32(out, oid)
	out = binary.BigEndian.AppendUint32(out, uint32(len(elems)))
	out = binary.BigEndian.AppendUint32(out, 1)
	for _, e := range elems {
		if e.elem == nil {
			out = binary.BigEndian.AppendUint32(out, ^uint32(0))
			continue
		}
		out = binary.BigEndian.AppendUint32(out, uint32(len(e.elem)))
		out = append(out, e.elem...)
	}
	return out
}

// joinStrings writes merged elements as string_agg does: the non-NULL
// ones, the delimiter (none for NULL) between them; ok is false when
// there are none (NULL).
func joinStrings(elems []orderedElement, delimiter *string) (out []byte, ok bool) {
	for _, e := range elems {
		if e.elem == nil {
			continue
		}
		if ok && delimiter != nil {
			out = append(out, *delimiter...)
		}
		out, ok = append(out, e.elem...), true
	}
	if ok && out == nil {
		out = []byte{}
	}
	return out, ok
}
