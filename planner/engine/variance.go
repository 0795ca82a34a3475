package engine

import "github.com/cockroachdb/apd/v3"

// Variance and standard deviation combined from shards' partial sums, digit
// for digit as PostgreSQL 15's numeric_stddev_internal
// (src/backend/utils/adt/numeric.c) computes them. Postgres takes that path
// for integer arguments too (int2/int4 sum into int128 and convert to
// numeric, int8 sums in numeric, all of scale 0), so each shard's count(x),
// sum((x)::numeric) and sum((x)::numeric * (x)::numeric), added up, are
// exactly the state Postgres finishes from.

// varianceKind is which aggregate to finish: variance is var_samp, stddev is
// stddev_samp.
type varianceKind int

const (
	varSamp varianceKind = iota + 1
	varPop
	stddevSamp
	stddevPop
)

// combineVariance computes the aggregate's numeric result from the combined
// count n, sum of x and sum of x*x, as numeric_stddev_internal does:
//
//   - NULL (ok false) for no rows, or one row for the sample aggregates;
//   - NaN if any input was NaN or an infinity (the sums are then not finite);
//   - else numerator = n*sumX2 - sumX*sumX with both products at scale
//     sumX.scale*2, and zero (scale 0) if that is <= 0;
//   - else numerator / (n*(n-1)) for samples, / (n*n) for populations, at
//     select_div_scale's scale, rounded half away from zero;
//   - and for stddev the square root of that rounded variance, rounded at
//     the same scale.
//
// A negative count is an *Error with code XX000; a variance past numeric's
// range is div's 22003.
func combineVariance(kind varianceKind, n int64, sumX, sumX2 decimal) (result decimal, ok bool, err error) {
	sample := kind == varSamp || kind == stddevSamp
	switch {
	case n < 0:
		return decimal{}, false, internal("variance over a negative count %d", n)
	case n == 0, sample && n == 1:
		// NaN and infinity inputs count as rows here: they are in n.
		return decimal{}, false, nil
	}
	if sumX.kind != numericFinite || sumX2.kind != numericFinite {
		return decimal{kind: numericNaN}, true, nil
	}

	// Both products are at scale sumX.scale*2: sumX*sumX exactly, and
	// n*sumX2 too when sumX2 comes from Postgres (its scale is twice sumX's);
	// mul_var would round any further digits.
	count := decimalFromInt(n)
	square := sumX.mul(sumX)
	square.d.Negative = square.d.Coeff.Sign() != 0 // subtracted below
	num := count.mul(sumX2).round(square.scale).add(square)
	if num.d.Negative || num.d.Coeff.Sign() == 0 {
		return decimalFromInt(0), true, nil
	}

	other := count // n*n for populations
	if sample {
		other = decimalFromInt(n - 1) // n*(n-1) for samples
	}
	variance, err := num.div(count.mul(other))
	if err != nil {
		return decimal{}, false, err
	}
	if kind == stddevSamp || kind == stddevPop {
		return variance.sqrt(), true, nil
	}
	return variance, true, nil
}

// mul returns x × y as numeric_mul does (mul_var asked for the exact
// product): display scale x.scale + y.scale; NaN if either is NaN or an
// infinity meets zero; else an infinity signed as the operands' signs say.
// Unlike numeric_mul it does not round a scale beyond 16383.
func (x decimal) mul(y decimal) decimal {
	if x.kind != numericFinite || y.kind != numericFinite {
		if x.kind == numericNaN || y.kind == numericNaN || x.isZero() || y.isZero() {
			return decimal{kind: numericNaN}
		}
		if x.negative() != y.negative() {
			return decimal{kind: numericNegInf}
		}
		return decimal{kind: numericPosInf}
	}
	var p apd.BigInt
	p.Mul(&x.d.Coeff, &y.d.Coeff)
	return finiteDecimal(&p, x.d.Negative != y.d.Negative, x.d.Exponent+y.d.Exponent, x.scale+y.scale)
}

func (x decimal) isZero() bool {
	return x.kind == numericFinite && x.d.Coeff.Sign() == 0
}

func (x decimal) negative() bool {
	return x.kind == numericNegInf || x.kind == numericFinite && x.d.Negative
}

// round returns a finite x with display scale scale (>= 0), its digits beyond
// that rounded half away from zero, as round_var does.
func (x decimal) round(scale int32) decimal {
	cut := -int64(x.d.Exponent) - int64(scale)
	if cut <= 0 {
		x.scale = scale
		return x
	}
	p := decimalPow10(cut)
	var rem apd.BigInt
	q, _ := new(apd.BigInt).QuoRem(&x.d.Coeff, p, &rem)
	if rem.Lsh(&rem, 1).Cmp(p) >= 0 {
		q.Add(q, apd.NewBigInt(1))
	}
	return finiteDecimal(q, x.d.Negative, -scale, scale)
}

// sqrt returns the square root of a finite x >= 0 at x's own scale, as
// sqrt_var(x, result, x.scale) does: the root truncated to at least one
// digit past that scale, then rounded half away from zero. Truncating first
// (never rounding twice) makes that the correctly rounded root.
func (x decimal) sqrt() decimal {
	// x = c × 10^e with e >= -scale (no digits beyond its scale), so
	// x × 10^(2(scale+1)) is the integer c × 10^(e+2·scale+2), and its integer
	// square root is the root's digits down to 10^-(scale+1).
	digits := int64(x.scale) + 1
	v := new(apd.BigInt).Mul(&x.d.Coeff, decimalPow10(int64(x.d.Exponent)+2*digits))
	root := new(apd.BigInt).Sqrt(v)
	return finiteDecimal(root, false, -int32(digits), int32(digits)).round(x.scale)
}
