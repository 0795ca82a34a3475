package engine

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// AggFunc says how the values of one output column combine across the
// partial results of a group.
type AggFunc int

// How output columns combine.
const (
	// AggFirst: a grouping expression, or one of them only: the same in
	// every row of a group; the first is taken.
	AggFirst AggFunc = iota + 1
	// AggCount adds bigint counts.
	AggCount
	// AggSum adds sums: bigint (of smallint and integer) or numeric (of
	// bigint and numeric) exactly; other types are refused.
	AggSum
	AggMin
	AggMax
	// AggBoolAnd and AggBoolOr: bool_and and every, bool_or.
	AggBoolAnd
	AggBoolOr
	// AggAvg divides the sum of hidden column Sum by the count of hidden
	// column Count, as Postgres's numeric avg does.
	AggAvg
	// The variances and standard deviations finish from the count of
	// hidden column Count, the numeric sum of hidden column Sum and the
	// sum of squares of hidden column Squares, as Postgres's numeric ones
	// do.
	AggVarSamp
	AggVarPop
	AggStddevSamp
	AggStddevPop
	// AggArrayAgg and AggStringAgg merge each shard's elements (its
	// partial, or string_agg's hidden array Elements) by the arrays of
	// ORDER BY keys in hidden columns Order.
	AggArrayAgg
	AggStringAgg
)

// varianceKinds map the variance aggregates to how they finish.
var varianceKinds = map[AggFunc]varianceKind{AggVarSamp: varSamp, AggVarPop: varPop, AggStddevSamp: stddevSamp, AggStddevPop: stddevPop}

var aggNames = map[AggFunc]string{AggFirst: "first", AggCount: "count", AggSum: "sum", AggMin: "min", AggMax: "max",
	AggBoolAnd: "bool_and", AggBoolOr: "bool_or", AggAvg: "avg",
	AggVarSamp: "var_samp", AggVarPop: "var_pop", AggStddevSamp: "stddev_samp", AggStddevPop: "stddev_pop",
	AggArrayAgg: "array_agg", AggStringAgg: "string_agg"}

// AggregateColumn is one output column of an Aggregate.
type AggregateColumn struct {
	Func AggFunc
	// Sum and Count are avg's hidden columns, and with Squares the
	// variances'.
	Sum, Count, Squares int
	// Collation is the hidden column naming the collation min and max
	// compare text in, -1 for none.
	Collation int
	// From is the hidden column an Extra column passes on.
	From int
	// Text is the column as the statement wrote it, for messages.
	Text string
	// Order are an ordered aggregate's ORDER BY keys: Hidden is the
	// hidden column with each shard's array of the key's values, in the
	// aggregate's order; Collation names the key's collation.
	Order []SortKey
	// Elements is the hidden column with string_agg's elements as an
	// array; Delimiter its delimiter, nil for NULL.
	Elements  int
	Delimiter *string
	// Distinct combines only the first partial of each value of the
	// Aggregate's Distinct columns within a group: a DISTINCT aggregate
	// whose shards each computed it per value.
	Distinct bool
}

// Having is one condition of a HAVING that the gateway checks on a group's
// combined values: Value Op Const, where Value combines the partials in
// hidden column Partial and Const, a hidden column, holds the other side,
// computed by the shards in Value's type.
type Having struct {
	Value   AggregateColumn
	Partial int
	Op      string // =, <>, <, <=, >, >=
	Const   int
	Text    string
}

// Aggregate finishes a statement with aggregates whose groups span shards:
// each shard returns partial aggregates per group, sorted so that a group's
// partials arrive one after another (or, without GROUP BY, one row each),
// and Aggregate combines each group's partials into Postgres's final value.
// Input rows carry Hidden columns after the output ones: group keys and
// what avg needs. Groups are the columns of the input rows (output or
// hidden, counted from the first) that hold the group keys.
type Aggregate struct {
	Input   Primitive
	Columns []AggregateColumn
	// Extra are hidden columns passed on after the output columns, for a
	// Sort above: the first value of each group of hidden column From.
	Extra []AggregateColumn
	// Having are the conditions on combined values a group must meet
	// to be returned.
	Having []Having
	Groups []int
	// GroupText are the group keys as the statement wrote them.
	GroupText []string
	// Distinct are the columns of the DISTINCT aggregates' argument: the
	// shards group by it too and sort by it after the group keys, so
	// equal values of a group arrive one after another.
	Distinct []int
	// DistinctText is the argument as the statement wrote it.
	DistinctText string
	Hidden       int
}

