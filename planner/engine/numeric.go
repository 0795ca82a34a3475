package engine

import (
	"encoding/binary"
	"strings"

	"github.com/cockroachdb/apd/v3"
)

// Postgres's numeric arithmetic, for combining per-shard partial aggregates
// into the values Postgres itself would return. The rules follow
// src/backend/utils/adt/numeric.c (PostgreSQL 14 and later, where numeric has
// infinities).

// decimal is a Postgres numeric value with its display scale.
//
// A finite value carries no digits beyond its scale (readDecimal, add and div
// keep it so, as Postgres does); encode truncates any that a hand-built value
// has, as numeric_out does. Zero is never negative.
type decimal struct {
	kind  int         // numericNegInf, numericFinite, numericPosInf, numericNaN (the constants in compare.go)
	d     apd.Decimal // the finite value
	scale int32       // display scale (dscale): digits after the point Postgres prints
}

// numeric_send's sign field, and numeric.c's limits.
const (
	decSignPos  = 0x0000
	decSignNeg  = 0x4000
	decSignNaN  = 0xC000
	decSignPInf = 0xD000
	decSignNInf = 0xF000

	decDigits      = 4     // DEC_DIGITS: decimal digits per base-10000 digit
	decMinSigDigit = 16    // NUMERIC_MIN_SIG_DIGITS
	decMaxDisplay  = 1000  // NUMERIC_MAX_DISPLAY_SCALE
	decMaxDscale   = 16383 // NUMERIC_DSCALE_MAX: the largest dscale a value stores
	decMaxWeight   = 32767 // weights are int16
	// numeric_send writes an infinity's dscale as its header's dscale bits:
	// (0xD000 or 0xF000) & NUMERIC_SHORT_DSCALE_MASK (0x1F80) >> 7 = 32.
	// NaN's (0xC000) come out 0. (Checked against PostgreSQL 15.)
	decInfDscale = 32
)

// readDecimal reads a numeric value in text (format 0) or binary (format 1) form,
// keeping its display scale (text: digits after the point; binary: the dscale field).
// Text is numeric_out's output; binary is numeric_send's, read as numeric_recv
// does (digits beyond dscale are truncated away). Anything else is an *Error
// with code XX000.
func readDecimal(v []byte, format int16) (decimal, error) {
	var x decimal
	var ok bool
	switch format {
	case 0:
		x, ok = decimalText(string(v))
	case 1:
		x, ok = decimalBinary(v)
	default:
		return decimal{}, internal("numeric value arrived in unknown format %d", format)
	}
	if !ok {
		const limit = 64
		s := string(v)
		if len(s) > limit {
			s = s[:limit] + "..."
		}
		return decimal{}, internal("cannot read %q as numeric", s)
	}
	return x, nil
}

// decimalText reads numeric_out's output: "NaN", "Infinity", "-Infinity", or
// an optional minus, digits, and optionally a point and digits.
func decimalText(s string) (decimal, bool) {
	switch s {
	case "NaN":
		return decimal{kind: numericNaN}, true
	case "Infinity":
		return decimal{kind: numericPosInf}, true
	case "-Infinity":
		return decimal{kind: numericNegInf}, true
	}
	s, neg := strings.CutPrefix(s, "-")
	whole, frac, dot := strings.Cut(s, ".")
	if !allDigits(whole) || dot && !allDigits(frac) || len(frac) > decMaxDscale {
		return decimal{}, false
	}
	// At most 131072 digits before the point: the first base-10000 digit's
	// weight must fit in int16.
	if len(strings.TrimLeft(whole, "0")) > (decMaxWeight+1)*decDigits {
		return decimal{}, false
	}
	var coeff apd.BigInt
	if _, ok := coeff.SetString(whole+frac, 10); !ok {
		return decimal{}, false
	}
	return finiteDecimal(&coeff, neg, -int32(len(frac)), int32(len(frac))), true
}

