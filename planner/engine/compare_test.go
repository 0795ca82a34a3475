package engine

import (
	"encoding/binary"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// sessionSettings is a Settings from a map, looked up case-insensitively.
type sessionSettings map[string]string

func (s sessionSettings) Setting(name string) string {
	for k, v := range s {
		if strings.EqualFold(k, name) {
			return v
		}
	}
	return ""
}

func send16(n int16) string { return string(binary.BigEndian.AppendUint16(nil, uint16(n))) }
func send32(n int32) string { return string(binary.BigEndian.AppendUint32(nil, uint32(n))) }
func send64(n int64) string { return string(binary.BigEndian.AppendUint64(nil, uint64(n))) }

func sendF4(f float32) string { return string(binary.BigEndian.AppendUint32(nil, math.Float32bits(f))) }
func sendF8(f float64) string { return string(binary.BigEndian.AppendUint64(nil, math.Float64bits(f))) }

// sendInterval is interval_send: microseconds, days, months.
func sendInterval(micros int64, days, months int32) string {
	return send64(micros) + send32(days) + send32(months)
}

// sendNumericRaw is numeric_send's layout from its fields.
func sendNumericRaw(weight int16, sign uint16, dscale int16, digits ...int16) string {
	s := send16(int16(len(digits))) + send16(weight) + send16(int16(sign)) + send16(dscale)
	for _, d := range digits {
		s += send16(d)
	}
	return s
}

// sendNumeric encodes numeric_out's text as numeric_send would: base-10000
// digits aligned on the decimal point, leading and trailing zero digits
// stripped.
func sendNumeric(s string) string {
	switch s {
	case "NaN":
		return sendNumericRaw(0, 0xC000, 0)
	case "Infinity":
		return sendNumericRaw(0, 0xD000, 0)
	case "-Infinity":
		return sendNumericRaw(0, 0xF000, 0)
	}
	var sign uint16
	if rest, ok := strings.CutPrefix(s, "-"); ok {
		sign, s = 0x4000, rest
	}
	whole, frac, _ := strings.Cut(s, ".")
	dscale := int16(len(frac))
	whole = strings.Repeat("0", (4-len(whole)%4)%4) + whole
	frac += strings.Repeat("0", (4-len(frac)%4)%4)
	all := whole + frac
	weight := int16(len(whole)/4 - 1)
	var digits []int16
	for i := 0; i < len(all); i += 4 {
		d, _ := strconv.Atoi(all[i : i+4])
		digits = append(digits, int16(d))
	}
	for len(digits) > 0 && digits[0] == 0 {
		digits, weight = digits[1:], weight-1
	}
	for len(digits) > 0 && digits[len(digits)-1] == 0 {
		digits = digits[:len(digits)-1]
	}
	if len(digits) == 0 {
		weight, sign = 0, 0
	}
	return sendNumericRaw(weight, sign, dscale, digits...)
}

func signOf(n int) int {
	switch {
	case n < 0:
		return -1
	case n > 0:
		return 1
	}
	return 0
}

// mustCompare compares a and b both ways, failing unless the two answers
// agree.
func mustCompare(t *testing.T, f compareFunc, a, b string) int {
	t.Helper()
	ab, err := f([]byte(a), []byte(b))
	if err != nil {
		t.Fatalf("compare(%q, %q): %v", a, b, err)
	}
	ba, err := f([]byte(b), []byte(a))
	if err != nil {
		t.Fatalf("compare(%q, %q): %v", b, a, err)
	}
	if signOf(ab) != -signOf(ba) {
		t.Fatalf("compare(%q, %q) = %d but compare(%q, %q) = %d", a, b, ab, b, a, ba)
	}
	return signOf(ab)
}

const (
	textFormat   = int16(0)
	binaryFormat = int16(1)
)

func TestCompare(t *testing.T) {
	otherNaN := math.Float64frombits(0x7ff8000000000001) // another payload
	tests := []struct {
		oid    uint32
		format int16
		a, b   string
		want   int
	}{
		{oidBool, textFormat, "f", "t", -1},
		{oidBool, textFormat, "t", "t", 0},
		{oidBool, binaryFormat, "\x00", "\x01", -1},
		{oidBool, binaryFormat, "\x01", "\x01", 0},

		{oidInt2, textFormat, "-5", "3", -1},
		{oidInt2, textFormat, "10", "9", 1},
		{oidInt2, binaryFormat, send16(-5), send16(3), -1},
		{oidInt2, binaryFormat, send16(math.MaxInt16), send16(math.MinInt16), 1},
		{oidInt4, textFormat, "-2147483648", "2147483647", -1},
		{oidInt4, textFormat, "42", "42", 0},
		{oidInt4, binaryFormat, send32(-1), send32(1), -1},
		{oidInt4, binaryFormat, send32(7), send32(7), 0},
		{oidInt8, textFormat, "9223372036854775807", "-1", 1},
		{oidInt8, textFormat, "100", "99", 1},
		{oidInt8, binaryFormat, send64(math.MinInt64), send64(0), -1},
		{oidInt8, binaryFormat, send64(1 << 40), send64(1 << 40), 0},
		{oidOID, textFormat, "4294967295", "1", 1},
		{oidOID, binaryFormat, send32(-1), send32(1), 1}, // 4294967295, unsigned
		{oidOID, binaryFormat, send32(16384), send32(16384), 0},

		{oidFloat8, textFormat, "-0", "0", 0},
		{oidFloat8, textFormat, "NaN", "Infinity", 1},
		{oidFloat8, textFormat, "NaN", "NaN", 0},
		{oidFloat8, textFormat, "-Infinity", "-1.7976931348623157e+308", -1},
		{oidFloat8, textFormat, "Infinity", "1.7976931348623157e+308", 1},
		{oidFloat8, textFormat, "0.1", "0.10000000000000002", -1},
		{oidFloat8, textFormat, "1e-300", "0", 1},
		{oidFloat8, binaryFormat, sendF8(math.Copysign(0, -1)), sendF8(0), 0},
		{oidFloat8, binaryFormat, sendF8(math.NaN()), sendF8(otherNaN), 0},
		{oidFloat8, binaryFormat, sendF8(math.NaN()), sendF8(math.Inf(1)), 1},
		{oidFloat8, binaryFormat, sendF8(math.Inf(-1)), sendF8(-math.MaxFloat64), -1},
		{oidFloat8, binaryFormat, sendF8(-2.5), sendF8(1), -1},
		{oidFloat4, textFormat, "0.1", "0.10000001", -1},
		{oidFloat4, textFormat, "NaN", "3.4028235e+38", 1},
		{oidFloat4, textFormat, "-0", "0", 0},
		{oidFloat4, binaryFormat, sendF4(float32(math.Copysign(0, -1))), sendF4(0), 0},
		{oidFloat4, binaryFormat, sendF4(float32(math.NaN())), sendF4(float32(math.Inf(1))), 1},
		{oidFloat4, binaryFormat, sendF4(1.5), sendF4(1.25), 1},

		{oidTime, textFormat, "09:30:00", "09:30:00.000001", -1},
		{oidTime, textFormat, "24:00:00", "23:59:59.999999", 1},
		{oidTime, textFormat, "00:00:00", "00:00:00", 0},
		{oidTime, binaryFormat, send64(1), send64(0), 1},
		// timetz orders by UTC time, then by zone in seconds west of UTC:
		// 12:00+02 is 10:00 UTC, and sorts before 10:00+00.
		{oidTimetz, textFormat, "12:00:00+02", "11:00:00+00", -1},
		{oidTimetz, textFormat, "12:00:00+02", "10:00:00+00", -1},
		{oidTimetz, textFormat, "10:00:00-05:30", "15:30:00+00", 1},
		{oidTimetz, textFormat, "08:00:00.5+01", "08:00:00.5+01", 0},
		{oidTimetz, binaryFormat, send64(12*3600e6) + send32(-7200), send64(10*3600e6) + send32(0), -1},
		{oidTimetz, binaryFormat, send64(12*3600e6) + send32(-7200), send64(9*3600e6) + send32(0), 1},

		// One-dimensional arrays: element by element, NULL after values,
		// then the shorter first.
		{1007, textFormat, "{1,2,3}", "{1,2,4}", -1},
		{1007, textFormat, "{1,2}", "{1,2,0}", -1},
		{1007, textFormat, "{}", "{-5}", -1},
		{1007, textFormat, "{1,NULL}", "{1,99}", 1},
		{1007, textFormat, "{1,NULL}", "{1,NULL}", 0},
		{1231, textFormat, "{1.5,2}", "{1.50,2.0}", 0},
		{1007, binaryFormat, sendArray(oidInt4, send32(1), send32(2)), sendArray(oidInt4, send32(1), send32(3)), -1},
		{1007, binaryFormat, sendArray(oidInt4, send32(7)), sendArray(oidInt4, send32(7), ""), -1},

		// inet and cidr: IPv4 before IPv6, then the common prefix, then
		// the netmask, then the whole address.
		{oidInet, textFormat, "10.0.0.1", "::1", -1},
		{oidInet, textFormat, "10.0.0.0/8", "10.0.0.1", -1},
		{oidInet, textFormat, "10.0.0.5/8", "10.0.0.1", -1},
		{oidInet, textFormat, "10.0.0.1", "10.0.0.1/32", 0},
		{oidInet, textFormat, "10.1.0.0/16", "10.0.0.0/8", 1},
		{oidInet, textFormat, "192.168.0.1/24", "192.168.0.2/24", -1},
		{oidInet, textFormat, "::ffff:1.2.3.4", "1.2.3.4", 1},
		{oidCidr, textFormat, "2001:db8::/32", "2001:db8::/48", -1},
		{oidInet, binaryFormat, "\x02\x20\x00\x04\x0a\x00\x00\x01", "\x02\x08\x00\x04\x0a\x00\x00\x00", 1},

		{oidNumeric, textFormat, "12.5", "12.50", 0},
		{oidNumeric, textFormat, "NaN", "Infinity", 1},
		{oidNumeric, textFormat, "NaN", "NaN", 0},
		{oidNumeric, textFormat, "Infinity", "99999999999999999999999999999", 1},
		{oidNumeric, textFormat, "-Infinity", "-99999999999999999999999999999", -1},
		{oidNumeric, textFormat, "-Infinity", "Infinity", -1},
		{oidNumeric, textFormat, "10", "9.999", 1},
		{oidNumeric, textFormat, "-0.001", "0", -1},
		{oidNumeric, textFormat, "0", "0.000", 0},
		{oidNumeric, textFormat, "-12.5", "-12.49", -1},
		{oidNumeric, binaryFormat, sendNumericRaw(0, 0, 1, 12, 5000), sendNumericRaw(0, 0, 2, 12, 5000), 0},
		{oidNumeric, binaryFormat, sendNumericRaw(0, 0, 1, 12, 5000), sendNumericRaw(0, 0, 2, 12, 5000, 0), 0},
		{oidNumeric, binaryFormat, sendNumericRaw(0, 0x4000, 1, 12, 5000), sendNumericRaw(0, 0, 0), -1},
		{oidNumeric, binaryFormat, sendNumericRaw(2, 0, 0, 1), sendNumericRaw(1, 0, 0, 9999, 9999), 1}, // 1e8 > 99999999
		{oidNumeric, binaryFormat, sendNumericRaw(-1, 0, 4, 1), sendNumericRaw(-2, 0, 8, 9999), 1},     // 0.0001 > 0.00009999
		{oidNumeric, binaryFormat, sendNumericRaw(0, 0xC000, 0), sendNumericRaw(0, 0xD000, 0), 1},
		{oidNumeric, binaryFormat, sendNumericRaw(0, 0xC000, 0), sendNumericRaw(0, 0xC000, 0), 0},
		{oidNumeric, binaryFormat, sendNumericRaw(0, 0xF000, 0), sendNumericRaw(32767, 0x4000, 0, 9999), -1},
		{oidNumeric, binaryFormat, sendNumericRaw(0, 0xD000, 0), sendNumericRaw(32767, 0, 0, 9999), 1},
		{oidNumeric, binaryFormat, sendNumericRaw(0, 0x4000, 0), sendNumericRaw(0, 0, 0), 0}, // no negative zero

		{oidText, textFormat, "a", "b", -1},
		{oidText, textFormat, "ab", "a", 1},
		{oidText, textFormat, "B", "a", -1},
		{oidText, textFormat, "é", "z", 1},
		{oidText, textFormat, "", "", 0},
		{oidText, binaryFormat, "abc", "abd", -1},
		{oidVarchar, textFormat, "a ", "a", 1},
		{oidVarchar, binaryFormat, "x", "x", 0},
		{oidName, textFormat, "Zeta", "alpha", -1},
		{oidName, binaryFormat, "pg_class", "pg_am", 1},
		{oidBpchar, textFormat, "ab  ", "ab", 0},
		{oidBpchar, textFormat, "a ", "a\x01", -1}, // trimmed, not padded
		{oidBpchar, textFormat, "   ", "", 0},
		{oidBpchar, binaryFormat, "b   ", "a   ", 1},

		{oidBytea, textFormat, `\x`, ``, 0},
		{oidBytea, textFormat, `\x`, `\x00`, -1},
		{oidBytea, textFormat, `\x00ff`, `\x00`, 1},
		{oidBytea, textFormat, `\x41`, `A`, 0},
		{oidBytea, textFormat, `\x5c`, `\\`, 0},
		{oidBytea, textFormat, `\001`, `\002`, -1},
		{oidBytea, textFormat, `\377`, `~`, 1},
		{oidBytea, textFormat, `a\000b`, `\x610062`, 0},
		{oidBytea, textFormat, `\x7f`, `\x80`, -1},
		{oidBytea, binaryFormat, "\xff", "\x00\x01", 1},
		{oidBytea, binaryFormat, "", "\x00", -1},
		{oidBytea, binaryFormat, "", "", 0},

		{oidUUID, textFormat, "00000000-0000-0000-0000-000000000001", "ffffffff-0000-0000-0000-000000000000", -1},
		{oidUUID, textFormat, "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", "A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11", 0},
		{oidUUID, textFormat, "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a12", "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", 1},
		{oidUUID, binaryFormat, strings.Repeat("\x00", 15) + "\x01", "\xff" + strings.Repeat("\x00", 15), -1},
		{oidUUID, binaryFormat, strings.Repeat("\x07", 16), strings.Repeat("\x07", 16), 0},

		{oidDate, textFormat, "2024-03-10", "2024-03-09", 1},
		{oidDate, textFormat, "0044-03-15 BC", "0001-01-01", -1},
		{oidDate, textFormat, "0001-12-31 BC", "0001-01-01", -1},
		{oidDate, textFormat, "0002-01-01 BC", "0001-12-31 BC", -1},
		{oidDate, textFormat, "0044-03-16 BC", "0044-03-15 BC", 1},
		{oidDate, textFormat, "10000-01-01", "9999-12-31", 1},
		{oidDate, textFormat, "infinity", "5874897-12-31", 1},
		{oidDate, textFormat, "-infinity", "4714-11-24 BC", -1},
		{oidDate, textFormat, "infinity", "infinity", 0},
		{oidDate, textFormat, "0001-02-29 BC", "0001-03-01 BC", -1}, // 1 BC is a leap year
		{oidDate, binaryFormat, send32(8835), send32(-1), 1},
		{oidDate, binaryFormat, send32(math.MaxInt32), send32(2145031948), 1},
		{oidDate, binaryFormat, send32(math.MinInt32), send32(-2451545), -1},

		{oidTimestamp, textFormat, "2024-03-10 02:30:00", "2024-03-10 02:30:00.000001", -1},
		{oidTimestamp, textFormat, "2024-03-10 02:30:00.5", "2024-03-10 02:30:00.500000", 0},
		{oidTimestamp, textFormat, "0044-03-15 12:00:00 BC", "0001-01-01 00:00:00", -1},
		{oidTimestamp, textFormat, "0001-12-31 23:59:59.999999 BC", "0001-01-01 00:00:00", -1},
		{oidTimestamp, textFormat, "12024-01-01 00:00:00", "9999-12-31 23:59:59.999999", 1},
		{oidTimestamp, textFormat, "infinity", "294276-12-31 23:59:59.999999", 1},
		{oidTimestamp, textFormat, "-infinity", "4714-11-24 00:00:00 BC", -1},
		{oidTimestamp, binaryFormat, send64(0), send64(-1), 1},
		{oidTimestamp, binaryFormat, send64(math.MaxInt64), send64(math.MaxInt64 - 1), 1},

		{oidTimestamptz, textFormat, "2024-03-10 02:30:00+01", "2024-03-10 01:30:00+00", 0},
		{oidTimestamptz, textFormat, "2024-03-10 01:30:00-05:30", "2024-03-10 07:00:00+00", 0},
		{oidTimestamptz, textFormat, "1880-01-01 05:53:28+05:53:28", "1880-01-01 00:00:00+00", 0},
		{oidTimestamptz, textFormat, "1880-01-01 05:53:28+05:53:27", "1880-01-01 00:00:00+00", 1},
		{oidTimestamptz, textFormat, "2024-11-03 01:30:00-04", "2024-11-03 01:10:00-05", -1}, // DST ends: the later 01:10 is later
		{oidTimestamptz, textFormat, "2024-03-10 23:30:00-05", "2024-03-11 04:00:00+00", 1},
		{oidTimestamptz, textFormat, "0044-03-15 10:00:00+00:53:28 BC", "0044-03-15 09:06:32+00 BC", 0},
		{oidTimestamptz, textFormat, "infinity", "294276-12-31 23:59:59.999999+00", 1},
		{oidTimestamptz, textFormat, "-infinity", "-infinity", 0},
		{oidTimestamptz, binaryFormat, send64(math.MinInt64), send64(math.MinInt64 + 1), -1},
		{oidTimestamptz, binaryFormat, send64(5), send64(5), 0},

		{oidInterval, textFormat, "1 mon", "30 days", 0},
		{oidInterval, textFormat, "1 day", "24:00:00", 0},
		{oidInterval, textFormat, "1 year", "360 days", 0},
		{oidInterval, textFormat, "-1 days +02:00:00", "00:00:00", -1},
		{oidInterval, textFormat, "-1 days +02:00:00", "-22:00:00", 0},
		{oidInterval, textFormat, "1 year 2 mons 3 days 04:05:06.5", "1 year 2 mons 3 days 04:05:06", 1},
		{oidInterval, textFormat, "00:00:00.000001", "00:00:00", 1},
		{oidInterval, textFormat, "-00:00:01", "00:00:00", -1},
		{oidInterval, textFormat, "-1 years -2 mons", "-14 mons", 0},
		{oidInterval, textFormat, "178956970 years", "2562047788:00:54.775807", 1}, // past int64 microseconds
		{oidInterval, textFormat, "-178956970 years -8 mons", "-2562047788:00:54.775808", -1},
		{oidInterval, textFormat, "infinity", "178956970 years 7 mons 2147483647 days 2562047788:00:54.775806", 1},
		{oidInterval, textFormat, "-infinity", "-178956970 years -8 mons -2147483648 days -2562047788:00:54.775807", -1},
		{oidInterval, binaryFormat, sendInterval(0, 0, 1), sendInterval(0, 30, 0), 0},
		{oidInterval, binaryFormat, sendInterval(86400000000, 0, 0), sendInterval(0, 1, 0), 0},
		{oidInterval, binaryFormat, sendInterval(math.MaxInt64, 0, 0), sendInterval(0, 0, 1), 1},
		{oidInterval, binaryFormat, sendInterval(0, 0, math.MaxInt32), sendInterval(math.MaxInt64, math.MaxInt32, 0), 1},
		{oidInterval, binaryFormat, sendInterval(-1, 0, 0), sendInterval(0, 0, 0), -1},
		{oidInterval, binaryFormat, sendInterval(math.MinInt64, math.MinInt32, math.MinInt32), sendInterval(math.MinInt64, math.MinInt32, math.MinInt32+1), -1},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s/%d/%q/%q", typeName(tt.oid), tt.format, tt.a, tt.b), func(t *testing.T) {
			f, err := comparator("c", tt.oid, tt.format, sessionSettings{})
			if err != nil {
				t.Fatal(err)
			}
			if got := mustCompare(t, f, tt.a, tt.b); got != tt.want {
				t.Errorf("compare(%q, %q) = %d, want %d", tt.a, tt.b, got, tt.want)
			}
		})
	}
}

