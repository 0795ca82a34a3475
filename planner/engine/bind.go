package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/shardgate/shardgate/vschema"
)

// Bind runs a statement's uncorrelated subqueries over sharded tables
// first, each as a plan of its own over every shard it needs, and binds
// their results into the statement as parameters after the client's: a
// subquery run inside each shard's statement would see that shard's rows
// only. Input is the statement with each subquery replaced by its
// parameter ($Param), a value, a bool (EXISTS) or an array (IN, ANY,
// ALL, ARRAY()).
type Bind struct {
	Subqueries []Subquery
	Input      Primitive
}

// SubqueryKind is what a subquery gives the statement.
type SubqueryKind int

// The kinds of subqueries Bind runs.
const (
	// SubqueryValue is a scalar subquery: its one value, NULL for no
	// row, an error for more than one.
	SubqueryValue SubqueryKind = iota + 1
	// SubqueryExists is EXISTS: whether it returns a row.
	SubqueryExists
	// SubqueryArray is the values of its one column, in its order, as an
	// array: for x IN (...), x op ANY/ALL (...) and ARRAY(...).
	SubqueryArray
	// SubqueryRows is its rows, as a relation in the statement's FROM: a
	// derived table or WITH query whose rows span shards, or the outer
	// side of a join the gateway runs (see Subquery.Partition).
	SubqueryRows
)

func (k SubqueryKind) String() string {
	switch k {
	case SubqueryValue:
		return "value"
	case SubqueryExists:
		return "exists"
	case SubqueryArray:
		return "array"
	case SubqueryRows:
		return "rows"
	case SequenceNext:
		return "nextval"
	case SequenceCurrent:
		return "currval"
	case SequenceLast:
		return "lastval"
	case SequenceSet:
		return "setval"
	}
	return fmt.Sprintf("SubqueryKind(%d)", int(k))
}

// Subquery is one subquery Bind runs.
type Subquery struct {
	Plan  Primitive
	Kind  SubqueryKind
	Param int // its parameter in the statement, 1-based
	SQL   string
	// Columns, for SubqueryRows, rename its first columns (a derived
	// table's column aliases).
	Columns []string
	// Collations, for SubqueryRows, says its last column is not one of
	// its rows' but names the collations of their columns that have
	// one of their own (a JSON object by column name, the same in every
	// row): the relation's columns get them back.
	Collations bool
	// Summed, for SubqueryRows, names the columns the statement adds up
	// (sum, avg, ...): such a column of a float type is refused (finally),
	// as its sum's last digits depend on the order its rows came in.
	Summed []string
	// Rounds, for a partitioned SubqueryRows that is a statement's only
	// subquery, says the statement answers row by row of the relation (no
	// aggregate, DISTINCT, window or ORDER BY over it): outside a
	// transaction Bind runs it once per round of rows as they come, so
	// the gateway holds one round, not the whole table.
	Rounds bool
	// Partition, for SubqueryRows, sends each shard only the rows whose
	// column Partition.Column would be stored there as Partition.Table's
	// sharding column: the rows of a join's outer side go where the rows
	// they join live, each to one shard (those with NULL to the first), so
	// that an outer join pads each once.
	Partition *Partition
	// Sequence names the global sequence of a sequence kind (SequenceNext,
	// ...), which has no Plan; SetTo and SetCalled are setval's
	// arguments (SetCalled nil: true).
	Sequence  string
	SetTo     Arg
	SetCalled *Arg
}

// Partition says how SubqueryRows spreads its rows over shards.
type Partition struct {
	Column string
	Table  *vschema.Table
}

// The statement reads a SubqueryRows relation through two placeholders
// the planner writes, which Bind replaces with the relation once its
// columns are known: RowsFunction(n)() AS alias(RowsColumns(n)).
func RowsFunction(param int) string { return "sg_bound_rows_" + strconv.Itoa(param) }

// ValueType names the placeholder type a SubqueryValue's parameter is
// cast to: the subquery's own type, with its modifier (numeric(10,2)),
// once known, which the parameter's type alone lacks.
func ValueType(param int) string { return "sg_bound_type_" + strconv.Itoa(param) }