// decimalBinary reads numeric_send's output: ndigits, weight, sign, dscale,
// then ndigits base-10000 digits, the first of weight 10000^weight.
func decimalBinary(b []byte) (decimal, bool) {
	if len(b) < 8 {
		return decimal{}, false
	}
	ndigits := int(int16(binary.BigEndian.Uint16(b)))
	weight := int32(int16(binary.BigEndian.Uint16(b[2:])))
	sign := binary.BigEndian.Uint16(b[4:])
	dscale := binary.BigEndian.Uint16(b[6:])
	if ndigits < 0 || len(b) != 8+2*ndigits || dscale > decMaxDscale {
		return decimal{}, false
	}
	digits := make([]byte, 0, decDigits*ndigits)
	for i := range ndigits {
		digit := binary.BigEndian.Uint16(b[8+2*i:])
		if digit > 9999 {
			return decimal{}, false
		}
		digits = append(digits, '0'+byte(digit/1000), '0'+byte(digit/100%10), '0'+byte(digit/10%10), '0'+byte(digit%10))
	}
	var neg bool
	switch sign {
	case decSignNaN:
		return decimal{kind: numericNaN}, true
	case decSignPInf:
		return decimal{kind: numericPosInf}, true
	case decSignNInf:
		return decimal{kind: numericNegInf}, true
	case decSignNeg:
		neg = true
	case decSignPos:
	default:
		return decimal{}, false
	}
	// The digits stand for digits × 10^exp; keep only those down to
	// 10^-dscale, as numeric_recv's trunc_var does.
	exp := int64(decDigits) * (int64(weight) - int64(ndigits) + 1)
	if cut := -int64(dscale) - exp; cut > 0 {
		digits = digits[:max(0, int64(len(digits))-cut)]
		exp += cut
	}
	var coeff apd.BigInt
	if len(digits) > 0 {
		if _, ok := coeff.SetString(string(digits), 10); !ok {
			return decimal{}, false
		}
	}
	return finiteDecimal(&coeff, neg, int32(exp), int32(dscale)), true
}

// finiteDecimal is the finite value (-1)^neg × |coeff| × 10^exp with display
// scale scale; zero is made positive, as Postgres's make_result does.
func finiteDecimal(coeff *apd.BigInt, neg bool, exp, scale int32) decimal {
	x := decimal{kind: numericFinite, scale: scale}
	x.d.Coeff.Abs(coeff)
	x.d.Exponent = exp
	x.d.Negative = neg && coeff.Sign() != 0
	return x
}

// decimalFromInt is an integer as a numeric of scale 0.
func decimalFromInt(n int64) decimal {
	var coeff apd.BigInt
	coeff.SetInt64(n)
	return finiteDecimal(&coeff, n < 0, 0, 0)
}

// signedCoeff is x's finite value as an integer times 10^exp, for exp at most
// x.d.Exponent.
func (x decimal) signedCoeff(exp int32) *apd.BigInt {
	c := new(apd.BigInt).Set(&x.d.Coeff)
	if shift := int64(x.d.Exponent) - int64(exp); shift > 0 {
		c.Mul(c, decimalPow10(shift))
	}
	if x.d.Negative {
		c.Neg(c)
	}
	return c
}

func decimalPow10(n int64) *apd.BigInt {
	return new(apd.BigInt).Exp(apd.NewBigInt(10), apd.NewBigInt(n), nil)
}

// add returns x + y as Postgres's numeric_add: scale max(x.scale, y.scale); NaN if either is NaN;
// +Inf + -Inf = NaN; Inf + finite = that Inf.
func (x decimal) add(y decimal) decimal {
	if x.kind != numericFinite || y.kind != numericFinite {
		switch {
		case x.kind == numericNaN || y.kind == numericNaN:
			return decimal{kind: numericNaN}
		case x.kind == numericPosInf && y.kind == numericNegInf,
			x.kind == numericNegInf && y.kind == numericPosInf:
			return decimal{kind: numericNaN}
		case x.kind != numericFinite:
			return decimal{kind: x.kind}
		}
		return decimal{kind: y.kind}
	}
	exp := min(x.d.Exponent, y.d.Exponent)
	sum := x.signedCoeff(exp)
	sum.Add(sum, y.signedCoeff(exp))
	return finiteDecimal(sum, sum.Sign() < 0, exp, max(x.scale, y.scale))
}