// TestCompareNumericSort sorts numeric values in both formats: both must come
// out in Postgres's order.
func TestCompareNumericSort(t *testing.T) {
	want := []string{
		"-Infinity", "-100000000", "-99999999.9999", "-1000", "-12.5", "-12.49",
		"-0.001", "0", "0.0000", "0.00000001", "0.0001", "0.5", "1", "9.999",
		"10", "12.50", "12.5", "12.5000001", "100000000", "123456789012345678901234567890.12345",
		"Infinity", "NaN", "NaN",
	}
	// Stable sorting keeps equal values in the order of the input: the
	// input lists equal values as want does.
	in := []string{
		"12.5000001", "NaN", "0", "-12.49", "Infinity", "12.50", "-99999999.9999",
		"0.0001", "-0.001", "10", "1", "-Infinity", "123456789012345678901234567890.12345",
		"0.5", "-100000000", "0.0000", "NaN", "12.5", "9.999", "-1000", "100000000",
		"0.00000001", "-12.5",
	}
	for _, format := range []int16{textFormat, binaryFormat} {
		f, err := comparator("n", oidNumeric, format, sessionSettings{})
		if err != nil {
			t.Fatal(err)
		}
		got := slices.Clone(in)
		if format == binaryFormat {
			for i := range got {
				got[i] = sendNumeric(got[i])
			}
		}
		slices.SortStableFunc(got, func(a, b string) int { return mustCompare(t, f, a, b) })
		if format == binaryFormat {
			for i, v := range want {
				if got[i] != sendNumeric(v) {
					t.Fatalf("binary: position %d holds %x, want %s", i, got[i], v)
				}
			}
			continue
		}
		if !slices.Equal(got, want) {
			t.Fatalf("text:\ngot  %q\nwant %q", got, want)
		}
	}
}