// PartsFunction names the placeholder of a partitioned SubqueryRows
// relation, which differs on each shard.
func PartsFunction(param int) string { return "sg_bound_parts_" + strconv.Itoa(param) }

// RowsColumns names the placeholder of a SubqueryRows relation's columns.
func RowsColumns(param int) string { return "sg_bound_columns_" + strconv.Itoa(param) }

// BoundValue is a parameter the engine binds after the client's: its text
// (nil for NULL) and its type.
type BoundValue struct {
	Text []byte
	OID  uint32
	// PerShard, when set, gives each shard its own text (a partitioned
	// SubqueryRows), "[]" for a shard it does not name.
	PerShard map[string][]byte
	// From and To replace the placeholders of a SubqueryRows relation in
	// the statement's text.
	From, To [2]string
}

var _ Primitive = (*Bind)(nil)

// Inputs implements Primitive: the subqueries' plans, then the statement.
func (b *Bind) Inputs() []Primitive {
	out := make([]Primitive, 0, len(b.Subqueries)+1)
	for _, s := range b.Subqueries {
		if s.Plan != nil {
			out = append(out, s.Plan)
		}
	}
	return append(out, b.Input)
}

// Describe implements Primitive.
func (b *Bind) Describe() string {
	parts := make([]string, len(b.Subqueries))
	for i, s := range b.Subqueries {
		parts[i] = fmt.Sprintf("$%d=%s of %q", s.Param, s.Kind, s.SQL)
		if s.Kind.isSequence() {
			parts[i] = fmt.Sprintf("$%d=%s(%q)", s.Param, s.Kind, s.Sequence)
		}
		if s.Kind == SequenceSet {
			parts[i] = fmt.Sprintf("$%d=setval(%q, %s)", s.Param, s.Sequence, s.SetTo)
			if s.SetCalled != nil {
				parts[i] = fmt.Sprintf("$%d=setval(%q, %s, %s)", s.Param, s.Sequence, s.SetTo, *s.SetCalled)
			}
		}
		if s.Rounds {
			parts[i] += " in rounds"
		}
	}
	return "Bind " + strings.Join(parts, ", ")
}

// Transactional is an Executor that knows whether its statement runs in a
// transaction block.
type Transactional interface {
	InTransaction() bool
}

// Stream implements Primitive.
func (b *Bind) Stream(ctx context.Context, x Executor, args Params, emit func(*Batch) error) (Tag, error) {
	if t, ok := x.(Transactional); ok && len(b.Subqueries) == 1 && b.Subqueries[0].Rounds && b.Subqueries[0].Partition != nil && !t.InTransaction() {
		return b.rounds(ctx, x, args, emit)
	}
	from, values, err := b.values(ctx, x, args)
	if err != nil {
		return "", err
	}
	return b.Input.Stream(ctx, boundExecutor{Executor: x, from: from, values: values}, boundParams{args, from, values}, emit)
}

// boundParams are the client's parameters followed by Bind's: a key of the
// statement may come from either (a sequence's value routes an INSERT).
type boundParams struct {
	Params
	from   int
	values []BoundValue
}

// Text implements Params.
func (p boundParams) Text(i int) (string, bool) {
	if j := i - (p.from - 1); j >= 0 && j < len(p.values) {
		v := p.values[j]
		return string(v.Text), v.Text != nil && v.PerShard == nil
	}
	if p.Params == nil {
		return "", false
	}
	return p.Params.Text(i)
}

// rounds runs the statement once per round of its relation's rows while
// they come, each shard's part of each round on the shard of its rows:
// the subquery's shards hold their connections meanwhile, which is why a
// transaction, with one connection per shard, never runs in rounds.
func (b *Bind) rounds(ctx context.Context, x Executor, args Params, emit func(*Batch) error) (Tag, error) {
	limit, err := memoryLimit(x)
	if err != nil {
		return "", err
	}
	s := &b.Subqueries[0]
	var (
		total     Tag
		described bool
	)
	run := func(v BoundValue) error {
		tag, err := b.Input.Stream(ctx, boundExecutor{Executor: x, from: s.Param, values: []BoundValue{v}}, args, func(batch *Batch) error {
			if batch.Fields != nil {
				if described {
					return nil
				}
				described = true
			}
			return emit(batch)
		})
		if err != nil {
			return err
		}
		total, err = total.plus(tag)
		return err
	}
	last, err := s.rows(ctx, x, args, limit, run)
	if err != nil {
		return "", err
	}
	if err := run(last); err != nil {
		return "", err
	}
	return total, nil
}

