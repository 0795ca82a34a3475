package engine

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
)

// SetOpKind is the set operation a SetOp performs.
type SetOpKind int

// The set operations, as Postgres names them.
const (
	SetUnion SetOpKind = iota
	SetIntersect
	SetExcept
)

// String returns the operation's SQL keyword.
func (k SetOpKind) String() string {
	switch k {
	case SetUnion:
		return "UNION"
	case SetIntersect:
		return "INTERSECT"
	case SetExcept:
		return "EXCEPT"
	}
	return fmt.Sprintf("SetOpKind(%d)", int(k))
}

// setOpEntryBytes is what a SetOp counts for each key it holds besides the
// key's own bytes: a HashDistinct's entry and the count beside it.
const setOpEntryBytes = distinctEntryBytes + 8

// SetOp combines the results of two inputs as Postgres's UNION, INTERSECT
// and EXCEPT do, for arms the shards cannot combine themselves. Each input
// describes its columns (Fields) first, in the client's formats; rows are
// equal when every column is equal as Postgres's = for its type says, NULL
// equal to NULL, keyed as HashDistinct keys them — text by its bytes, as
// under a deterministic collation, since SetOp is not told the columns'
// collations. Types HashDistinct refuses are refused here too, except by
// UNION ALL, which compares nothing.
//
// UNION ALL passes on Left's rows, then Right's. UNION passes on the
// first row of each set of equal rows, Left's then Right's, as each
// arrives. INTERSECT and EXCEPT read Right completely first, counting its
// rows, then pass on Left's rows in Left's order: INTERSECT one row for
// each distinct row of Left found in Right (ALL: min(m, n) of a row found
// m times in Left and n in Right), EXCEPT one for each not found (ALL:
// max(m-n, 0)).
//
// The inputs' columns must agree in number, type and format. The output
// columns are Left's, with a type modifier of -1 where Right's differs, as
// in Postgres. They go to the client before the first row: when Left has
// rows for a UNION that is before Right has described its columns, and
// the type modifiers are then Left's — the planner runs the arms in the
// types Postgres resolves for the whole operation where it can — and a
// type or format of Right that differs fails the statement after Left's
// rows.
//
// The keys SetOp holds (UNION's rows, INTERSECT's and EXCEPT's counts of
// Right's rows, EXCEPT's rows of Left) count against the session's
// shardgate.query_memory, past which the statement fails with 53200. An
// error of either input or of emit ends the statement and is returned as
// it is. The command tag counts the rows passed on.
type SetOp struct {
	Kind SetOpKind
	// All is set for UNION ALL, INTERSECT ALL and EXCEPT ALL.
	All         bool
	Left, Right Primitive
	// Columns are the output columns as the statement wrote them, for
	// messages.
	Columns []string
}

var _ Primitive = (*SetOp)(nil)

// Inputs implements Primitive.
func (s *SetOp) Inputs() []Primitive { return []Primitive{s.Left, s.Right} }

// Describe implements Primitive.
func (s *SetOp) Describe() string {
	return fmt.Sprintf("SetOp %s cols(%s)", s.name(), strings.Join(s.Columns, ", "))
}

// name is the operation as a statement writes it.
func (s *SetOp) name() string {
	if s.All {
		return s.Kind.String() + " ALL"
	}
	return s.Kind.String()
}

// Stream implements Primitive.
func (s *SetOp) Stream(ctx context.Context, x Executor, args Params, emit func(*Batch) error) (Tag, error) {
	limit, err := memoryLimit(x)
	if err != nil {
		return "", err
	}
	// Each side must describe its columns, in every protocol: arms that
	// are plans of their own would not when the client described the
	// statement already.
	r := &setOpRun{op: s, x: describing{x}, emit: emit, limit: limit, counts: map[string]int{}}
	switch {
	case s.Kind == SetUnion && s.All:
		pass := func([]byte) (bool, error) { return true, nil }
		err = r.read(ctx, args, sideLeft, pass)
		if err == nil {
			err = r.read(ctx, args, sideRight, pass)
		}
	case s.Kind == SetUnion:
		err = r.read(ctx, args, sideLeft, r.union)
		if err == nil {
			err = r.read(ctx, args, sideRight, r.union)
		}
	default:
		err = r.read(ctx, args, sideRight, r.count)
		if err == nil {
			err = r.read(ctx, args, sideLeft, r.decide)
		}
	}
	if err == nil {
		err = r.sendFields()
	}
	if err != nil {
		return "", err
	}
	return Tag("SELECT " + strconv.FormatInt(r.passed, 10)), nil
}

