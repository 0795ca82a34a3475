package engine

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"math"
	"math/bits"
	"net/netip"
	"strconv"
	"strings"

	"github.com/cockroachdb/apd/v3"
)

// Settings gives the session's settings that change how values print.
type Settings interface {
	// Setting returns the session's value of a setting by its Postgres name
	// (case-insensitive: "DateStyle", "client_encoding", "extra_float_digits",
	// "IntervalStyle", "bytea_output"), "" when the session did not set it
	// (the server's default applies).
	Setting(name string) string
}

// compareFunc orders two non-NULL values of one column: <0, 0, >0. It fails
// only on a value it cannot read (an *Error with code XX000 naming the value).
type compareFunc func(a, b []byte) (int, error)

// Type OIDs, as in Postgres's pg_type.dat.
const (
	oidBool        = 16
	oidBytea       = 17
	oidName        = 19
	oidInt8        = 20
	oidInt2        = 21
	oidInt4        = 23
	oidText        = 25
	oidOID         = 26
	oidFloat4      = 700
	oidFloat8      = 701
	oidBpchar      = 1042
	oidVarchar     = 1043
	oidDate        = 1082
	oidTimestamp   = 1114
	oidTimestamptz = 1184
	oidInterval    = 1186
	oidNumeric     = 1700
	oidUUID        = 2950
	oidJsonb       = 3802
	oidTime        = 1083
	oidTimetz      = 1266
	oidInet        = 869
	oidCidr        = 650
)

// typeNames names the types a refusal is likely to be about.
var typeNames = map[uint32]string{
	oidBool: "boolean", oidBytea: "bytea", oidName: "name", oidInt8: "bigint",
	oidInt2: "smallint", oidInt4: "integer", oidText: "text", oidOID: "oid",
	oidFloat4: "real", oidFloat8: "double precision", oidBpchar: "character",
	oidVarchar: "character varying", oidDate: "date",
	oidTimestamp: "timestamp without time zone", oidTimestamptz: "timestamp with time zone",
	oidInterval: "interval", oidNumeric: "numeric", oidUUID: "uuid",
	18: `"char"`, 114: "json", 142: "xml", 650: "cidr", 705: "unknown",
	790: "money", 829: "macaddr", 869: "inet", oidTime: "time without time zone",
	oidTimetz: "time with time zone", 1560: "bit", 1562: "bit varying",
	3614: "tsvector", 3802: "jsonb", 1000: "boolean[]", 1005: "smallint[]",
	1007: "integer[]", 1009: "text[]", 1015: "character varying[]",
	1016: "bigint[]", 1231: "numeric[]", 2951: "uuid[]", 3807: "jsonb[]",
}

func typeName(oid uint32) string {
	if n, ok := typeNames[oid]; ok {
		return n
	}
	return fmt.Sprintf("with OID %d", oid)
}

// collatable reports whether values of type oid sort by a collation
// (text, varchar, bpchar; jsonb's strings by the database's), so the merge
// must check that collation is one that orders by bytes (C, POSIX,
// C.UTF-8, ...).
func collatable(oid uint32) bool {
	return oid == oidText || oid == oidVarchar || oid == oidBpchar || oid == oidJsonb
}