// values runs the subqueries, returning the parameter number of the first
// and every one's value.
func (b *Bind) values(ctx context.Context, x Executor, args Params) (int, []BoundValue, error) {
	if len(b.Subqueries) == 0 {
		return 0, nil, internal("Bind without subqueries")
	}
	limit, err := memoryLimit(x)
	if err != nil {
		return 0, nil, err
	}
	from := b.Subqueries[0].Param
	values := make([]BoundValue, len(b.Subqueries))
	held := 0
	for i, s := range b.Subqueries {
		if s.Param != from+i {
			return 0, nil, internal("Bind's parameters are not consecutive")
		}
		v, err := s.run(ctx, x, args, limit-held)
		if err != nil {
			return 0, nil, err
		}
		held += len(v.Text)
		values[i] = v
	}
	return from, values, nil
}

// errEnough stops a subquery whose answer is known.
var errEnough = errors.New("the subquery's answer is known")

// run runs one subquery for its value, holding at most limit bytes.
func (s *Subquery) run(ctx context.Context, x Executor, args Params, limit int) (BoundValue, error) {
	if s.Kind.isSequence() {
		return s.sequenceValue(ctx, x, args)
	}
	if s.Kind == SubqueryRows {
		return s.rows(ctx, x, args, limit, nil)
	}
	var (
		field *Field
		rows  int
		value []byte
		null  bool
		array strings.Builder
	)
	_, err := s.Plan.Stream(ctx, internalExecutor{x}, args, func(b *Batch) error {
		if b.Fields != nil {
			if field != nil {
				return nil
			}
			if len(b.Fields) != 1 && s.Kind != SubqueryExists {
				return &Error{Code: CodeSyntaxError, Message: "subquery must return only one column"}
			}
			f := b.Fields[0]
			field = &f
			if (f.DataTypeOID == oidFloat4 || f.DataTypeOID == oidFloat8) && !exactFloatText(x) {
				e := Unsupported("a subquery of type %s across shards is not supported with extra_float_digits %q: its value would not print exactly", typeName(f.DataTypeOID), x.Setting("extra_float_digits"))
				e.Hint = "Set extra_float_digits to 1 or more."
				return e
			}
			return nil
		}
		for _, row := range b.Rows {
			rows++
			switch s.Kind {
			case SubqueryExists:
				return errEnough
			case SubqueryValue:
				if rows > 1 {
					return &Error{Code: "21000", Message: "more than one row returned by a subquery used as an expression"}
				}
				value, null = append([]byte{}, row[0]...), row[0] == nil // empty text is not NULL
			case SubqueryArray:
				if rows > 1 {
					array.WriteByte(',')
				}
				arrayElement(&array, row[0])
				if array.Len() > limit {
					return outOfMemory("holding the values of a subquery takes", limit, "Make the subquery return fewer values")
				}
			}
		}
		return nil
	})
	if err != nil && !errors.Is(err, errEnough) {
		return BoundValue{}, err
	}
	if s.Kind == SubqueryExists {
		return BoundValue{Text: []byte(strconv.FormatBool(rows > 0)), OID: oidBool}, nil
	}
	if field == nil {
		return BoundValue{}, internal("subquery %q came without its columns", s.SQL)
	}
	if s.Kind == SubqueryValue {
		v := BoundValue{Text: value, OID: field.DataTypeOID, From: [2]string{"::" + ValueType(s.Param)}}
		if rows == 0 || null {
			v.Text = nil
		}
		if t, ok := literalType(*field); ok && field.TypeModifier >= 0 {
			v.To[0] = "::" + t
		}
		return v, nil
	}
	oid, ok := arrayTypes[field.DataTypeOID]
	if !ok {
		return BoundValue{}, Unsupported("a subquery returning type %s compared across shards is not supported yet", typeName(field.DataTypeOID))
	}
	return BoundValue{Text: []byte("{" + array.String() + "}"), OID: oid}, nil
}