// TestCompareDateArithmetic checks the day and microsecond counts against
// Go's calendar where Go can count, and against Postgres where it cannot.
func TestCompareDateArithmetic(t *testing.T) {
	epoch := time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)
	for d := time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC); d.Year() <= 9999; d = d.AddDate(0, 0, 997) {
		wantDays := (d.Unix() - epoch.Unix()) / 86400
		if got, ok := dateText([]byte(d.Format("2006-01-02"))); !ok || got != wantDays {
			t.Fatalf("date %s: got %d %v, want %d", d.Format("2006-01-02"), got, ok, wantDays)
		}
		ts := d.Add(13*time.Hour + 5*time.Minute + 7*time.Second + 250*time.Microsecond)
		wantMicros := ts.Unix()*1e6 + int64(ts.Nanosecond()/1e3) - epoch.Unix()*1e6
		if got, ok := timestampText(false)([]byte(ts.Format("2006-01-02 15:04:05.999999"))); !ok || got != wantMicros {
			t.Fatalf("timestamp %s: got %d %v, want %d", ts, got, ok, wantMicros)
		}
	}
	// Values Postgres gives: SELECT date '...' - date '2000-01-01', and
	// extract(epoch ...) for the timestamps.
	for _, tt := range []struct {
		text string
		want int64
	}{
		{"2000-01-01", 0},
		{"0001-01-01", -730119},
		{"0001-12-31 BC", -730120},
		{"4714-11-24 BC", -2451545},
		{"5874897-12-31", 2145031948},
	} {
		if got, ok := dateText([]byte(tt.text)); !ok || got != tt.want {
			t.Errorf("date %s: got %d %v, want %d", tt.text, got, ok, tt.want)
		}
	}
	for _, tt := range []struct {
		text  string
		zoned bool
		want  int64
	}{
		{"2000-01-01 00:00:00", false, 0},
		{"2000-01-02 00:00:01.5", false, 86401500000},
		{"1999-12-31 23:59:59.999999", false, -1},
		{"2000-01-01 01:00:00+01", true, 0},
		{"294276-12-31 23:59:59.999999-15:59:59", true, 9223371331200000000 - 1 + 57599000000},
		{"1999-12-31 18:30:00-05:30", true, 0},
		{"294276-12-31 23:59:59.999999", false, 9223371331200000000 - 1}, // END_TIMESTAMP - 1
	} {
		if got, ok := timestampText(tt.zoned)([]byte(tt.text)); !ok || got != tt.want {
			t.Errorf("timestamp %s: got %d %v, want %d", tt.text, got, ok, tt.want)
		}
	}
}