var _ Primitive = (*Aggregate)(nil)

// Inputs implements Primitive.
func (a *Aggregate) Inputs() []Primitive { return []Primitive{a.Input} }

// Describe implements Primitive.
func (a *Aggregate) Describe() string {
	cols := make([]string, len(a.Columns))
	for i, c := range a.Columns {
		cols[i] = c.Text + "=" + aggNames[c.Func]
	}
	groups := make([]string, len(a.Groups))
	for i, g := range a.Groups {
		groups[i] = "$" + strconv.Itoa(g+1)
	}
	s := fmt.Sprintf("Aggregate cols(%s)", strings.Join(cols, ", "))
	if len(groups) > 0 {
		s += fmt.Sprintf(" groups(%s)", strings.Join(groups, ", "))
	}
	for _, h := range a.Having {
		s += fmt.Sprintf(" having(%s)", h.Text)
	}
	return s
}

// Stream implements Primitive.
func (a *Aggregate) Stream(ctx context.Context, x Executor, args Params, emit func(*Batch) error) (Tag, error) {
	ag := &aggregation{a: a, x: x, emit: emit}
	if _, err := a.Input.Stream(ctx, x, args, ag.take); err != nil {
		return "", err
	}
	if ag.fields == nil {
		return "", internal("an aggregate's shards returned no columns")
	}
	if ag.open || len(a.Groups) == 0 && ag.groups == 0 {
		// Without GROUP BY there is one group even when no shard ran.
		if err := ag.finish(); err != nil {
			return "", err
		}
	}
	return Tag("SELECT " + strconv.FormatInt(ag.groups, 10)), nil
}

// aggregation is the state of one Aggregate execution.
type aggregation struct {
	a       *Aggregate
	x       Executor
	emit    func(*Batch) error
	fields  []Field
	visible int
	groupEq []compareFunc
	cmps    []compareFunc // min and max columns
	key     [][]byte      // the open group's key values (copies)
	open    bool
	// distinctEq compare the Distinct columns; value holds the last
	// row's (copies).
	distinctEq []compareFunc
	value      [][]byte
	taken      []bool // per spec: a DISTINCT aggregate took the value's partial
	// orderCmps are each ordered aggregate's key comparators, by spec.
	orderCmps [][]compareFunc
	acc       []accumulator
	groups    int64
	checked   bool // the collations of min and max were checked
	// specs are the output columns and then the HAVING values; at[i] is
	// where spec i's partials are in a row.
	specs   []AggregateColumn
	at      []int
	consts  [][]byte      // the open group's HAVING constants (copies)
	matches []compareFunc // HAVING comparisons
}

// checkCollations refuses min and max of text whose collation does not
// order by bytes, which is the order they compare in.
func (ag *aggregation) checkCollations(row [][]byte) error {
	for i, c := range ag.specs {
		if (c.Func != AggMin && c.Func != AggMax) || !collatable(ag.fields[ag.at[i]].DataTypeOID) {
			continue
		}
		if name := string(row[ag.visible+c.Collation]); !bytewiseCollation(name) {
			return &Error{Code: CodeFeatureNotSupported,
				Message: fmt.Sprintf("%s across shards is not supported under collation %s: shardgate compares text in byte order, which only the C, POSIX and C.UTF-8 collations share", c.Text, name)}
		}
	}
	return nil
}

// accumulator is one column's running value in the open group.
type accumulator struct {
	set     bool
	value   []byte // first, min, max: a copy of the value
	n       int64  // count, bigint sum
	dec     decimal
	b       bool
	count   int64         // avg, variances
	squares decimal       // variances
	parts   []orderedPart // array_agg, string_agg
}