// rows runs a SubqueryRows subquery: its rows as a JSON array of objects,
// which jsonb_to_recordset reads back through each column type's input,
// so every value is exactly the one the shard printed. With round set,
// every rowsRound bytes of rows go to round as they come, and the value
// returned holds the rest.
func (s *Subquery) rows(ctx context.Context, x Executor, args Params, limit int, round func(BoundValue) error) (BoundValue, error) {
	var (
		fields     []Field
		names      []string
		part       = -1 // the column that partitions the rows
		all        []byte
		byShard    = map[string][]byte{}
		held       int
		collations map[string]string
	)
	topo := x.Topology()
	_, err := s.Plan.Stream(ctx, internalExecutor{x}, args, func(b *Batch) error {
		if b.Fields != nil {
			if fields != nil {
				return nil
			}
			fields = append([]Field(nil), b.Fields...)
			if s.Collations {
				if len(fields) == 0 {
					return internal("the rows of %q lack their collations", s.SQL)
				}
				fields = fields[:len(fields)-1]
			}
			for i, f := range fields {
				name := f.Name
				if i < len(s.Columns) {
					name = s.Columns[i]
				}
				for _, n := range names {
					if n == name {
						return Unsupported("a subquery whose rows span shards with two columns named %q is not supported; give them other names", name)
					}
				}
				names = append(names, name)
				if s.Partition != nil && f.Name == s.Partition.Column {
					part = i
				}
				if (f.DataTypeOID == oidFloat4 || f.DataTypeOID == oidFloat8) && slices.Contains(s.Summed, f.Name) {
					e := Unsupported("a statement that adds up values over rows of several shards with a column of type %s (%s) is not supported: its last digits depend on the order the rows are added in; cast to numeric", typeName(f.DataTypeOID), name)
					e.Final = true
					return e
				}
				if (f.DataTypeOID == oidFloat4 || f.DataTypeOID == oidFloat8) && !exactFloatText(x) {
					e := Unsupported("a subquery whose rows span shards with a column of type %s is not supported with extra_float_digits %q: its values would not print exactly", typeName(f.DataTypeOID), x.Setting("extra_float_digits"))
					e.Hint = "Set extra_float_digits to 1 or more."
					return e
				}
			}
			if s.Partition != nil && part < 0 {
				return internal("the rows of %q lack join column %s", s.SQL, s.Partition.Column)
			}
			if s.Partition != nil && !hashesLike(fields[part].DataTypeOID, s.Partition.Table.Type) {
				// char(n) prints trailing spaces its comparison with text
				// drops, say: its value would not hash as the key it equals.
				return Unsupported("joining %s.%s with a column of type %s across shards is not supported: its values do not hash as the sharding column's", s.Partition.Table.Name, s.Partition.Table.Column, typeName(fields[part].DataTypeOID))
			}
			return nil
		}
		if fields == nil {
			return internal("subquery %q came without its columns", s.SQL)
		}
		for _, row := range b.Rows {
			if s.Collations {
				if len(row) != len(fields)+1 {
					return internal("a row of %q has %d values for %d columns", s.SQL, len(row), len(fields)+1)
				}
				if collations == nil {
					collations = map[string]string{}
					if v := row[len(fields)]; v != nil {
						if err := json.Unmarshal(v, &collations); err != nil {
							return internal("the collations of %q: %v", s.SQL, err)
						}
					}
				}
				row = row[:len(fields)]
			}
			obj, err := jsonRow(names, fields, row)
			if err != nil {
				return err
			}
			held += len(obj) + 1
			if held > limit {
				return outOfMemory("holding the rows of a subquery whose rows span shards takes", limit, "Narrow the subquery")
			}
			if round != nil && held >= rowsRound {
				v, err := s.value(fields, names, collations, all, byShard)
				if err != nil {
					return err
				}
				if err := round(v); err != nil {
					return err
				}
				all, byShard, held = nil, map[string][]byte{}, 0
			}
			if s.Partition == nil {
				all = appendJSONElement(all, obj)
				continue
			}
			shard := topo.Shards()[0]
			if v := row[part]; v != nil {
				h, ok := s.Partition.Table.KeyspaceID(string(v))
				if !ok {
					return Unsupported("joining %s.%s with value %q across shards is not supported: it is not a value of the sharding column's type", s.Partition.Table.Name, s.Partition.Table.Column, v)
				}
				shard = shardList(topo, h)[0]
			}
			byShard[shard] = appendJSONElement(byShard[shard], obj)
		}
		return nil
	})
	if err != nil {
		return BoundValue{}, err
	}
	if fields == nil {
		return BoundValue{}, internal("subquery %q came without its columns", s.SQL)
	}
	return s.value(fields, names, collations, all, byShard)
}