// comparator returns the compareFunc for values of type oid sent in format
// (0 text, 1 binary), under settings env (never nil), for the use column
// describes ("ORDER BY name", "min(x)"). When the gateway cannot reproduce
// Postgres's order for the type or these settings it returns an *Error
// with code 0A000 whose message names the use and the type (e.g. `ORDER BY
// tags of type jsonb across shards is not supported`) — never a comparator
// that might order differently. A format code other than
// 0 or 1 is a broken shard: XX000.
func comparator(column string, oid uint32, format int16, env Settings) (compareFunc, error) {
	if format != 0 && format != 1 {
		return nil, internal("column \"%s\" arrived in unknown format %d", column, format)
	}
	text := format == 0
	typ := typeName(oid)
	refuseUnder := func(setting, value, hint string) (compareFunc, error) {
		e := Unsupported("%s of type %s across shards is not supported with %s %q", column, typ, setting, value)
		e.Hint = hint
		return nil, e
	}
	const binaryHint = "Results in binary format do not depend on it."

	switch oid {
	case oidBool:
		return orderBy(column, typ, pick(text, boolText, boolBinary), cmp.Compare[int64]), nil
	case oidInt2:
		return orderBy(column, typ, pick(text, intText(16), intBinary(2)), cmp.Compare[int64]), nil
	case oidInt4:
		return orderBy(column, typ, pick(text, intText(32), intBinary(4)), cmp.Compare[int64]), nil
	case oidInt8:
		return orderBy(column, typ, pick(text, intText(64), intBinary(8)), cmp.Compare[int64]), nil
	case oidOID:
		return orderBy(column, typ, pick(text, uint32Text, uint32Binary), cmp.Compare[int64]), nil

	case oidFloat4, oidFloat8:
		if text {
			if !exactFloatText(env) {
				return refuseUnder("extra_float_digits", env.Setting("extra_float_digits"), "Set extra_float_digits to 1 or more. "+binaryHint)
			}
		}
		if oid == oidFloat4 {
			return orderBy(column, typ, pick(text, floatText(32), float4Binary), floatOrder), nil
		}
		return orderBy(column, typ, pick(text, floatText(64), float8Binary), floatOrder), nil

	case oidNumeric:
		return orderBy(column, typ, pick(text, numericText, numericBinary), numericOrder), nil

	case oidText, oidVarchar, oidName, oidBpchar:
		// Text is converted to the client's encoding in both formats, and a
		// conversion need not keep the server's byte order.
		if v := env.Setting("client_encoding"); !byteOrderedEncoding(v) {
			return refuseUnder("client_encoding", v, "Set client_encoding to UTF8.")
		}
		if oid == oidBpchar {
			// Trailing spaces of character(n) are insignificant.
			return func(a, b []byte) (int, error) {
				return bytes.Compare(bytes.TrimRight(a, " "), bytes.TrimRight(b, " ")), nil
			}, nil
		}
		return func(a, b []byte) (int, error) { return bytes.Compare(a, b), nil }, nil

	case oidJsonb:
		// Its strings are text, converted to the client's encoding.
		if v := env.Setting("client_encoding"); !byteOrderedEncoding(v) {
			return refuseUnder("client_encoding", v, "Set client_encoding to UTF8.")
		}
		return jsonbOrder(format), nil

	case oidBytea:
		return orderBy(column, typ, pick(text, byteaText, byteaBinary), bytes.Compare), nil
	case oidUUID:
		return orderBy(column, typ, pick(text, uuidText, uuidBinary), bytes.Compare), nil

	case oidDate, oidTimestamp, oidTimestamptz:
		if text {
			if v := env.Setting("DateStyle"); !isoDateStyle(v) {
				return refuseUnder("DateStyle", v, "Set DateStyle to ISO. "+binaryHint)
			}
		}
		switch oid {
		case oidDate:
			return orderBy(column, typ, pick(text, dateText, intBinary(4)), cmp.Compare[int64]), nil
		case oidTimestamp:
			return orderBy(column, typ, pick(text, timestampText(false), intBinary(8)), cmp.Compare[int64]), nil
		}
		return orderBy(column, typ, pick(text, timestampText(true), intBinary(8)), cmp.Compare[int64]), nil

	case oidInet, oidCidr:
		return orderBy(column, typ, pick(text, inetText, inetBinary), inetOrder), nil

	case oidTime:
		// Times print alike in every DateStyle.
		return orderBy(column, typ, pick(text, timeText, intBinary(8)), cmp.Compare[int64]), nil
	case oidTimetz:
		return orderBy(column, typ, pick(text, timetzText, timetzBinary), timetzOrder), nil

	case oidInterval:
		if text {
			if v := env.Setting("IntervalStyle"); v != "" && !strings.EqualFold(strings.TrimSpace(v), "postgres") {
				return refuseUnder("IntervalStyle", v, "Set IntervalStyle to postgres. "+binaryHint)
			}
		}
		return orderBy(column, typ, pick(text, intervalText, intervalBinary), int128.compare), nil
	}
	if elem, ok := arrayElements[oid]; ok && !collatable(elem) && elem != oidBytea {
		cmpElem, err := comparator(column, elem, format, env)
		if err != nil {
			return nil, err
		}
		return arrayOrder(column, typ, format, cmpElem), nil
	}
	return nil, Unsupported("%s of type %s across shards is not supported", column, typ)
}