// take reads the input's batches.
func (ag *aggregation) take(b *Batch) error {
	if b.Fields != nil {
		return ag.describe(b.Fields)
	}
	if ag.fields == nil {
		return internal("a shard sent an aggregate's rows without describing them")
	}
	for _, row := range b.Rows {
		repeat := false // the row's Distinct values are the last row's
		if ag.open {
			same, err := ag.sameGroup(row)
			if err != nil {
				return err
			}
			if !same {
				if err := ag.finish(); err != nil {
					return err
				}
			} else if repeat, err = ag.sameValue(row); err != nil {
				return err
			}
		}
		if !ag.checked {
			if err := ag.checkCollations(row); err != nil {
				return err
			}
			ag.checked = true
		}
		if !ag.open {
			ag.start(row)
		}
		if !repeat {
			ag.value = ag.value[:0]
			for _, c := range ag.a.Distinct {
				ag.value = append(ag.value, bytes.Clone(row[c]))
			}
		}
		if err := ag.add(row, repeat); err != nil {
			return err
		}
	}
	return nil
}

// sameValue reports whether row's Distinct values are the last row's.
func (ag *aggregation) sameValue(row [][]byte) (bool, error) {
	if len(ag.a.Distinct) == 0 {
		return false, nil
	}
	return equalValues(row, ag.a.Distinct, ag.value, ag.distinctEq)
}

// describe checks the partials' types and sends the output columns.
func (ag *aggregation) describe(fields []Field) error {
	a := ag.a
	ag.fields = append([]Field(nil), fields...)
	ag.visible = len(fields) - a.Hidden
	if ag.visible != len(a.Columns) {
		return internal("an aggregate's shards returned %d columns, want %d and %d hidden", len(fields), len(a.Columns), a.Hidden)
	}
	for _, g := range a.Groups {
		f := fields[g]
		cmp, err := comparator("GROUP BY "+ag.a.GroupText[len(ag.groupEq)], f.DataTypeOID, f.Format, ag.x)
		if err != nil {
			return err
		}
		ag.groupEq = append(ag.groupEq, cmp)
	}
	for _, d := range a.Distinct {
		f := fields[d]
		cmp, err := comparator("DISTINCT "+a.DistinctText, f.DataTypeOID, f.Format, ag.x)
		if err != nil {
			return err
		}
		ag.distinctEq = append(ag.distinctEq, cmp)
	}
	ag.specs, ag.at = append([]AggregateColumn(nil), a.Columns...), nil
	for i := range a.Columns {
		ag.at = append(ag.at, i)
	}
	out := fields[:ag.visible:ag.visible]
	for _, e := range a.Extra {
		ag.specs, ag.at = append(ag.specs, e), append(ag.at, ag.visible+e.From)
		out = append(out, fields[ag.visible+e.From])
	}
	for _, h := range a.Having {
		ag.specs, ag.at = append(ag.specs, h.Value), append(ag.at, ag.visible+h.Partial)
		value, c := fields[ag.visible+h.Partial], fields[ag.visible+h.Const]
		match, err := havingComparator(h.Text, value, c, ag.x)
		if err != nil {
			return err
		}
		ag.matches = append(ag.matches, match)
	}
	ag.cmps = make([]compareFunc, len(ag.specs))
	ag.orderCmps = make([][]compareFunc, len(ag.specs))
	for i, c := range ag.specs {
		f := fields[ag.at[i]]
		switch c.Func {
		case AggArrayAgg, AggStringAgg:
			if err := ag.describeOrdered(i, c, f); err != nil {
				return err
			}
		case AggMin, AggMax:
			cmp, err := comparator(c.Text, f.DataTypeOID, f.Format, ag.x)
			if err != nil {
				return err
			}
			if collatable(f.DataTypeOID) && c.Collation < 0 {
				return Unsupported("%s across shards is not supported: shardgate cannot tell the collation it compares in", c.Text)
			}
			ag.cmps[i] = cmp
		case AggSum:
			if f.DataTypeOID != oidInt8 && f.DataTypeOID != oidNumeric {
				return floatFinal(f, Unsupported("%s across shards is not supported for type %s: only sums of integers and numerics add up exactly (cast to numeric)", c.Text, typeName(f.DataTypeOID)))
			}
		case AggAvg:
			if f.DataTypeOID != oidNumeric {
				return floatFinal(f, Unsupported("%s across shards is not supported for type %s: only averages of integers and numerics come out exactly (cast to numeric)", c.Text, typeName(f.DataTypeOID)))
			}
			if s := fields[ag.visible+c.Sum].DataTypeOID; s != oidInt8 && s != oidNumeric {
				return Unsupported("%s across shards is not supported for this argument type", c.Text)
			}
		case AggVarSamp, AggVarPop, AggStddevSamp, AggStddevPop:
			if f.DataTypeOID != oidNumeric {
				return floatFinal(f, Unsupported("%s across shards is not supported for type %s: only variances of integers and numerics come out exactly (cast to numeric)", c.Text, typeName(f.DataTypeOID)))
			}
		}
	}
	return ag.emit(&Batch{Fields: out})
}