// rowsRound is how many bytes of a joined table's rows one round of a
// statement Bind runs in rounds reads (see Subquery.Rounds); a variable
// for tests.
var rowsRound = 1 << 20

// value is a SubqueryRows relation of the rows gathered: all of them, or
// each shard's.
func (s *Subquery) value(fields []Field, names []string, collations map[string]string, all []byte, byShard map[string][]byte) (BoundValue, error) {
	defs, cols := make([]string, len(fields)), make([]string, len(fields))
	for i, f := range fields {
		t, ok := literalType(f)
		if !ok {
			return BoundValue{}, Unsupported("a subquery whose rows span shards with column %s of type %s is not supported yet", names[i], typeName(f.DataTypeOID))
		}
		name := QuoteIdent(names[i])
		defs[i] = name + " pg_catalog.text"
		cols[i] = "sg_r." + name + "::" + t
		if c, ok := collations[fields[i].Name]; ok && c != `"default"` && collatable(fields[i].DataTypeOID) {
			if !collationName.MatchString(c) {
				return BoundValue{}, internal("a shard named the collation of %s %q", names[i], c)
			}
			cols[i] += " COLLATE " + c
		}
		cols[i] += " AS " + name
	}
	fn := RowsFunction(s.Param)
	if s.Partition != nil {
		fn = PartsFunction(s.Param)
	}
	// Every value comes as text and is cast to its type, so that it is
	// read by the type's own input, as it was printed.
	v := BoundValue{OID: oidJsonb,
		From: [2]string{fn + "()", "(" + RowsColumns(s.Param) + ")"},
		To: [2]string{"(SELECT " + strings.Join(cols, ", ") + " FROM pg_catalog.jsonb_to_recordset($" + strconv.Itoa(s.Param) + ") AS sg_r(" +
			strings.Join(defs, ", ") + "))", ""}}
	if s.Partition == nil {
		v.Text = closeJSONArray(all)
		return v, nil
	}
	v.PerShard = map[string][]byte{}
	for shard, rows := range byShard {
		v.PerShard[shard] = closeJSONArray(rows)
	}
	return v, nil
}

// hashesLike reports whether a value of type oid, as it prints, hashes
// like the sharding-column value of type typ it equals.
func hashesLike(oid uint32, typ vschema.ColumnType) bool {
	switch typ {
	case vschema.Int:
		return oid == oidInt2 || oid == oidInt4 || oid == oidInt8
	case vschema.Text:
		return oid == oidText || oid == oidVarchar
	case vschema.UUID:
		return oid == oidUUID
	}
	return false
}

// jsonRow writes one row as a JSON object: values as strings, NULL as
// null.
func jsonRow(names []string, fields []Field, row [][]byte) ([]byte, error) {
	if len(row) != len(fields) {
		return nil, internal("a subquery row has %d values for %d columns", len(row), len(fields))
	}
	out := []byte{'{'}
	for i, v := range row {
		if i > 0 {
			out = append(out, ',')
		}
		key, _ := json.Marshal(names[i])
		out = append(append(out, key...), ':')
		switch {
		case v == nil:
			out = append(out, "null"...)
		default:
			if !utf8.Valid(v) {
				return nil, Unsupported("a subquery whose rows span shards is supported only in a UTF-8 client encoding")
			}
			str, _ := json.Marshal(string(v))
			out = append(out, str...)
		}
	}
	return append(out, '}'), nil
}