// TestCompareFormatsAgree reads one value in text and in binary: both must
// come out the same, infinities included.
func TestCompareFormatsAgree(t *testing.T) {
	agree := func(t *testing.T, text, bin string, fromText, fromBinary func([]byte) (int64, bool)) {
		t.Helper()
		x, ok1 := fromText([]byte(text))
		y, ok2 := fromBinary([]byte(bin))
		if !ok1 || !ok2 || x != y {
			t.Errorf("%q reads as %d %v, its binary form as %d %v", text, x, ok1, y, ok2)
		}
	}
	for text, days := range map[string]int32{
		"2000-01-01": 0, "2024-03-10": 8835, "infinity": math.MaxInt32, "-infinity": math.MinInt32,
	} {
		agree(t, text, send32(days), dateText, intBinary(4))
	}
	for text, micros := range map[string]int64{
		"2000-01-01 00:00:00": 0, "infinity": math.MaxInt64, "-infinity": math.MinInt64,
	} {
		agree(t, text, send64(micros), timestampText(false), intBinary(8))
	}
	for text, micros := range map[string]int64{
		"2000-01-01 01:00:00+01": 0, "infinity": math.MaxInt64, "-infinity": math.MinInt64,
	} {
		agree(t, text, send64(micros), timestampText(true), intBinary(8))
	}
	for text, bin := range map[string]string{
		"1 year 2 mons 3 days 04:05:06.5": sendInterval(4*3600e6+5*60e6+6.5e6, 3, 14),
		"-1 days +02:00:00":               sendInterval(2*3600e6, -1, 0),
		"infinity":                        sendInterval(math.MaxInt64, math.MaxInt32, math.MaxInt32),
		"-infinity":                       sendInterval(math.MinInt64, math.MinInt32, math.MinInt32),
	} {
		x, ok1 := intervalText([]byte(text))
		y, ok2 := intervalBinary([]byte(bin))
		if !ok1 || !ok2 || x != y {
			t.Errorf("interval %q reads as %v %v, its binary form as %v %v", text, x, ok1, y, ok2)
		}
	}
	for _, text := range []string{"12.5", "-0.00012", "100000000", "123456789.000000001", "0", "NaN", "Infinity", "-Infinity"} {
		x, ok1 := numericText([]byte(text))
		y, ok2 := numericBinary([]byte(sendNumeric(text)))
		if !ok1 || !ok2 || numericOrder(x, y) != 0 {
			t.Errorf("numeric %q reads as %v %v, its binary form as %v %v", text, x, ok1, y, ok2)
		}
	}
}