// floatFinal marks the refusal of an aggregate of a float column final:
// its value depends on the order Postgres adds the rows in, which
// gathering them to one shard would not reproduce either.
func floatFinal(f Field, e *Error) *Error {
	e.Final = f.DataTypeOID == oidFloat4 || f.DataTypeOID == oidFloat8
	return e
}

// describeOrdered checks an ordered aggregate's partials and makes its
// key comparators.
func (ag *aggregation) describeOrdered(i int, c AggregateColumn, f Field) error {
	if c.Func == AggStringAgg && f.DataTypeOID != oidText {
		return Unsupported("%s across shards is not supported for type %s", c.Text, typeName(f.DataTypeOID))
	}
	if _, ok := arrayElements[f.DataTypeOID]; c.Func == AggArrayAgg && !ok {
		return Unsupported("%s across shards is not supported for type %s", c.Text, typeName(f.DataTypeOID))
	}
	for _, k := range c.Order {
		kf := ag.fields[ag.visible+k.Hidden]
		elem, ok := arrayElements[kf.DataTypeOID]
		if !ok {
			return Unsupported("%s across shards is not supported: its ORDER BY %s is of type %s", c.Text, k.Text, typeName(kf.DataTypeOID))
		}
		cmp, err := comparator(c.Text+" ORDER BY "+k.Text, elem, kf.Format, ag.x)
		if err != nil {
			return err
		}
		ag.orderCmps[i] = append(ag.orderCmps[i], cmp)
	}
	return nil
}

// addOrdered adds one shard's partial of an ordered aggregate: v, its
// elements (array_agg's partial, string_agg's hidden array), and the
// arrays of its keys.
func (ag *aggregation) addOrdered(acc *accumulator, c AggregateColumn, v []byte, format int16, row [][]byte) error {
	if c.Func == AggStringAgg {
		v, format = row[ag.visible+c.Elements], ag.fields[ag.visible+c.Elements].Format
	}
	if v == nil {
		return nil // no rows on that shard
	}
	if multiDimensional(v, format) {
		return Unsupported("%s across shards is not supported over arrays", c.Text)
	}
	// The parts outlive the batch: they keep copies.
	part := orderedPart{}
	var ok bool
	if part.value, ok = splitArray(bytes.Clone(v), format); !ok {
		return internal("a shard sent %s's elements as %q", c.Text, v)
	}
	for _, k := range c.Order {
		if collatable(arrayElements[ag.fields[ag.visible+k.Hidden].DataTypeOID]) {
			if name := string(row[ag.visible+k.Collation]); !bytewiseCollation(name) {
				return Unsupported("%s across shards is not supported under collation %s: shardgate orders text by its bytes, which only the C, POSIX and C.UTF-8 collations do", c.Text, name)
			}
		}
		keys, ok := splitArray(bytes.Clone(row[ag.visible+k.Hidden]), ag.fields[ag.visible+k.Hidden].Format)
		if !ok || len(keys.elems) != len(part.value.elems) {
			return internal("a shard sent %s's ORDER BY %s as %q", c.Text, k.Text, row[ag.visible+k.Hidden])
		}
		part.keys = append(part.keys, keys.elems)
	}
	acc.set, acc.parts = true, append(acc.parts, part)
	return nil
}