// arrayOrder compares one-dimensional arrays as array_cmp does: element
// by element (NULL after any value), then the shorter first. Arrays of
// more dimensions or another lower bound than 1 are refused.
func arrayOrder(column, typ string, format int16, elem compareFunc) compareFunc {
	read := func(v []byte) (arrayValue, error) {
		if multiDimensional(v, format) || format == 0 && bytes.HasPrefix(v, []byte("[")) ||
			format == 1 && len(v) >= 20 && binary.BigEndian.Uint32(v[16:]) != 1 {
			return arrayValue{}, Unsupported("%s of type %s across shards is supported only for one-dimensional arrays from 1", column, typ)
		}
		a, ok := splitArray(v, format)
		if !ok {
			return a, unreadable(column, typ, v)
		}
		return a, nil
	}
	return func(x, y []byte) (int, error) {
		a, err := read(x)
		if err != nil {
			return 0, err
		}
		b, err := read(y)
		if err != nil {
			return 0, err
		}
		for i := range min(len(a.elems), len(b.elems)) {
			ea, eb := a.elems[i], b.elems[i]
			switch {
			case ea == nil && eb == nil:
				continue
			case ea == nil:
				return 1, nil
			case eb == nil:
				return -1, nil
			}
			if c, err := elem(ea, eb); err != nil || c != 0 {
				return c, err
			}
		}
		return cmp.Compare(len(a.elems), len(b.elems)), nil
	}
}

// exactFloatText reports whether floats print exactly in the session: below
// extra_float_digits 1, Postgres rounds them, so distinct values can print
// alike.
func exactFloatText(env Settings) bool {
	v := env.Setting("extra_float_digits")
	if v == "" {
		return true
	}
	n, err := strconv.Atoi(strings.TrimSpace(v))
	return err == nil && n >= 1
}

// orderBy compares values by what read makes of them.
func orderBy[T any](column, typ string, read func([]byte) (T, bool), order func(T, T) int) compareFunc {
	return func(a, b []byte) (int, error) {
		x, ok := read(a)
		if !ok {
			return 0, unreadable(column, typ, a)
		}
		y, ok := read(b)
		if !ok {
			return 0, unreadable(column, typ, b)
		}
		return order(x, y), nil
	}
}

func pick[T any](text bool, fromText, fromBinary func([]byte) (T, bool)) func([]byte) (T, bool) {
	if text {
		return fromText
	}
	return fromBinary
}

func unreadable(column, typ string, v []byte) *Error {
	const limit = 64 // a value can be large; its start is enough to find it
	s := string(v)
	if len(s) > limit {
		s = s[:limit] + "..."
	}
	return internal("column \"%s\": cannot read %q as %s", column, s, typ)
}

func byteOrderedEncoding(enc string) bool {
	switch strings.ToUpper(strings.TrimSpace(enc)) {
	case "", "UTF8", "UTF-8", "SQL_ASCII":
		return true
	}
	return false
}

// isoDateStyle reports whether dates print in ISO style: "ISO, MDY" and
// "ISO, DMY" print alike.
func isoDateStyle(style string) bool {
	style = strings.TrimSpace(style)
	return style == "" || len(style) >= 3 && strings.EqualFold(style[:3], "ISO")
}

func boolText(b []byte) (int64, bool) {
	switch string(b) {
	case "f":
		return 0, true
	case "t":
		return 1, true
	}
	return 0, false
}

func boolBinary(b []byte) (int64, bool) {
	if len(b) != 1 || b[0] > 1 {
		return 0, false
	}
	return int64(b[0]), true
}

func intText(bitSize int) func([]byte) (int64, bool) {
	return func(b []byte) (int64, bool) {
		n, err := strconv.ParseInt(string(b), 10, bitSize)
		return n, err == nil
	}
}