const (
	sideLeft = iota
	sideRight
)

// setOpRun is one execution of a SetOp.
type setOpRun struct {
	op     *SetOp
	x      Executor
	emit   func(*Batch) error
	limit  int
	fields [2][]Field // each side's, once it described them
	sent   bool       // the output Fields went to the client
	keys   []keyFunc  // nil for UNION ALL
	types  []string   // the columns' type names, for messages
	// counts holds a key per row remembered: for INTERSECT and EXCEPT
	// how many more times Right has it, for UNION and EXCEPT 0 for a
	// row passed on.
	counts map[string]int
	held   int
	passed int64
	key    []byte
	out    [][][]byte
}

// read streams one side, passing on the rows keep, given each row's key,
// accepts.
func (r *setOpRun) read(ctx context.Context, args Params, side int, keep func(key []byte) (bool, error)) error {
	in := r.op.Left
	if side == sideRight {
		in = r.op.Right
	}
	_, err := in.Stream(ctx, r.x, args, func(b *Batch) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		if b.Fields != nil {
			return r.describe(side, b.Fields)
		}
		if r.fields[side] == nil {
			return internal("a shard sent %s's rows without describing them", r.op.name())
		}
		for _, row := range b.Rows {
			if len(row) != len(r.fields[side]) {
				return internal("a shard sent a row of %d columns for %s's %d", len(row), r.op.name(), len(r.fields[side]))
			}
			var err error
			if r.key, err = appendRowKey(r.key[:0], row, r.keys, r.op.Columns, r.types); err != nil {
				return err
			}
			ok, err := keep(r.key)
			if err != nil {
				return err
			}
			if ok {
				r.out = append(r.out, row)
			}
		}
		if len(r.out) == 0 {
			return nil
		}
		if err := r.sendFields(); err != nil {
			return err
		}
		r.passed += int64(len(r.out))
		err := r.emit(&Batch{Rows: r.out})
		clear(r.out) // the rows are the sender's: do not keep them
		r.out = r.out[:0]
		return err
	})
	if err == nil && r.fields[side] == nil {
		return internal("the shards did not describe %s's columns", r.op.name())
	}
	return err
}

// describe takes one side's columns and checks them against the other's.
func (r *setOpRun) describe(side int, fs []Field) error {
	if r.fields[side] != nil {
		return internal("the shards described %s's columns twice", r.op.name())
	}
	other := r.fields[1-side]
	switch {
	case r.op.Columns != nil && len(fs) != len(r.op.Columns) && side == sideLeft:
		return internal("%s's shards returned %d columns, want %d", r.op.name(), len(fs), len(r.op.Columns))
	case r.op.Columns != nil && len(fs) != len(r.op.Columns), other != nil && len(fs) != len(other):
		return &Error{Code: CodeSyntaxError, Message: fmt.Sprintf("each %s query must have the same number of columns", r.op.Kind)}
	}
	r.fields[side] = slices.Clone(fs)
	left, right := r.fields[sideLeft], r.fields[sideRight]
	if left == nil || right == nil {
		return r.keyBy(fs)
	}
	for i, l := range left {
		rt := right[i]
		if l.DataTypeOID != rt.DataTypeOID {
			e := Unsupported("%s of column %s of types %s and %s across shards is not supported", r.op.name(), r.column(i), typeName(l.DataTypeOID), typeName(rt.DataTypeOID))
			e.Hint = "Cast both sides to one type."
			return e
		}
		if l.Format != rt.Format {
			return Unsupported("%s of column %s in formats %d and %d across shards is not supported", r.op.name(), r.column(i), l.Format, rt.Format)
		}
	}
	return r.sendFields()
}

// column names output column i for messages: as the statement wrote it,
// else as the first side described it.
func (r *setOpRun) column(i int) string {
	if i < len(r.op.Columns) {
		return r.op.Columns[i]
	}
	for _, fs := range r.fields {
		if i < len(fs) {
			return fs[i].Name
		}
	}
	return strconv.Itoa(i + 1)
}