// finishOrdered builds an ordered aggregate's value from its parts.
func (ag *aggregation) finishOrdered(i int, c AggregateColumn, acc accumulator, f Field) ([]byte, error) {
	elems, err := mergeOrdered(acc.parts, c.Order, ag.orderCmps[i])
	if err != nil {
		return nil, err
	}
	if c.Func == AggStringAgg {
		out, ok := joinStrings(elems, c.Delimiter)
		if !ok {
			return nil, nil
		}
		return out, nil
	}
	return buildArray(elems, f.Format, acc.parts[0].value.oid), nil
}

// sameGroup reports whether row belongs to the open group.
func (ag *aggregation) sameGroup(row [][]byte) (bool, error) {
	return equalValues(row, ag.a.Groups, ag.key, ag.groupEq)
}

// equalValues reports whether row's columns cols equal values, NULL
// equal to NULL, as GROUP BY and DISTINCT judge them.
func equalValues(row [][]byte, cols []int, values [][]byte, eq []compareFunc) (bool, error) {
	for i, col := range cols {
		v, k := row[col], values[i]
		if v == nil || k == nil {
			if (v == nil) != (k == nil) {
				return false, nil
			}
			continue
		}
		c, err := eq[i](v, k)
		if err != nil || c != 0 {
			return false, err
		}
	}
	return true, nil
}

// start opens a group at row.
func (ag *aggregation) start(row [][]byte) {
	ag.open = true
	ag.key = ag.key[:0]
	for _, g := range ag.a.Groups {
		ag.key = append(ag.key, bytes.Clone(row[g]))
	}
	ag.acc = make([]accumulator, len(ag.specs))
	ag.taken = make([]bool, len(ag.specs))
	ag.consts = ag.consts[:0]
	for _, h := range ag.a.Having {
		ag.consts = append(ag.consts, bytes.Clone(row[ag.visible+h.Const]))
	}
}

// add folds one row of partials into the open group; repeat says its
// DISTINCT aggregates' value came before: each takes a value's partial
// once, from the first shard whose rows it counted (with a FILTER, a
// shard may have none of the value's rows that pass).
func (ag *aggregation) add(row [][]byte, repeat bool) error {
	if !repeat {
		clear(ag.taken)
	}
	for i, c := range ag.specs {
		if c.Distinct {
			if repeat && ag.taken[i] {
				continue
			}
			ag.taken[i] = ag.counted(c, row[ag.at[i]], row)
		}
		acc := &ag.acc[i]
		v, format := row[ag.at[i]], ag.fields[ag.at[i]].Format
		switch c.Func {
		case AggFirst:
			if !acc.set {
				acc.set, acc.value = true, bytes.Clone(v)
			}
			continue
		case AggAvg:
			sum, count := row[ag.visible+c.Sum], row[ag.visible+c.Count]
			if sum == nil {
				continue
			}
			d, err := ag.readSum(sum, ag.visible+c.Sum)
			if err != nil {
				return err
			}
			n, err := readInt8(count, ag.fields[ag.visible+c.Count].Format)
			if err != nil {
				return err
			}
			if !acc.set {
				acc.set, acc.dec, acc.count = true, d, n
			} else {
				acc.dec, acc.count = acc.dec.add(d), acc.count+n
			}
			continue
		case AggVarSamp, AggVarPop, AggStddevSamp, AggStddevPop:
			if err := ag.addSquares(acc, c, row); err != nil {
				return err
			}
			continue
		case AggArrayAgg, AggStringAgg:
			if err := ag.addOrdered(acc, c, v, format, row); err != nil {
				return err
			}
			continue
		}
		if v == nil {
			continue
		}
		switch c.Func {
		case AggCount:
			n, err := readInt8(v, format)
			if err != nil {
				return err
			}
			acc.set, acc.n = true, acc.n+n
		case AggSum:
			if ag.fields[ag.at[i]].DataTypeOID == oidInt8 {
				n, err := readInt8(v, format)
				if err != nil {
					return err
				}
				if acc.set && (n > 0 && acc.n > math.MaxInt64-n || n < 0 && acc.n < math.MinInt64-n) {
					return &Error{Code: "22003", Message: "bigint out of range"}
				}
				acc.set, acc.n = true, acc.n+n
				continue
			}
			d, err := readDecimal(v, format)
			if err != nil {
				return err
			}
			if acc.set {
				d = acc.dec.add(d)
			}
			acc.set, acc.dec = true, d
		case AggMin, AggMax:
			if acc.set {
				c, err := ag.cmps[i](v, acc.value)
				if err != nil {
					return err
				}
				if ag.specs[i].Func == AggMin && c >= 0 || ag.specs[i].Func == AggMax && c <= 0 {
					continue
				}
			}
			acc.set, acc.value = true, bytes.Clone(v)
		case AggBoolAnd, AggBoolOr:
			b, err := readBool(v, format)
			if err != nil {
				return err
			}
			if !acc.set {
				acc.set, acc.b = true, b
			} else if ag.specs[i].Func == AggBoolAnd {
				acc.b = acc.b && b
			} else {
				acc.b = acc.b || b
			}
		}
	}
	return nil
}