// intBinary reads a big-endian signed integer of width bytes.
func intBinary(width int) func([]byte) (int64, bool) {
	return func(b []byte) (int64, bool) {
		if len(b) != width {
			return 0, false
		}
		switch width {
		case 2:
			return int64(int16(binary.BigEndian.Uint16(b))), true
		case 4:
			return int64(int32(binary.BigEndian.Uint32(b))), true
		}
		return int64(binary.BigEndian.Uint64(b)), true
	}
}

func uint32Text(b []byte) (int64, bool) {
	n, err := strconv.ParseUint(string(b), 10, 32)
	return int64(n), err == nil
}

func uint32Binary(b []byte) (int64, bool) {
	if len(b) != 4 {
		return 0, false
	}
	return int64(binary.BigEndian.Uint32(b)), true
}

func floatText(bitSize int) func([]byte) (float64, bool) {
	return func(b []byte) (float64, bool) {
		f, err := strconv.ParseFloat(string(b), bitSize)
		return f, err == nil
	}
}

func float4Binary(b []byte) (float64, bool) {
	if len(b) != 4 {
		return 0, false
	}
	return float64(math.Float32frombits(binary.BigEndian.Uint32(b))), true
}

func float8Binary(b []byte) (float64, bool) {
	if len(b) != 8 {
		return 0, false
	}
	return math.Float64frombits(binary.BigEndian.Uint64(b)), true
}

// floatOrder is Postgres's float order: NaN equals itself and sorts above
// everything, -0 equals 0.
func floatOrder(x, y float64) int {
	switch xn, yn := math.IsNaN(x), math.IsNaN(y); {
	case xn && yn:
		return 0
	case xn:
		return 1
	case yn:
		return -1
	}
	return cmp.Compare(x, y)
}

// numeric is a numeric value: kind orders -Infinity, finite values,
// Infinity and NaN as Postgres does; d is set for finite values.
type numeric struct {
	kind int
	d    *apd.Decimal
}

const (
	numericNegInf = iota
	numericFinite
	numericPosInf
	numericNaN
)

func numericOrder(x, y numeric) int {
	if c := cmp.Compare(x.kind, y.kind); c != 0 || x.kind != numericFinite {
		return c
	}
	return x.d.Cmp(y.d)
}

// numericText reads numeric_out's output. It builds the decimal itself
// rather than with apd's parser, which is looser than Postgres's output
// and caps exponents below Postgres's 131072 digits.
func numericText(b []byte) (numeric, bool) {
	switch s := string(b); s {
	case "NaN":
		return numeric{kind: numericNaN}, true
	case "Infinity":
		return numeric{kind: numericPosInf}, true
	case "-Infinity":
		return numeric{kind: numericNegInf}, true
	}
	s, neg := strings.CutPrefix(string(b), "-")
	whole, frac, dot := strings.Cut(s, ".")
	if !allDigits(whole) || dot && !allDigits(frac) {
		return numeric{}, false
	}
	d := &apd.Decimal{Negative: neg, Exponent: -int32(len(frac))}
	if _, ok := d.Coeff.SetString(whole+frac, 10); !ok {
		return numeric{}, false
	}
	return numeric{kind: numericFinite, d: d}, true
}

