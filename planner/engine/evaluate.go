package engine

import (
	"context"
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// Evaluate finishes a statement whose output columns are expressions over
// aggregates (count(*) + 1, sum(a) / count(*), max(x)::text): once the
// gateway has combined the aggregates and group keys, a shard computes
// the output columns from them, passed back as one array parameter per
// column, so that the expressions' types, rounding and errors are
// Postgres's own. Input rows, in text (an Internal query), are the
// values Exprs read as sg_v.sg_1, sg_v.sg_2, ...; the shard returns the
// output in the client's formats and Input's order.
type Evaluate struct {
	Input Primitive
	// Exprs are the output columns: an expression over sg_v with its
	// alias (sg_v.sg_3 + 1 AS "?column?"), or "" for input column i
	// as it is, under its name and keeping its source table.
	Exprs []string
	// Extra are expressions over sg_v returned after the output columns,
	// for a Sort above (its keys and their collations).
	Extra []string
	// Filter, when set, is a condition over sg_v (a HAVING the gateway
	// cannot check itself): rows for which it is not true are dropped.
	Filter string
	// Collations maps an input column of a collatable type that Exprs
	// read to the input column holding its collation as pg_collation_for
	// names it: its values get that collation back, which passing them
	// as text loses.
	Collations map[int]int
	// Texts name the input columns for messages.
	Texts []string
}

var _ Primitive = (*Evaluate)(nil)

// An evaluating statement takes up to this many rows, to make the round
// trip cheap per row while keeping its parameters small.
const (
	evaluateBatchRows  = 1000
	evaluateBatchBytes = 1 << 20
)

// Inputs implements Primitive.
func (e *Evaluate) Inputs() []Primitive { return []Primitive{e.Input} }

// Describe implements Primitive.
func (e *Evaluate) Describe() string {
	cols := make([]string, len(e.Exprs))
	for i, x := range e.Exprs {
		cols[i] = x
		if x == "" {
			cols[i] = "sg_v.sg_" + strconv.Itoa(i+1)
		}
	}
	return fmt.Sprintf("Evaluate on any shard sql=%q", "SELECT "+strings.Join(append(cols, e.Extra...), ", ")+" FROM unnest(...) AS sg_v"+e.where())
}

// where is the statement's WHERE clause for Filter.
func (e *Evaluate) where() string {
	if e.Filter == "" {
		return ""
	}
	return " WHERE " + e.Filter
}

// Stream implements Primitive.
func (e *Evaluate) Stream(ctx context.Context, x Executor, args Params, emit func(*Batch) error) (Tag, error) {
	ev := &evaluation{e: e, x: x, ctx: ctx, emit: emit, shard: Target{Kind: TargetAny}.Resolve(x.Topology(), args)[0]}
	if _, err := e.Input.Stream(ctx, x, args, ev.take); err != nil {
		return "", err
	}
	if ev.inputs == nil {
		return "", internal("the values to evaluate came without columns")
	}
	// Once more at the end, also when no rows came: the statement still
	// tells the client its columns.
	if ev.pending > 0 || !ev.described {
		if err := ev.flush(); err != nil {
			return "", err
		}
	}
	return Tag("SELECT " + strconv.FormatInt(ev.rows, 10)), nil
}

// evaluation is the state of one Evaluate execution.
type evaluation struct {
	e         *Evaluate
	x         Executor
	ctx       context.Context
	emit      func(*Batch) error
	shard     string
	inputs    []Field
	params    []string // each input column's array parameter, cast
	cols      []string // the output list
	names     []string // sg_v's columns
	sql       string
	arrays    []strings.Builder // each column's pending values, an array's text
	pending   int               // rows in arrays
	size      int
	rows      int64
	described bool
}

// take reads the input's batches.
func (ev *evaluation) take(b *Batch) error {
	if b.Fields != nil {
		return ev.prepare(b.Fields)
	}
	for _, row := range b.Rows {
		if len(row) != len(ev.arrays) {
			return internal("a row to evaluate has %d values, want %d", len(row), len(ev.arrays))
		}
		for i, v := range row {
			ev.element(i, v)
			ev.size += len(v)
		}
		if ev.sql == "" {
			if err := ev.build(row); err != nil {
				return err
			}
		}
		ev.pending++
		if ev.pending >= evaluateBatchRows || ev.size >= evaluateBatchBytes {
			if err := ev.flush(); err != nil {
				return err
			}
		}
	}
	return nil
}

// prepare writes the evaluating statement for the input's columns.
func (ev *evaluation) prepare(fields []Field) error {
	ev.inputs = append([]Field(nil), fields...)
	ev.arrays = make([]strings.Builder, len(fields))
	params, names, types := make([]string, len(fields)), make([]string, len(fields)), make([]string, len(fields))
	for i, f := range fields {
		t, ok := literalType(f)
		if !ok {
			return Unsupported("%s across shards is not supported: the gateway cannot pass a value of type %s back to a shard to compute the expressions over it", ev.text(i), typeName(f.DataTypeOID))
		}
		if f.Format != 0 {
			return internal("the values to evaluate came in binary")
		}
		if (f.DataTypeOID == oidFloat4 || f.DataTypeOID == oidFloat8) && !exactFloatText(ev.x) {
			e := Unsupported("%s across shards is not supported with extra_float_digits %q: its value would not print exactly", ev.text(i), ev.x.Setting("extra_float_digits"))
			e.Hint = "Set extra_float_digits to 1 or more."
			return e
		}
		params[i], types[i] = fmt.Sprintf("$%d::%s[]", i+1, t), t
		names[i] = "sg_" + strconv.Itoa(i+1)
	}
	if len(ev.e.Exprs) > len(fields) {
		return internal("%d values to evaluate %d columns over", len(fields), len(ev.e.Exprs))
	}
	cols := make([]string, len(ev.e.Exprs))
	for i, x := range ev.e.Exprs {
		cols[i] = x
		switch {
		case x != "":
		case fields[i].TypeModifier >= 0:
			// unnest drops the type modifier (varchar(20)'s length),
			// which the client was told of.
			cols[i] = "sg_v." + names[i] + "::" + types[i] + " AS " + QuoteIdent(fields[i].Name)
		default:
			cols[i] = "sg_v." + names[i] + " AS " + QuoteIdent(fields[i].Name)
		}
	}
	for i, x := range ev.e.Extra {
		cols = append(cols, x+" AS sg_extra"+strconv.Itoa(i+1))
	}
	ev.params, ev.cols, ev.names = params, cols, names
	return nil
}

// collationName is pg_collation_for's output: an identifier, quoted or
// not, perhaps schema-qualified.
var collationName = regexp.MustCompile(`^("([^"]|"")+"|[a-z_][a-z0-9_$]*)(\.("([^"]|"")+"|[a-z_][a-z0-9_$]*))?$`)

// build writes the evaluating statement, giving the values their
// collations as the first row names them (nil row: none came).
func (ev *evaluation) build(row [][]byte) error {
	params := append([]string(nil), ev.params...)
	for col, from := range ev.e.Collations {
		if row == nil || row[from] == nil || string(row[from]) == `"default"` {
			continue
		}
		name := string(row[from])
		if !collationName.MatchString(name) {
			return internal("a shard named the collation of %s %q", ev.text(col), name)
		}
		params[col] += " COLLATE " + name
	}
	ev.sql = fmt.Sprintf("SELECT %s FROM unnest(%s) WITH ORDINALITY AS sg_v(%s, sg_n)%s ORDER BY sg_v.sg_n",
		strings.Join(ev.cols, ", "), strings.Join(params, ", "), strings.Join(ev.names, ", "), ev.e.where())
	return nil
}

// text names input column i for messages.
func (ev *evaluation) text(i int) string {
	if i < len(ev.e.Texts) {
		return ev.e.Texts[i]
	}
	return "$" + strconv.Itoa(i+1)
}

// element adds v, a text value, to column i's array.
func (ev *evaluation) element(i int, v []byte) {
	a := &ev.arrays[i]
	if ev.pending > 0 {
		a.WriteByte(',')
	}
	arrayElement(a, v)
}

// flush evaluates the pending rows.
func (ev *evaluation) flush() error {
	if ev.sql == "" {
		if err := ev.build(nil); err != nil {
			return err
		}
	}
	values := make([][]byte, len(ev.arrays))
	for i := range ev.arrays {
		values[i] = []byte("{" + ev.arrays[i].String() + "}")
		ev.arrays[i].Reset()
	}
	ev.pending, ev.size = 0, 0
	q := Query{SQL: ev.sql, Values: values, AnyShard: true, Describe: true}
	_, err := ev.x.Query(ev.ctx, ev.shard, q, func(b *Batch) error {
		if b.Fields != nil {
			if ev.described {
				return nil
			}
			ev.described = true
			fields := append([]Field(nil), b.Fields...)
			for i, x := range ev.e.Exprs {
				if x == "" && i < len(fields) {
					// A column passed on keeps the table it comes from.
					fields[i].TableOID = ev.inputs[i].TableOID
					fields[i].TableAttributeNumber = ev.inputs[i].TableAttributeNumber
				}
			}
			return ev.emit(&Batch{Fields: fields})
		}
		ev.rows += int64(len(b.Rows))
		return ev.emit(b)
	})
	return err
}

// literalTypes are the names of the types whose text a shard reads back
// as the same value, as cast targets.
var literalTypes = map[uint32]string{
	oidBool: "bool", oidBytea: "bytea", oidName: "name", oidInt8: "int8",
	oidInt2: "int2", oidInt4: "int4", oidText: "text", oidOID: "oid",
	oidFloat4: "float4", oidFloat8: "float8", oidDate: "date",
	oidInterval: "interval", oidUUID: "uuid", 18: `"char"`, 114: "json", 3802: "jsonb",
	790: "money", 869: "inet", 650: "cidr", 829: "macaddr",
	oidNumeric: "numeric", oidVarchar: "varchar", oidBpchar: "bpchar",
	oidTimestamp: "timestamp", oidTimestamptz: "timestamptz", 1083: "time", 1266: "timetz",
}

// literalType names f's type, with its modifier, as a cast target.
func literalType(f Field) (string, bool) {
	name, ok := literalTypes[f.DataTypeOID]
	if !ok {
		return "", false
	}
	name = "pg_catalog." + name
	mod := f.TypeModifier
	switch {
	case mod < 0:
		return name, true
	case f.DataTypeOID == oidNumeric && mod >= 4:
		// Precision in the high 16 bits, the scale (negative since
		// PostgreSQL 15) signed in the low 11.
		return fmt.Sprintf("%s(%d, %d)", name, (mod-4)>>16&0xffff, ((mod-4)&0x7ff^1024)-1024), true
	case (f.DataTypeOID == oidVarchar || f.DataTypeOID == oidBpchar) && mod >= 4:
		return fmt.Sprintf("%s(%d)", name, mod-4), true
	case f.DataTypeOID == oidTimestamp || f.DataTypeOID == oidTimestamptz || f.DataTypeOID == 1083 || f.DataTypeOID == 1266:
		return fmt.Sprintf("%s(%d)", name, mod), true
	}
	return "", false
}

// QuoteIdent quotes a name as an SQL identifier.
func QuoteIdent(name string) string {
	return `"` + strings.ReplaceAll(name, `"`, `""`) + `"`
}
