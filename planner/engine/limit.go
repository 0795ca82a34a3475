package engine

import (
	"bytes"
	"context"
	"fmt"
	"strconv"
	"strings"
)

// LimitValue is a LIMIT or OFFSET as a statement gives it: a literal, a
// parameter, or nothing (LIMIT ALL, no OFFSET).
type LimitValue struct {
	// Set is false for LIMIT ALL or no value at all.
	Set bool
	// Value is the literal, when Param is 0.
	Value int64
	// Param is the client's parameter ($Param, 1-based) that gives it.
	Param int
	// Expr is any other expression (LIMIT 2 + 1, LIMIT '5'), over the
	// client's parameters: Limit has a shard compute it, once.
	Expr string
}

// value returns the limit for the bound parameters; ok is false for none
// (LIMIT ALL, or a NULL parameter, which Postgres reads the same way).
func (v LimitValue) value(args Params) (n int64, ok bool, err error) {
	if !v.Set {
		return 0, false, nil
	}
	if v.Param == 0 {
		return v.Value, true, nil
	}
	if args == nil {
		return 0, false, internal("LIMIT parameter $%d has no value", v.Param)
	}
	text, ok := args.Text(v.Param - 1)
	if !ok {
		return 0, false, nil
	}
	// bigint's input function allows spaces around the number.
	n, err = strconv.ParseInt(strings.TrimSpace(text), 10, 64)
	if err != nil {
		return 0, false, &Error{Code: "22P02", Message: fmt.Sprintf("invalid input syntax for type bigint: %q", text)}
	}
	return n, true, nil
}

// SQL writes the value as an SQL expression: the literal, $n, the
// expression, or NULL.
func (v LimitValue) SQL() string {
	if !v.Set {
		return "NULL"
	}
	return v.String()
}

func (v LimitValue) String() string {
	switch {
	case !v.Set:
		return "all"
	case v.Expr != "":
		return "(" + v.Expr + ")"
	case v.Param > 0:
		return fmt.Sprintf("$%d", v.Param)
	}
	return strconv.FormatInt(v.Value, 10)
}

// Limit applies LIMIT and OFFSET to the merged result of several shards.
// Each shard was asked for LIMIT count+offset rows (the planner rewrote its
// statement so), so every row the answer can hold is among them; Limit skips
// the first offset rows of Input and passes count rows on. It reads Input to
// its end rather than cancel it: a cancelled statement would abort a
// transaction the shards are in.
//
// With Ties (FETCH FIRST ... WITH TIES), the rows after the count-th that
// equal it in Ties (the ORDER BY keys) pass on too; Input then keeps its
// Hidden columns (keys not in the select list), which Limit takes away.
type Limit struct {
	Input         Primitive
	Count, Offset LimitValue
	Ties          []SortKey
	Hidden        int
}

var _ Primitive = (*Limit)(nil)

// Stream implements Primitive.
func (l *Limit) Stream(ctx context.Context, x Executor, args Params, emit func(*Batch) error) (Tag, error) {
	// Parameters are read at Bind on Postgres, before the statement runs;
	// then it checks both values, OFFSET first, before it returns a row.
	var (
		count, offset int64
		limited       bool
		err           error
	)
	if l.Count.Expr != "" || l.Offset.Expr != "" {
		count, limited, offset, err = l.compute(ctx, x, args)
	} else if count, limited, err = l.Count.value(args); err == nil {
		offset, _, err = l.Offset.value(args)
	}
	if err != nil {
		return "", err
	}
	if offset < 0 {
		return "", &Error{Code: "2201X", Message: "OFFSET must not be negative"}
	}
	if limited && count < 0 {
		return "", &Error{Code: "2201W", Message: "LIMIT must not be negative"}
	}
	var (
		seen, sent int64
		out        Batch
		ties       *tieKeys
	)
	tag, err := l.Input.Stream(ctx, x, args, func(b *Batch) error {
		if b.Fields != nil {
			if len(l.Ties) == 0 {
				return emit(b)
			}
			var err error
			if ties, err = newTieKeys(l.Ties, b.Fields, l.Hidden, x); err != nil {
				return err
			}
			return emit(&Batch{Fields: b.Fields[:len(b.Fields)-l.Hidden]})
		}
		out.Rows = out.Rows[:0]
		for _, row := range b.Rows {
			seen++
			if seen <= offset {
				continue
			}
			if limited && sent >= count {
				if ties == nil || sent == 0 {
					continue
				}
				same, err := ties.sameAsLast(row)
				if err != nil {
					return err
				}
				if !same {
					count = -1 // no more ties: the rest all sort after
					continue
				}
			}
			if ties != nil {
				ties.keep(row)
				row = row[:len(row)-l.Hidden]
			}
			out.Rows = append(out.Rows, row)
			sent++
		}
		if len(out.Rows) == 0 {
			return nil
		}
		return emit(&out)
	})
	if err != nil {
		return "", err
	}
	if verb, _, ok := tag.count(); ok {
		return Tag(verb + " " + strconv.FormatInt(sent, 10)), nil
	}
	return tag, nil
}