// appendJSONElement adds an element to a JSON array being written.
func appendJSONElement(arr, elem []byte) []byte {
	if len(arr) == 0 {
		arr = append(arr, '[')
	} else {
		arr = append(arr, ',')
	}
	return append(arr, elem...)
}

// closeJSONArray ends a JSON array being written.
func closeJSONArray(arr []byte) []byte {
	if len(arr) == 0 {
		return []byte("[]")
	}
	return append(arr, ']')
}

// arrayElement writes v, a text value, as an array element: quoted, so
// that nothing in it reads as array syntax.
func arrayElement(a *strings.Builder, v []byte) {
	if v == nil {
		a.WriteString("NULL")
		return
	}
	a.WriteByte('"')
	for _, c := range v {
		if c == '"' || c == '\\' {
			a.WriteByte('\\')
		}
		a.WriteByte(c)
	}
	a.WriteByte('"')
}

// arrayTypes maps element types to their array types.
var arrayTypes = map[uint32]uint32{
	oidBool: 1000, oidBytea: 1001, 18: 1002, oidName: 1003, oidInt2: 1005,
	oidInt4: 1007, oidText: 1009, oidOID: 1028, oidBpchar: 1014,
	oidVarchar: 1015, oidInt8: 1016, oidFloat4: 1021, oidFloat8: 1022,
	oidDate: 1182, oidTime: 1183, oidTimestamp: 1115, oidTimestamptz: 1185,
	oidInterval: 1187, oidNumeric: 1231, oidTimetz: 1270, oidUUID: 2951,
	114: 199, oidJsonb: 3807, 790: 791, oidInet: 1041, oidCidr: 651, 829: 1040,
}

// internalExecutor runs a subquery's statements for the gateway: every
// column in text and described.
type internalExecutor struct{ Executor }

// Query implements Executor.
func (e internalExecutor) Query(ctx context.Context, shard string, q Query, emit func(*Batch) error) (Tag, error) {
	q.Internal, q.Describe = true, true
	return e.Executor.Query(ctx, shard, q, emit)
}

// boundExecutor runs the statement Bind finishes: its parameters from
// from on are the subqueries' values.
type boundExecutor struct {
	Executor
	from   int
	values []BoundValue
}

// Query implements Executor.
func (e boundExecutor) Query(ctx context.Context, shard string, q Query, emit func(*Batch) error) (Tag, error) {
	if q.Values == nil && q.Params == nil {
		// The engine's own statements (Values, Params) read other
		// parameters.
		q.Bound, q.BoundFrom = e.values, e.from
		q = q.boundOn(shard)
	}
	return e.Executor.Query(ctx, shard, q, emit)
}

// replaceToken replaces each from in s that no digit follows: the
// placeholder of $1 is the start of $10's.
func replaceToken(s, from, to string) string {
	if !strings.Contains(s, from) {
		return s
	}
	var b strings.Builder
	for {
		i := strings.Index(s, from)
		if i < 0 {
			b.WriteString(s)
			return b.String()
		}
		end := i + len(from)
		b.WriteString(s[:i])
		if end < len(s) && s[end] >= '0' && s[end] <= '9' {
			b.WriteString(from)
		} else {
			b.WriteString(to)
		}
		s = s[end:]
	}
}

// boundOn returns q as it runs on shard: its bound relations in its text,
// each with that shard's rows.
func (q Query) boundOn(shard string) Query {
	var values []BoundValue
	for i, v := range q.Bound {
		if v.From[0] == "" {
			continue
		}
		if values == nil {
			values = append([]BoundValue(nil), q.Bound...)
		}
		for j, from := range v.From {
			if from != "" {
				q.SQL = replaceToken(q.SQL, from, v.To[j])
			}
		}
		if v.PerShard != nil {
			values[i].Text = v.PerShard[shard]
			if values[i].Text == nil {
				values[i].Text = []byte("[]")
			}
		}
	}
	if values != nil {
		q.Bound = values
	}
	return q
}