// numericBinary reads numeric_send's output: ndigits, weight, sign, dscale,
// then ndigits base-10000 digits, the first of weight 10000^weight.
func numericBinary(b []byte) (numeric, bool) {
	if len(b) < 8 {
		return numeric{}, false
	}
	ndigits := int(int16(binary.BigEndian.Uint16(b)))
	weight := int32(int16(binary.BigEndian.Uint16(b[2:])))
	sign := binary.BigEndian.Uint16(b[4:])
	if ndigits < 0 || len(b) != 8+2*ndigits {
		return numeric{}, false
	}
	d := new(apd.Decimal)
	switch sign {
	case 0xC000:
		return numeric{kind: numericNaN}, true
	case 0xD000:
		return numeric{kind: numericPosInf}, true
	case 0xF000:
		return numeric{kind: numericNegInf}, true
	case 0x4000:
		d.Negative = true
	case 0x0000:
	default:
		return numeric{}, false
	}
	if ndigits == 0 {
		return numeric{kind: numericFinite, d: d}, true
	}
	coeff := make([]byte, 0, 4*ndigits)
	for i := range ndigits {
		digit := binary.BigEndian.Uint16(b[8+2*i:])
		if digit > 9999 {
			return numeric{}, false
		}
		coeff = append(coeff, '0'+byte(digit/1000), '0'+byte(digit/100%10), '0'+byte(digit/10%10), '0'+byte(digit%10))
	}
	d.Coeff.SetString(string(coeff), 10)
	d.Exponent = 4 * (weight - int32(ndigits) + 1)
	return numeric{kind: numericFinite, d: d}, true
}