// compute has a shard compute LIMIT and OFFSET expressions, checked as
// Postgres checks them (type, sign) by a LIMIT and OFFSET of their own.
func (l *Limit) compute(ctx context.Context, x Executor, args Params) (count int64, limited bool, offset int64, err error) {
	c, o := l.Count.SQL(), l.Offset.SQL()
	q := Query{
		SQL: fmt.Sprintf("SELECT (%s)::pg_catalog.int8, (%s)::pg_catalog.int8 FROM (SELECT pg_catalog.count(*) FROM (SELECT 1 LIMIT %s OFFSET %s) sg_s) sg_v",
			c, o, c, o),
		AnyShard: true, Describe: true, Internal: true,
	}
	var values [][]byte
	_, err = x.Query(ctx, Target{Kind: TargetAny}.Resolve(x.Topology(), args)[0], q, func(b *Batch) error {
		if len(b.Rows) > 0 {
			values = [][]byte{bytes.Clone(b.Rows[0][0]), bytes.Clone(b.Rows[0][1])}
		}
		return nil
	})
	if err != nil {
		return 0, false, 0, err
	}
	if values == nil {
		return 0, false, 0, internal("LIMIT and OFFSET came back without a value")
	}
	if values[0] != nil {
		if count, err = readInt8(values[0], 0); err != nil {
			return 0, false, 0, err
		}
		limited = true
	}
	if values[1] != nil {
		if offset, err = readInt8(values[1], 0); err != nil {
			return 0, false, 0, err
		}
	}
	return count, limited, offset, nil
}

// tieKeys tell whether a row ties with the last row passed on.
type tieKeys struct {
	cols []int
	cmps []compareFunc
	last [][]byte // copies
}

func newTieKeys(keys []SortKey, fields []Field, hidden int, env Settings) (*tieKeys, error) {
	t := &tieKeys{}
	visible := len(fields) - hidden
	for _, k := range keys {
		col := k.Ordinal - 1
		if k.Ordinal == 0 {
			col = visible + k.Hidden
		}
		if col < 0 || col >= len(fields) {
			return nil, internal("WITH TIES key %s is not among the %d columns", k.Text, len(fields))
		}
		f := fields[col]
		cmp, err := comparator(k.clause(), f.DataTypeOID, f.Format, env)
		if err != nil {
			return nil, err
		}
		t.cols, t.cmps = append(t.cols, col), append(t.cmps, cmp)
	}
	return t, nil
}

func (t *tieKeys) keep(row [][]byte) {
	t.last = t.last[:0]
	for _, c := range t.cols {
		t.last = append(t.last, bytes.Clone(row[c]))
	}
}

func (t *tieKeys) sameAsLast(row [][]byte) (bool, error) {
	return equalValues(row, t.cols, t.last, t.cmps)
}

// Inputs implements Primitive.
func (l *Limit) Inputs() []Primitive { return []Primitive{l.Input} }

// Describe implements Primitive.
func (l *Limit) Describe() string {
	offset := l.Offset.String()
	if !l.Offset.Set {
		offset = "0"
	}
	s := fmt.Sprintf("Limit count=%s offset=%s", l.Count, offset)
	if len(l.Ties) > 0 {
		s += " with ties"
	}
	return s
}