func TestCompareRefusals(t *testing.T) {
	tests := []struct {
		column   string
		oid      uint32
		format   int16
		settings sessionSettings
		want     []string // in the message; "" for no refusal
	}{
		{"ORDER BY price", 790, textFormat, nil, []string{`ORDER BY price of type money across shards is not supported`}},
		{"price", 790, binaryFormat, nil, []string{"price of type", "money"}},
		{"doc", 114, textFormat, nil, []string{"doc of type", "json"}},
		{"ids", 1009, binaryFormat, nil, []string{"ids of type", "text[]"}},
		{"at", 1560, textFormat, nil, []string{"at of type", "bit"}},
		{"cash", 790, textFormat, nil, []string{"cash of type", "money"}},
		{"addr", 829, binaryFormat, nil, []string{"addr of type", "macaddr"}},
		{"u", 705, textFormat, nil, []string{"u of type", "unknown"}},
		{"mood", 16390, textFormat, nil, []string{"mood of type", "16390"}},

		{"ts", oidTimestamp, textFormat, sessionSettings{"DateStyle": "SQL, DMY"}, []string{"ts of type", "timestamp", "DateStyle", "SQL, DMY"}},
		{"ts", oidTimestamp, binaryFormat, sessionSettings{"DateStyle": "SQL, DMY"}, nil},
		{"ts", oidTimestamptz, textFormat, sessionSettings{"datestyle": "Postgres, MDY"}, []string{"ts of type", "DateStyle"}},
		{"d", oidDate, textFormat, sessionSettings{"DateStyle": "German"}, []string{"d of type", "date", "DateStyle"}},
		{"d", oidDate, textFormat, sessionSettings{"DateStyle": "ISO, DMY"}, nil},
		{"d", oidDate, textFormat, sessionSettings{"DateStyle": "iso"}, nil},

		{"name", oidText, textFormat, sessionSettings{"client_encoding": "LATIN1"}, []string{"name of type", "text", "client_encoding", "LATIN1"}},
		{"name", oidText, binaryFormat, sessionSettings{"client_encoding": "LATIN1"}, []string{"client_encoding"}},
		{"name", oidBpchar, textFormat, sessionSettings{"client_encoding": "SJIS"}, []string{"character", "client_encoding"}},
		{"name", oidVarchar, textFormat, sessionSettings{"client_encoding": "WIN1252"}, []string{"client_encoding"}},
		{"name", oidName, textFormat, sessionSettings{"client_encoding": "EUC_JP"}, []string{"client_encoding"}},
		{"name", oidText, textFormat, sessionSettings{"client_encoding": "utf8"}, nil},
		{"name", oidText, textFormat, sessionSettings{"client_encoding": "UTF-8"}, nil},
		{"name", oidText, textFormat, sessionSettings{"client_encoding": "SQL_ASCII"}, nil},
		{"raw", oidBytea, textFormat, sessionSettings{"client_encoding": "LATIN1"}, nil},

		{"x", oidFloat8, textFormat, sessionSettings{"extra_float_digits": "0"}, []string{"x of type", "double precision", "extra_float_digits"}},
		{"x", oidFloat4, textFormat, sessionSettings{"extra_float_digits": "-15"}, []string{"x of type", "real", "extra_float_digits"}},
		{"x", oidFloat8, binaryFormat, sessionSettings{"extra_float_digits": "0"}, nil},
		{"x", oidFloat8, textFormat, sessionSettings{"extra_float_digits": "3"}, nil},
		{"x", oidFloat8, textFormat, sessionSettings{"extra_float_digits": "1"}, nil},

		{"i", oidInterval, textFormat, sessionSettings{"IntervalStyle": "iso_8601"}, []string{"i of type", "interval", "IntervalStyle", "iso_8601"}},
		{"i", oidInterval, textFormat, sessionSettings{"IntervalStyle": "postgres_verbose"}, []string{"IntervalStyle"}},
		{"i", oidInterval, binaryFormat, sessionSettings{"IntervalStyle": "iso_8601"}, nil},
		{"i", oidInterval, textFormat, sessionSettings{"IntervalStyle": "postgres"}, nil},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s/%d/%v", typeName(tt.oid), tt.format, tt.settings), func(t *testing.T) {
			f, err := comparator(tt.column, tt.oid, tt.format, tt.settings)
			if tt.want == nil {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				if f == nil {
					t.Fatal("no comparator")
				}
				return
			}
			e := wantCode(t, err, CodeFeatureNotSupported)
			if f != nil {
				t.Error("a comparator came with the refusal")
			}
			for _, w := range tt.want {
				if !strings.Contains(e.Message, w) {
					t.Errorf("message %q does not contain %q", e.Message, w)
				}
			}
		})
	}
}