func allDigits(s string) bool {
	for i := range len(s) {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

func byteaBinary(b []byte) ([]byte, bool) { return b, true }

// byteaText reads either bytea_output: hex ("\x" then pairs) or escape
// (backslash doubled, other unprintable bytes as "\ooo"). Escape output
// never starts with `\x`, so the prefix tells them apart.
func byteaText(b []byte) ([]byte, bool) {
	if h, ok := bytes.CutPrefix(b, []byte(`\x`)); ok {
		out := make([]byte, hex.DecodedLen(len(h)))
		_, err := hex.Decode(out, h)
		return out, err == nil
	}
	out := make([]byte, 0, len(b))
	for i := 0; i < len(b); i++ {
		switch {
		case b[i] != '\\':
			out = append(out, b[i])
		case i+1 < len(b) && b[i+1] == '\\':
			out = append(out, '\\')
			i++
		case i+3 < len(b) && isOctal(b[i+1]) && b[i+1] <= '3' && isOctal(b[i+2]) && isOctal(b[i+3]):
			out = append(out, (b[i+1]-'0')<<6|(b[i+2]-'0')<<3|(b[i+3]-'0'))
			i += 3
		default:
			return nil, false
		}
	}
	return out, true
}

func isOctal(c byte) bool { return c >= '0' && c <= '7' }

func uuidBinary(b []byte) ([]byte, bool) { return b, len(b) == 16 }

func uuidText(b []byte) ([]byte, bool) {
	if len(b) != 36 || b[8] != '-' || b[13] != '-' || b[18] != '-' || b[23] != '-' {
		return nil, false
	}
	h := make([]byte, 0, 32)
	h = append(append(append(append(append(h, b[:8]...), b[9:13]...), b[14:18]...), b[19:23]...), b[24:]...)
	out := make([]byte, 16)
	_, err := hex.Decode(out, h)
	return out, err == nil
}

const (
	usPerSecond = int64(1e6)
	usPerDay    = 86400 * usPerSecond
	// maxTimestampDays keeps a finite timestamp, with a time of day and a
	// zone offset, inside int64 microseconds and off its infinity
	// sentinels. Postgres's own range (to 294276 AD) is well inside.
	maxTimestampDays = math.MaxInt64/usPerDay - 2
)

// dateText reads an ISO date as days since 2000-01-01, infinities as the
// sentinels date_send uses.
func dateText(b []byte) (int64, bool) {
	switch s := string(b); s {
	case "infinity":
		return math.MaxInt32, true
	case "-infinity":
		return math.MinInt32, true
	}
	s, bc := strings.CutSuffix(string(b), " BC")
	days, ok := civilDays(s, bc)
	return days, ok && days > math.MinInt32 && days < math.MaxInt32
}

// timestampText reads an ISO timestamp (with a zone offset if zoned) as
// microseconds since 2000-01-01 UTC, infinities as the sentinels
// timestamp_send uses.
func timestampText(zoned bool) func([]byte) (int64, bool) {
	return func(b []byte) (int64, bool) {
		switch s := string(b); s {
		case "infinity":
			return math.MaxInt64, true
		case "-infinity":
			return math.MinInt64, true
		}
		// ISO output is "date time[offset][ BC]".
		s, bc := strings.CutSuffix(string(b), " BC")
		date, clock, ok := strings.Cut(s, " ")
		if !ok {
			return 0, false
		}
		days, ok := civilDays(date, bc)
		if !ok || days > maxTimestampDays || days < -maxTimestampDays {
			return 0, false
		}
		var offset int64
		if zoned {
			i := strings.LastIndexAny(clock, "+-")
			if i < 0 {
				return 0, false
			}
			if offset, ok = zoneOffset(clock[i:]); !ok {
				return 0, false
			}
			clock = clock[:i]
		}
		hours, rest, ok := readClock(clock)
		if !ok || hours > 23 || strings.IndexByte(clock, ':') != 2 {
			return 0, false
		}
		return days*usPerDay + int64(hours)*3600*usPerSecond + int64(rest) - offset, true
	}
}

// inet is an inet or cidr value as network_cmp orders it: family (IPv4
// first), then the address's first min(bits) bits, then the netmask
// length, then the whole address.
type inet struct {
	family int // 4 or 6
	bits   int
	addr   []byte
}

func inetOrder(x, y inet) int {
	if x.family != y.family {
		return cmp.Compare(x.family, y.family)
	}
	if c := compareBits(x.addr, y.addr, min(x.bits, y.bits)); c != 0 {
		return c
	}
	if x.bits != y.bits {
		return cmp.Compare(x.bits, y.bits)
	}
	return bytes.Compare(x.addr, y.addr)
}

// compareBits compares the first n bits of two addresses.
func compareBits(a, b []byte, n int) int {
	whole := n / 8
	if c := bytes.Compare(a[:whole], b[:whole]); c != 0 || n%8 == 0 {
		return c
	}
	mask := byte(0xff << (8 - n%8))
	return cmp.Compare(a[whole]&mask, b[whole]&mask)
}

// inetText reads inet_out's "address[/bits]" (bits omitted for a host).
func inetText(b []byte) (inet, bool) {
	s, bits, hasBits := strings.Cut(string(b), "/")
	addr, err := netip.ParseAddr(s)
	if err != nil || addr.Zone() != "" {
		return inet{}, false
	}
	v := inet{family: 4, bits: 32, addr: addr.AsSlice()}
	if addr.Is6() {
		v.family, v.bits = 6, 128
	}
	if hasBits {
		n, err := strconv.Atoi(bits)
		if err != nil || n < 0 || n > v.bits {
			return inet{}, false
		}
		v.bits = n
	}
	return v, true
}

// inetBinary reads inet_send's family (2 for IPv4, 3 for IPv6), bits,
// is-cidr flag, address length and address.
func inetBinary(b []byte) (inet, bool) {
	if len(b) < 4 || int(b[3]) != len(b)-4 {
		return inet{}, false
	}
	v := inet{bits: int(b[1]), addr: b[4:]}
	switch {
	case b[0] == 2 && len(v.addr) == 4:
		v.family = 4
	case b[0] == 3 && len(v.addr) == 16:
		v.family = 6
	default:
		return inet{}, false
	}
	return v, v.bits <= len(v.addr)*8
}

// timeText reads a time of day, "HH:MM:SS[.ffffff]" up to 24:00:00, as
// microseconds since midnight.
func timeText(b []byte) (int64, bool) {
	s := string(b)
	hours, rest, ok := readClock(s)
	if !ok || strings.IndexByte(s, ':') != 2 || hours > 24 || hours == 24 && rest > 0 {
		return 0, false
	}
	return int64(hours)*3600*usPerSecond + int64(rest), true
}

// timetz is a time with time zone as Postgres orders it: by the UTC time
// of day, then by the zone (seconds west of UTC).
type timetz struct {
	utc  int64
	zone int64
}

func timetzOrder(x, y timetz) int {
	if c := cmp.Compare(x.utc, y.utc); c != 0 {
		return c
	}
	return cmp.Compare(x.zone, y.zone)
}

// timetzText reads "HH:MM:SS[.ffffff]+HH[:MM[:SS]]".
func timetzText(b []byte) (timetz, bool) {
	s := string(b)
	i := strings.LastIndexAny(s, "+-")
	if i < 0 {
		return timetz{}, false
	}
	offset, ok := zoneOffset(s[i:])
	if !ok {
		return timetz{}, false
	}
	t, ok := timeText([]byte(s[:i]))
	return timetz{utc: t - offset, zone: -offset / usPerSecond}, ok
}

// timetzBinary reads timetz_send's microseconds and zone (seconds west).
func timetzBinary(b []byte) (timetz, bool) {
	if len(b) != 12 {
		return timetz{}, false
	}
	t, zone := int64(binary.BigEndian.Uint64(b)), int64(int32(binary.BigEndian.Uint32(b[8:])))
	return timetz{utc: t + zone*usPerSecond, zone: zone}, true
}

// civilDays reads "Y-MM-DD" (year 1 or later, BC if bc) as days since
// 2000-01-01 in the proleptic Gregorian calendar Postgres uses.
func civilDays(s string, bc bool) (int64, bool) {
	ys, md, _ := strings.Cut(s, "-")
	// Nine digits keep the arithmetic in int64 and cover Postgres's range.
	if len(ys) > 9 || len(md) != 5 || md[2] != '-' {
		return 0, false
	}
	y, ok1 := readUint(ys)
	m, ok2 := readUint(md[:2])
	d, ok3 := readUint(md[3:])
	if !ok1 || !ok2 || !ok3 || y < 1 || m < 1 || m > 12 || d < 1 {
		return 0, false
	}
	year := int64(y)
	if bc {
		year = 1 - year // 1 BC is year 0
	}
	if d > daysInMonth(year, int(m)) {
		return 0, false
	}
	return daysFromCivil(year, int64(m), int64(d)) - daysFromCivil(2000, 1, 1), true
}

func daysInMonth(year int64, month int) uint64 {
	switch month {
	case 2:
		if year%4 == 0 && (year%100 != 0 || year%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}

// daysFromCivil counts days from 1970-01-01 to an astronomical year, month
// and day (Howard Hinnant's algorithm).
func daysFromCivil(y, m, d int64) int64 {
	if m <= 2 {
		y--
	}
	era := y / 400
	if y < 0 && y%400 != 0 {
		era-- // floor division
	}
	yoe := y - era*400
	doy := (153*((m+9)%12)+2)/5 + d - 1
	doe := yoe*365 + yoe/4 - yoe/100 + doy
	return era*146097 + doe - 719468
}

// readClock reads "H:MM:SS[.ffffff]": the hours, and the rest in
// microseconds. Hours have any number of digits (an interval's can).
func readClock(s string) (hours, rest uint64, ok bool) {
	hs, s, _ := strings.Cut(s, ":")
	s, frac, dot := strings.Cut(s, ".")
	if len(hs) > 18 || len(s) != 5 || s[2] != ':' || dot && (len(frac) < 1 || len(frac) > 6) {
		return 0, 0, false
	}
	hours, ok1 := readUint(hs)
	m, ok2 := readUint(s[:2])
	sec, ok3 := readUint(s[3:])
	if !ok1 || !ok2 || !ok3 || m > 59 || sec > 59 {
		return 0, 0, false
	}
	rest = (m*60 + sec) * uint64(usPerSecond)
	if dot {
		f, ok := readUint(frac + "00000"[len(frac)-1:])
		if !ok {
			return 0, 0, false
		}
		rest += f
	}
	return hours, rest, true
}

// zoneOffset reads a UTC offset as timestamptz prints it: "+HH",
// "-HH:MM" or "+HH:MM:SS", in microseconds east of UTC. Postgres keeps
// offsets under 16 hours, which maxTimestampDays counts on.
func zoneOffset(s string) (int64, bool) {
	if len(s) != 3 && len(s) != 6 && len(s) != 9 {
		return 0, false
	}
	var secs int64
	for i, unit := range []int64{3600, 60, 1} {
		at := 1 + 3*i
		if at >= len(s) {
			break
		}
		if i > 0 && s[at-1] != ':' {
			return 0, false
		}
		n, ok := readUint(s[at : at+2])
		if !ok || i == 0 && n > 15 || i > 0 && n > 59 {
			return 0, false
		}
		secs += int64(n) * unit
	}
	if s[0] == '-' {
		secs = -secs
	}
	return secs * usPerSecond, true
}

// readUint reads 1 to 19 decimal digits, no sign.
func readUint(s string) (uint64, bool) {
	if !allDigits(s) || len(s) > 19 {
		return 0, false
	}
	n, err := strconv.ParseUint(s, 10, 64)
	return n, err == nil
}

// int128 is a signed 128-bit integer: Postgres compares intervals as one.
type int128 struct {
	hi int64
	lo uint64
}

func (x int128) compare(y int128) int {
	if c := cmp.Compare(x.hi, y.hi); c != 0 {
		return c
	}
	return cmp.Compare(x.lo, y.lo)
}

// intervalSpan is interval_cmp_value: a month counts 30 days, a day 24
// hours, summed without overflow. The infinities, stored as every field at
// its maximum or minimum, come out above or below every finite interval.
func intervalSpan(months, days int32, micros int64) int128 {
	d := int64(months)*30 + int64(days)
	hi, lo := bits.Mul64(uint64(max(d, -d)), uint64(usPerDay))
	if d < 0 {
		var borrow uint64
		lo, borrow = bits.Sub64(0, lo, 0)
		hi, _ = bits.Sub64(0, hi, borrow)
	}
	lo, carry := bits.Add64(lo, uint64(micros), 0)
	hi, _ = bits.Add64(hi, uint64(micros>>63), carry)
	return int128{int64(hi), lo}
}

// intervalBinary reads interval_send's output: microseconds, days, months.
func intervalBinary(b []byte) (int128, bool) {
	if len(b) != 16 {
		return int128{}, false
	}
	micros := int64(binary.BigEndian.Uint64(b))
	days := int32(binary.BigEndian.Uint32(b[8:]))
	months := int32(binary.BigEndian.Uint32(b[12:]))
	return intervalSpan(months, days, micros), true
}

// intervalText reads IntervalStyle postgres: "1 year 2 mons -3 days
// +04:05:06.5", each part optional, "00:00:00" for zero.
func intervalText(b []byte) (int128, bool) {
	switch string(b) {
	case "infinity":
		return intervalSpan(math.MaxInt32, math.MaxInt32, math.MaxInt64), true
	case "-infinity":
		return intervalSpan(math.MinInt32, math.MinInt32, math.MinInt64), true
	}
	parts := strings.Split(string(b), " ")
	var months, days, micros int64
	last := 0 // units come in order: year, mon, day
	for i := 0; i < len(parts); i += 2 {
		if i == len(parts)-1 {
			t, ok := intervalClock(parts[i])
			if !ok {
				return int128{}, false
			}
			micros = t
			break
		}
		n, err := strconv.ParseInt(parts[i], 10, 32)
		if err != nil {
			return int128{}, false
		}
		var unit int
		switch parts[i+1] {
		case "year", "years":
			unit, months = 1, n*12
		case "mon", "mons":
			unit, months = 2, months+n
		case "day", "days":
			unit, days = 3, n
		default:
			return int128{}, false
		}
		if unit <= last {
			return int128{}, false
		}
		last = unit
	}
	if months < math.MinInt32 || months > math.MaxInt32 {
		return int128{}, false
	}
	return intervalSpan(int32(months), int32(days), micros), true
}

// intervalClock reads an interval's time part, "[+-]H:MM:SS[.ffffff]".
func intervalClock(s string) (int64, bool) {
	neg := strings.HasPrefix(s, "-")
	if neg || strings.HasPrefix(s, "+") {
		s = s[1:]
	}
	hours, rest, ok := readClock(s)
	limit := uint64(math.MaxInt64)
	if neg {
		limit++ // math.MinInt64 has no positive counterpart
	}
	perHour := uint64(3600 * usPerSecond)
	if !ok || hours > limit/perHour || hours*perHour > limit-rest {
		return 0, false
	}
	us := hours*perHour + rest
	if neg {
		return int64(-us), true
	}
	return int64(us), true
}