// keyBy prepares the keys of the columns fs, the first side's.
func (r *setOpRun) keyBy(fs []Field) error {
	if r.op.Kind == SetUnion && r.op.All {
		return nil
	}
	for i, f := range fs {
		k, err := distinctKey(r.op.name()+" "+r.column(i), f.DataTypeOID, f.Format, r.x)
		if err != nil {
			return err
		}
		r.keys = append(r.keys, k)
		r.types = append(r.types, typeName(f.DataTypeOID))
	}
	return nil
}

// sendFields sends the output columns, once: Left's, with a type modifier
// of -1 where Right's is known and differs.
func (r *setOpRun) sendFields() error {
	if r.sent {
		return nil
	}
	r.sent = true
	fs := slices.Clone(r.fields[sideLeft])
	right := r.fields[sideRight]
	for i := range fs {
		// A set operation's columns are no table's, whichever arm
		// gave them.
		fs[i].TableOID, fs[i].TableAttributeNumber = 0, 0
		if right != nil && right[i].TypeModifier != fs[i].TypeModifier {
			fs[i].TypeModifier = -1
		}
	}
	return r.emit(&Batch{Fields: fs})
}

// union passes on a row of either side the first time it is seen.
func (r *setOpRun) union(key []byte) (bool, error) {
	if _, dup := r.counts[string(key)]; dup {
		return false, nil
	}
	return true, r.hold(key, 0, "the distinct rows of a UNION across shards take")
}

// count counts a row of Right.
func (r *setOpRun) count(key []byte) (bool, error) {
	if n, ok := r.counts[string(key)]; ok {
		r.counts[string(key)] = n + 1
		return false, nil
	}
	return false, r.hold(key, 1, "counting the rows of the right side of "+r.op.name()+" across shards takes")
}

// decide passes on a row of Left or not, against Right's counts.
func (r *setOpRun) decide(key []byte) (bool, error) {
	n, found := r.counts[string(key)]
	switch {
	case r.op.Kind == SetIntersect && r.op.All:
		if n > 0 {
			r.counts[string(key)] = n - 1
		}
		return n > 0, nil
	case r.op.Kind == SetIntersect:
		if n > 0 {
			r.counts[string(key)] = 0 // passed on: once is enough
		}
		return n > 0, nil
	case r.op.All: // EXCEPT ALL
		if n > 0 {
			r.counts[string(key)] = n - 1
		}
		return n == 0, nil
	}
	// EXCEPT: a key found is Right's or one passed on already.
	if found {
		return false, nil
	}
	return true, r.hold(key, 0, "the distinct rows of the left side of EXCEPT across shards take")
}

// hold remembers key with count n, or fails with 53200 when that takes the
// keys held past the limit; held says what holds them, for the message.
func (r *setOpRun) hold(key []byte, n int, held string) error {
	if r.held += len(key) + setOpEntryBytes; r.held > r.limit {
		return outOfMemory(held, r.limit, "Narrow the statement")
	}
	r.counts[string(key)] = n
	return nil
}

// queryMemory is the custom setting that bounds what one engine operator
// of a statement holds. Its bounds, in kB, are work_mem's.
const (
	queryMemory        = "shardgate.query_memory"
	defaultQueryMemory = 256 << 20 // bytes
	minQueryMemory     = 64
	maxQueryMemory     = math.MaxInt32
)

const (
	codeInvalidParameterValue = "22023"
	codeOutOfMemory           = "53200"
)

// memoryUnits are the units of a memory setting, largest first, with
// their size in kB.
var memoryUnits = []struct {
	name string
	kB   float64
}{{"TB", 1 << 30}, {"GB", 1 << 20}, {"MB", 1 << 10}, {"kB", 1}, {"B", 1.0 / 1024}}