// addSquares folds a variance's partials (count, sum, sum of squares)
// into acc.
func (ag *aggregation) addSquares(acc *accumulator, c AggregateColumn, row [][]byte) error {
	sum, squares := row[ag.visible+c.Sum], row[ag.visible+c.Squares]
	if sum == nil || squares == nil {
		return nil // no rows on that shard
	}
	n, err := readInt8(row[ag.visible+c.Count], ag.fields[ag.visible+c.Count].Format)
	if err != nil {
		return err
	}
	d, err := ag.readSum(sum, ag.visible+c.Sum)
	if err != nil {
		return err
	}
	sq, err := ag.readSum(squares, ag.visible+c.Squares)
	if err != nil {
		return err
	}
	if !acc.set {
		acc.set, acc.count, acc.dec, acc.squares = true, n, d, sq
		return nil
	}
	acc.count, acc.dec, acc.squares = acc.count+n, acc.dec.add(d), acc.squares.add(sq)
	return nil
}

// counted reports whether a DISTINCT aggregate's partial v (of row)
// counted the value: a count above 0, a sum or an average of something.
func (ag *aggregation) counted(c AggregateColumn, v []byte, row [][]byte) bool {
	switch c.Func {
	case AggCount:
		return v != nil && !bytes.Equal(v, []byte("0")) && !bytes.Equal(v, make([]byte, 8))
	case AggAvg:
		return row[ag.visible+c.Sum] != nil
	}
	return v != nil
}

// readSum reads a partial sum, bigint or numeric, as a decimal.
func (ag *aggregation) readSum(v []byte, col int) (decimal, error) {
	f := ag.fields[col]
	if f.DataTypeOID == oidInt8 {
		n, err := readInt8(v, f.Format)
		return decimalFromInt(n), err
	}
	return readDecimal(v, f.Format)
}

// finish emits the open group's row, if it meets the HAVING.
func (ag *aggregation) finish() error {
	if ag.acc == nil {
		ag.acc = make([]accumulator, len(ag.specs))
	}
	values := make([][]byte, len(ag.specs))
	for i, c := range ag.specs {
		acc := ag.acc[i]
		f := ag.fields[ag.at[i]]
		switch {
		case c.Func == AggCount:
			values[i] = writeInt8(acc.n, f.Format)
		case !acc.set:
			// NULL: no row, or only NULLs.
		case c.Func == AggFirst, c.Func == AggMin, c.Func == AggMax:
			values[i] = acc.value
		case c.Func == AggSum && f.DataTypeOID == oidInt8:
			values[i] = writeInt8(acc.n, f.Format)
		case c.Func == AggSum:
			values[i] = acc.dec.encode(f.Format)
		case c.Func == AggBoolAnd, c.Func == AggBoolOr:
			values[i] = writeBool(acc.b, f.Format)
		case c.Func == AggAvg:
			if acc.count == 0 {
				continue
			}
			q, err := acc.dec.div(decimalFromInt(acc.count))
			if err != nil {
				return err
			}
			values[i] = q.encode(f.Format)
		case c.Func == AggArrayAgg, c.Func == AggStringAgg:
			v, err := ag.finishOrdered(i, c, acc, f)
			if err != nil {
				return err
			}
			values[i] = v
		case varianceKinds[c.Func] != 0:
			v, ok, err := combineVariance(varianceKinds[c.Func], acc.count, acc.dec, acc.squares)
			if err != nil {
				return err
			}
			if ok {
				values[i] = v.encode(f.Format)
			}
		}
	}
	ag.open, ag.acc = false, nil
	width := len(ag.a.Columns) + len(ag.a.Extra)
	for j, h := range ag.a.Having {
		v, c := values[width+j], []byte(nil)
		if j < len(ag.consts) {
			// No row came at all (no shard), so no constant either.
			c = ag.consts[j]
		}
		if v == nil || c == nil {
			return nil // NULL: not true
		}
		cmp, err := ag.matches[j](v, c)
		if err != nil {
			return err
		}
		if !holds(h.Op, cmp) {
			return nil
		}
	}
	ag.groups++
	return ag.emit(&Batch{Rows: [][][]byte{values[:width]}})
}