// div returns x / y as Postgres's numeric division (numeric_div, which avg's final function uses):
// the result scale from Postgres's select_div_scale (NUMERIC_MIN_SIG_DIGITS = 16, DEC_DIGITS = 4,
// weights and first digits in base 10000, at least max(x.scale, y.scale), capped at 1000),
// rounded half away from zero; division by zero is an *Error with code 22012 "division by zero";
// NaN and infinities as Postgres 14+ does them.
//
// A quotient whose integer part passes numeric's 131072 digits is an *Error
// with code 22003, as make_result raises it.
func (x decimal) div(y decimal) (decimal, error) {
	if x.kind != numericFinite || y.kind != numericFinite {
		switch {
		case x.kind == numericNaN || y.kind == numericNaN:
			return decimal{kind: numericNaN}, nil
		case x.kind == numericPosInf || x.kind == numericNegInf:
			if y.kind != numericFinite {
				return decimal{kind: numericNaN}, nil // [-]Inf / [-]Inf
			}
			if y.d.Coeff.Sign() == 0 {
				return decimal{}, decimalDivisionByZero()
			}
			if (x.kind == numericNegInf) != y.d.Negative {
				return decimal{kind: numericNegInf}, nil
			}
			return decimal{kind: numericPosInf}, nil
		}
		// finite / [-]Inf: Postgres returns zero (scale 0) rather than underflow.
		return decimalFromInt(0), nil
	}
	if y.d.Coeff.Sign() == 0 {
		return decimal{}, decimalDivisionByZero()
	}
	rscale := selectDivScale(x, y)

	// x/y = cx/cy × 10^(ex-ey); scaled by 10^rscale it is num/den below,
	// rounded half away from zero to an integer as div_var's round_var does.
	k := int64(x.d.Exponent) - int64(y.d.Exponent) + int64(rscale)
	num := new(apd.BigInt).Set(&x.d.Coeff)
	den := new(apd.BigInt).Set(&y.d.Coeff)
	if k > 0 {
		num.Mul(num, decimalPow10(k))
	} else if k < 0 {
		den.Mul(den, decimalPow10(-k))
	}
	var rem apd.BigInt
	q, _ := new(apd.BigInt).QuoRem(num, den, &rem)
	rem.Lsh(&rem, 1)
	if rem.Cmp(den) >= 0 {
		q.Add(q, apd.NewBigInt(1))
	}
	result := finiteDecimal(q, x.d.Negative != y.d.Negative, -rscale, rscale)
	if weight, _ := result.base10000(); weight > decMaxWeight {
		return decimal{}, &Error{Code: "22003", Message: "value overflows numeric format"}
	}
	return result, nil
}

func decimalDivisionByZero() *Error {
	return &Error{Code: "22012", Message: "division by zero"}
}

// selectDivScale is numeric.c's select_div_scale: enough scale for at least
// NUMERIC_MIN_SIG_DIGITS significant digits, judged from the base-10000
// weights and first digits of the (finite) operands, but no less than either
// operand's display scale and at most NUMERIC_MAX_DISPLAY_SCALE.
func selectDivScale(x, y decimal) int32 {
	weight1, digits1 := x.base10000()
	weight2, digits2 := y.base10000()
	var first1, first2 uint16 // a zero's weight is 0 and its first digit 0
	if len(digits1) > 0 {
		first1 = digits1[0]
	}
	if len(digits2) > 0 {
		first2 = digits2[0]
	}
	// Estimate the quotient's weight; when the first digits are equal,
	// assume x's magnitude is the smaller.
	qweight := int64(weight1) - int64(weight2)
	if first1 <= first2 {
		qweight--
	}
	rscale := decMinSigDigit - qweight*decDigits
	rscale = max(rscale, int64(x.scale), int64(y.scale), 0)
	return int32(min(rscale, decMaxDisplay))
}