// memoryLimit returns how many bytes an operator that holds rows (Sort,
// HashDistinct, SetOp) may hold for one statement: the session's
// shardgate.query_memory, read as Postgres reads work_mem — kB, unless a
// unit (B, kB, MB, GB, TB, case-sensitive) follows the number — and
// 256 MiB when the session did not set it. A value Postgres would refuse
// for work_mem fails with 22023.
func memoryLimit(s Settings) (int, error) {
	v := s.Setting(queryMemory)
	// Settings reads SET ... TO DEFAULT as the word.
	if v == "" || strings.EqualFold(v, "default") {
		return defaultQueryMemory, nil
	}
	kB, ok := parseMemory(v)
	if !ok || kB > maxQueryMemory {
		e := &Error{Code: codeInvalidParameterValue, Message: fmt.Sprintf("invalid value for parameter \"%s\": \"%s\"", queryMemory, v)}
		e.Hint = `Valid units for this parameter are "B", "kB", "MB", "GB", and "TB".`
		if ok {
			e.Hint = "Value exceeds integer range."
		}
		return 0, e
	}
	if kB < minQueryMemory {
		return 0, &Error{Code: codeInvalidParameterValue,
			Message: fmt.Sprintf("%.0f kB is outside the valid range for parameter \"%s\" (%d kB .. %d kB)", kB, queryMemory, minQueryMemory, maxQueryMemory)}
	}
	return int(kB) << 10, nil
}

// parseMemory reads a memory setting into kB, rounded as Postgres's
// parse_int rounds: a number (an integer, decimal, octal with a leading 0
// or hex with 0x; or a decimal fraction with an optional exponent), then
// optionally a unit, spaces allowed around both.
func parseMemory(v string) (kB float64, ok bool) {
	const space = " \t\n\v\f\r"
	s := strings.TrimLeft(v, space)
	n, fraction := numberPrefix(s)
	if n == 0 {
		return 0, false
	}
	if fraction {
		f, err := strconv.ParseFloat(s[:n], 64)
		if err != nil {
			return 0, false
		}
		kB = f
	} else {
		i, err := strconv.ParseInt(s[:n], 0, 64)
		if err != nil {
			return 0, false
		}
		kB = float64(i)
	}
	if unit := strings.Trim(s[n:], space); unit != "" {
		i := 0
		for i < len(memoryUnits) && memoryUnits[i].name != unit {
			i++
		}
		if i == len(memoryUnits) {
			return 0, false
		}
		// A fraction of a unit is rounded to the next smaller unit
		// first: 1.0001GB is 1024MB.
		kB *= memoryUnits[i].kB
		if i+1 < len(memoryUnits) {
			next := memoryUnits[i+1].kB
			kB = math.RoundToEven(kB/next) * next
		}
	}
	return math.RoundToEven(kB), true
}

// numberPrefix returns the length of the number s starts with, and whether
// it is written as a fraction (a point or an exponent) rather than an
// integer.
func numberPrefix(s string) (n int, fraction bool) {
	digits := func(i int, hex bool) int {
		for i < len(s) && ('0' <= s[i] && s[i] <= '9' || hex && strings.IndexByte("abcdefABCDEF", s[i]) >= 0) {
			i++
		}
		return i
	}
	i := 0
	if i < len(s) && (s[i] == '+' || s[i] == '-') {
		i++
	}
	if strings.HasPrefix(s[i:], "0x") || strings.HasPrefix(s[i:], "0X") {
		if end := digits(i+2, true); end > i+2 {
			return end, false
		}
	}
	start := i
	i = digits(i, false)
	whole := i > start
	if i < len(s) && s[i] == '.' {
		if end := digits(i+1, false); whole || end > i+1 {
			i, fraction = end, true
		}
	}
	if i == start {
		return 0, false
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		j := i + 1
		if j < len(s) && (s[j] == '+' || s[j] == '-') {
			j++
		}
		if end := digits(j, false); end > j {
			i, fraction = end, true
		}
	}
	return i, fraction
}

// outOfMemory is the error of an operator whose held rows pass the
// session's limit: held says what holds them ("sorting ... takes"), hint
// how to need less.
func outOfMemory(held string, limit int, hint string) *Error {
	return &Error{Code: codeOutOfMemory,
		Message: fmt.Sprintf("out of memory: %s more than %s in the gateway", held, byteSize(limit)),
		Hint:    hint + ", or raise the limit with SET " + queryMemory + "."}
}

// describing is an Executor whose statements always describe their
// columns.
type describing struct{ Executor }

// Query implements Executor.
func (d describing) Query(ctx context.Context, shard string, q Query, emit func(*Batch) error) (Tag, error) {
	q.Describe = true
	return d.Executor.Query(ctx, shard, q, emit)
}