func TestCompareBadFormat(t *testing.T) {
	_, err := comparator("c", oidInt4, 2, sessionSettings{})
	wantCode(t, err, CodeInternal)
}

func TestCompareUnreadable(t *testing.T) {
	tests := []struct {
		oid    uint32
		format int16
		good   string
		bad    string
	}{
		{oidBool, textFormat, "t", "true"},
		{oidBool, binaryFormat, "\x01", "\x02"},
		{oidInt2, textFormat, "1", "40000"},
		{oidInt4, textFormat, "1", "abc"},
		{oidInt4, binaryFormat, send32(1), "\x00\x00\x01"},
		{oidInt8, binaryFormat, send64(1), send32(1)},
		{oidOID, textFormat, "1", "-1"},
		{oidFloat8, textFormat, "1", "one"},
		{oidFloat4, binaryFormat, sendF4(1), sendF8(1)},
		{oidNumeric, textFormat, "1", "1e5"},
		{oidNumeric, textFormat, "1", "1."},
		{oidNumeric, textFormat, "1", "inf"},
		{oidNumeric, binaryFormat, sendNumeric("1"), sendNumericRaw(0, 0, 0, 10000)},
		{oidNumeric, binaryFormat, sendNumeric("1"), sendNumericRaw(0, 0x8000, 0, 1)},
		{oidNumeric, binaryFormat, sendNumeric("1"), sendNumericRaw(0, 0, 0, 1)[:9]},
		{oidBytea, textFormat, `\x00`, `\xZZ`},
		{oidBytea, textFormat, `\x00`, `\x0`},
		{oidBytea, textFormat, `\x00`, `\9`},
		{oidBytea, textFormat, `\x00`, `\400`},
		{oidBytea, textFormat, `\x00`, `abc\`},
		{oidUUID, textFormat, "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", "a0eebc999c0b4ef8bb6d6bb9bd380a11"},
		{oidUUID, textFormat, "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", "g0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"},
		{oidUUID, binaryFormat, strings.Repeat("\x00", 16), strings.Repeat("\x00", 15)},
		{oidDate, textFormat, "2024-02-29", "2023-02-29"},
		{oidDate, textFormat, "2024-02-29", "0000-01-01"},
		{oidDate, textFormat, "2024-02-29", "2024-13-01"},
		{oidDate, textFormat, "2024-02-29", "03/10/2024"},
		{oidDate, binaryFormat, send32(0), send64(0)},
		{oidDate, textFormat, "2024-02-29", "9999999-01-01"}, // past int32 days
		{oidTimestamp, textFormat, "2024-03-10 02:30:00", "2024-03-10T02:30:00"},
		{oidTimestamp, textFormat, "2024-03-10 02:30:00", "2024-03-10 24:00:00"},
		{oidTimestamp, textFormat, "2024-03-10 02:30:00", "2024-03-10 02:30:00.1234567"},
		{oidTimestamp, textFormat, "2024-03-10 02:30:00", "2024-03-10 02:30:00+01"},
		{oidTimestamp, textFormat, "2024-03-10 02:30:00", "999999999-01-01 00:00:00"},
		{oidTimestamptz, textFormat, "2024-03-10 02:30:00+01", "2024-03-10 02:30:00"},
		{oidTimestamptz, textFormat, "2024-03-10 02:30:00+01", "2024-03-10 02:30:00+1"},
		{oidTimestamptz, textFormat, "2024-03-10 02:30:00+01", "2024-03-10 02:30:00 UTC"},
		{oidTimestamptz, textFormat, "2024-03-10 02:30:00+01", "2024-03-10 02:30:00+01:60"},
		{oidTimestamptz, textFormat, "2024-03-10 02:30:00+01", "294276-12-31 23:59:59-16"},
		{oidInterval, textFormat, "1 day", "1 fortnight"},
		{oidInterval, textFormat, "1 day", "1 day 1 year"},
		{oidInterval, textFormat, "1 day", "@ 1 day"},
		{oidInterval, textFormat, "1 day", "P1D"},
		{oidInterval, textFormat, "1 day", ""},
		{oidInterval, textFormat, "1 day", "2562047788:00:54.775808"},
		{oidInterval, binaryFormat, sendInterval(0, 1, 0), sendInterval(0, 1, 0)[:12]},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s/%d/%q", typeName(tt.oid), tt.format, tt.bad), func(t *testing.T) {
			f, err := comparator("c", tt.oid, tt.format, sessionSettings{})
			if err != nil {
				t.Fatal(err)
			}
			mustCompare(t, f, tt.good, tt.good)
			for _, pair := range [][2]string{{tt.bad, tt.good}, {tt.good, tt.bad}} {
				_, err := f([]byte(pair[0]), []byte(pair[1]))
				e := wantCode(t, err, CodeInternal)
				if !strings.Contains(e.Message, fmt.Sprintf("%q", tt.bad)) {
					t.Errorf("message %q does not name %q", e.Message, tt.bad)
				}
			}
		})
	}
}

func TestCompareUnreadableLongValue(t *testing.T) {
	f, err := comparator("c", oidInt4, textFormat, sessionSettings{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = f([]byte(strings.Repeat("9", 1000)), []byte("1"))
	if e := wantCode(t, err, CodeInternal); len(e.Message) > 200 {
		t.Errorf("message of %d bytes: %q", len(e.Message), e.Message)
	}
}

func TestCollatable(t *testing.T) {
	for oid, want := range map[uint32]bool{
		oidText: true, oidVarchar: true, oidBpchar: true,
		oidName: false, oidBytea: false, oidInt4: false, oidUUID: false, 3802: true,
	} {
		if got := collatable(oid); got != want {
			t.Errorf("collatable(%d) = %v, want %v", oid, got, want)
		}
	}
}

// sendArray is array_send of a one-dimensional array from 1 of elements of
// type elem, each given in binary; "" is NULL.
func sendArray(elem uint32, elems ...string) string {
	hasNull := int32(0)
	body := ""
	for _, e := range elems {
		if e == "" {
			hasNull = 1
			body += send32(-1)
			continue
		}
		body += send32(int32(len(e))) + e
	}
	return send32(1) + send32(hasNull) + send32(int32(elem)) + send32(int32(len(elems))) + send32(1) + body
}

// TestCompareArraysRefused proves arrays the gateway cannot order as
// Postgres does (more dimensions, another lower bound, text elements) are
// refused with 0A000, not compared.
func TestCompareArraysRefused(t *testing.T) {
	cmpInts, err := comparator("ORDER BY a", 1007, textFormat, sessionSettings{})
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range []string{"{{1,2},{3,4}}", "[0:1]={1,2}"} {
		_, err := cmpInts([]byte(v), []byte("{1}"))
		if e := wantCode(t, err, CodeFeatureNotSupported); !strings.Contains(e.Message, "one-dimensional") {
			t.Errorf("%s: %q", v, e.Message)
		}
	}
	bin, err := comparator("ORDER BY a", 1007, binaryFormat, sessionSettings{})
	if err != nil {
		t.Fatal(err)
	}
	from0 := send32(1) + send32(0) + send32(oidInt4) + send32(1) + send32(0) + send32(4) + send32(1)
	_, err = bin([]byte(from0), []byte(sendArray(oidInt4, send32(1))))
	wantCode(t, err, CodeFeatureNotSupported)
	if _, err := comparator("ORDER BY names", 1009, textFormat, sessionSettings{}); err == nil {
		t.Error("text[] compared: its elements' collation is unknown")
	}
}