// decimalParts is a finite x's digits as numeric_out prints them: the
// integer part without leading zeros ("0" if none) and exactly scale
// fraction digits (digits beyond scale truncated), and whether x, so
// truncated, is nonzero.
func (x decimal) decimalParts() (whole, frac string, nonzero bool) {
	scale := int(max(x.scale, 0))
	s := x.d.Coeff.String()
	if x.d.Coeff.Sign() == 0 {
		s = ""
	}
	e := int(x.d.Exponent)
	switch {
	case s == "":
		whole = "0"
	case e >= 0:
		whole = s + strings.Repeat("0", e)
	case len(s) > -e:
		whole, frac = s[:len(s)+e], s[len(s)+e:]
	default:
		whole, frac = "0", strings.Repeat("0", -e-len(s))+s
	}
	if len(frac) > scale {
		frac = frac[:scale]
	} else {
		frac += strings.Repeat("0", scale-len(frac))
	}
	nonzero = strings.Trim(whole, "0") != "" || strings.Trim(frac, "0") != ""
	return whole, frac, nonzero
}

// base10000 is a finite x (truncated to its scale) as Postgres stores it:
// the weight of its first base-10000 digit and its digits, without leading
// or trailing zero digits. Zero has weight 0 and no digits.
func (x decimal) base10000() (weight int, digits []uint16) {
	whole, frac, nonzero := x.decimalParts()
	if !nonzero {
		return 0, nil
	}
	whole = strings.Repeat("0", (decDigits-len(whole)%decDigits)%decDigits) + whole
	frac += strings.Repeat("0", (decDigits-len(frac)%decDigits)%decDigits)
	all := whole + frac
	weight = len(whole)/decDigits - 1
	digits = make([]uint16, 0, len(all)/decDigits)
	for i := 0; i < len(all); i += decDigits {
		var d uint16
		for _, c := range []byte(all[i : i+decDigits]) {
			d = d*10 + uint16(c-'0')
		}
		digits = append(digits, d)
	}
	for len(digits) > 0 && digits[0] == 0 {
		digits = digits[1:]
		weight--
	}
	for len(digits) > 0 && digits[len(digits)-1] == 0 {
		digits = digits[:len(digits)-1]
	}
	return weight, digits
}

// encode writes the value as numeric_out (format 0: e.g. "12.50", "-0.001", "NaN", "Infinity",
// "-Infinity"; exactly scale digits after the point, no exponent) or numeric_send (format 1:
// ndigits, weight, sign, dscale, base-10000 digits with no leading or trailing zero digits, as
// Postgres strips them).
func (x decimal) encode(format int16) []byte {
	if format == 1 {
		return x.encodeBinary()
	}
	switch x.kind {
	case numericNaN:
		return []byte("NaN")
	case numericPosInf:
		return []byte("Infinity")
	case numericNegInf:
		return []byte("-Infinity")
	}
	whole, frac, nonzero := x.decimalParts()
	out := make([]byte, 0, 2+len(whole)+len(frac))
	if x.d.Negative && nonzero {
		out = append(out, '-')
	}
	out = append(out, whole...)
	if len(frac) > 0 {
		out = append(append(out, '.'), frac...)
	}
	return out
}

func (x decimal) encodeBinary() []byte {
	var weight int
	var digits []uint16
	var sign, dscale uint16
	switch x.kind {
	case numericNaN:
		sign = decSignNaN
	case numericPosInf:
		sign, dscale = decSignPInf, decInfDscale
	case numericNegInf:
		sign, dscale = decSignNInf, decInfDscale
	default:
		weight, digits = x.base10000()
		dscale = uint16(max(x.scale, 0))
		if x.d.Negative && len(digits) > 0 {
			sign = decSignNeg
		}
	}
	out := make([]byte, 8, 8+2*len(digits))
	binary.BigEndian.PutUint16(out, uint16(len(digits)))
	binary.BigEndian.PutUint16(out[2:], uint16(int16(weight)))
	binary.BigEndian.PutUint16(out[4:], sign)
	binary.BigEndian.PutUint16(out[6:], dscale)
	for _, d := range digits {
		out = binary.BigEndian.AppendUint16(out, d)
	}
	return out
}