// holds reports whether a comparison's result satisfies op.
func holds(op string, cmp int) bool {
	switch op {
	case "=":
		return cmp == 0
	case "<>", "!=":
		return cmp != 0
	case "<":
		return cmp < 0
	case "<=":
		return cmp <= 0
	case ">":
		return cmp > 0
	case ">=":
		return cmp >= 0
	}
	return false
}

// havingComparator compares a HAVING's combined value with its constant:
// in their type when they share it, as decimals when both are numbers of
// different types (count(*) > 2.5), else refused.
func havingComparator(text string, value, c Field, env Settings) (compareFunc, error) {
	if value.DataTypeOID == c.DataTypeOID && value.Format == c.Format {
		if collatable(value.DataTypeOID) {
			return nil, Unsupported("HAVING %s across shards is not supported for text yet", text)
		}
		return comparator("HAVING "+text, value.DataTypeOID, value.Format, env)
	}
	vr, ok1 := decimalReader(value)
	cr, ok2 := decimalReader(c)
	if !ok1 || !ok2 {
		return nil, Unsupported("HAVING %s across shards is not supported for these types", text)
	}
	return func(a, b []byte) (int, error) {
		x, err := vr(a)
		if err != nil {
			return 0, err
		}
		y, err := cr(b)
		if err != nil {
			return 0, err
		}
		return numericOrder(numeric{kind: x.kind, d: &x.d}, numeric{kind: y.kind, d: &y.d}), nil
	}, nil
}

// decimalReader reads numbers of an integer or numeric column as decimals.
func decimalReader(f Field) (func([]byte) (decimal, error), bool) {
	switch f.DataTypeOID {
	case oidNumeric:
		return func(v []byte) (decimal, error) { return readDecimal(v, f.Format) }, true
	case oidInt8, oidInt4, oidInt2:
		read := pick(f.Format == 0, intText(64), intBinary(map[uint32]int{oidInt8: 8, oidInt4: 4, oidInt2: 2}[f.DataTypeOID]))
		return func(v []byte) (decimal, error) {
			n, ok := read(v)
			if !ok {
				return decimal{}, internal("a shard sent the integer %q", v)
			}
			return decimalFromInt(n), nil
		}, true
	}
	return nil, false
}

func readInt8(v []byte, format int16) (int64, error) {
	if format == 1 {
		if len(v) != 8 {
			return 0, internal("a shard sent a bigint of %d bytes", len(v))
		}
		return int64(binary.BigEndian.Uint64(v)), nil
	}
	n, err := strconv.ParseInt(string(v), 10, 64)
	if err != nil {
		return 0, internal("a shard sent the bigint %q", v)
	}
	return n, nil
}

func writeInt8(n int64, format int16) []byte {
	if format == 1 {
		return binary.BigEndian.AppendUint64(nil, uint64(n))
	}
	return strconv.AppendInt(nil, n, 10)
}

func readBool(v []byte, format int16) (bool, error) {
	switch {
	case format == 1 && len(v) == 1:
		return v[0] != 0, nil
	case format == 0 && len(v) == 1 && (v[0] == 't' || v[0] == 'f'):
		return v[0] == 't', nil
	}
	return false, internal("a shard sent the bool %q", v)
}

func writeBool(b bool, format int16) []byte {
	switch {
	case format == 1 && b:
		return []byte{1}
	case format == 1:
		return []byte{0}
	case b:
		return []byte("t")
	}
	return []byte("f")
}
