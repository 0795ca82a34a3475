package planner

import (
	"reflect"
	"strconv"
	"strings"

	"github.com/shardgate/shardgate/planner/engine"
	"github.com/shardgate/shardgate/vschema"
)

// A shaped plan carries a multi-shard plan over to texts that differ only in
// literals. The text is planned once more with each literal replaced by a
// marker value of its class that nothing else in a plan can hold; a plan
// for other literals is that plan with the markers' values replaced by the
// new ones, wherever the planner put them (rewritten SQL, keys, counts).
// The cache keeps it only if it gives back exactly the plan of the text it
// was made from: a plan that depends on a literal's value (an ORDER BY
// position, a LIMIT the shards get as offset+count) does not, and is
// planned each time.
type shaped struct {
	stmts []*Statement // the plan of the marked text
	marks []literal    // the markers' tokens in the marked text
}

// markerText returns the marker of literal i of class c, as it is written in
// a statement.
func markerText(i int, c byte) string {
	switch c {
	case classInt:
		return strconv.Itoa(markerInt + i)
	case classBigInt:
		return strconv.FormatInt(markerBigInt+int64(i), 10)
	}
	return "'shardgate_marker_" + strconv.Itoa(i) + "_'"
}

// Marker values: integers of their class that no statement writes by chance.
const (
	markerInt    = 2147001000 // fits int4, the class of small integers
	markerBigInt = 9007199254740993
)

// shapedOf makes the shaped plan of sql, whose plan is stmts, or returns nil.
func shapedOf(plan func(string) ([]*Statement, error), sql string, lits []literal, stmts []*Statement) *shaped {
	if len(lits) == 0 || len(lits) > 1000 {
		return nil
	}
	var b strings.Builder
	marks := make([]literal, len(lits))
	last := 0
	for i, l := range lits {
		b.WriteString(sql[last:l.start])
		m := markerText(i, l.class)
		marks[i] = literal{start: b.Len(), end: b.Len() + len(m), class: l.class}
		b.WriteString(m)
		last = l.end
	}
	b.WriteString(sql[last:])
	marked, err := plan(b.String())
	if err != nil {
		return nil
	}
	s := &shaped{stmts: marked, marks: marks}
	if again, ok := s.apply(sql, lits); !ok || !reflect.DeepEqual(again, stmts) {
		return nil
	}
	return s
}

// apply returns the plan of sql, whose literals are lits.
func (s *shaped) apply(sql string, lits []literal) ([]*Statement, bool) {
	r := &substitution{texts: make([][2]string, len(lits)), ints: map[int64]int64{}, keys: map[int]int{}}
	for i, l := range lits {
		text := sql[l.start:l.end]
		marker := markerText(i, l.class)
		switch l.class {
		case classInt:
			v, _ := strconv.ParseInt(text, 10, 32)
			if strconv.FormatInt(v, 10) != text {
				// 007: a deparsed plan prints 7, the client's text 007.
				return nil, false
			}
			r.ints[int64(markerInt+i)] = v
		case classBigInt:
			r.ints[markerBigInt+int64(i)] = 0 // no plan may count with it
		case classString:
			// The marker is no integer and no uuid, so it never fixed an
			// integer or uuid sharding column; a value that is one might.
			v := strings.ReplaceAll(text[1:len(text)-1], "''", "'")
			for _, probe := range keyProbes {
				if _, ok := probe.KeyspaceID(v); ok {
					return nil, false
				}
			}
		}
		r.texts[i] = [2]string{marker, text}
		r.keys[s.marks[i].start] = i
	}
	r.sql, r.lits = sql, lits
	out := r.value(reflect.ValueOf(s.stmts))
	if r.failed {
		return nil, false
	}
	return out.Interface().([]*Statement), true
}

// keyProbes read a string as the integer and uuid sharding columns do.
var keyProbes = []*vschema.Table{{Type: vschema.Int}, {Type: vschema.UUID}}

// substitution replaces the markers of a shaped plan by a text's literals.
type substitution struct {
	sql    string
	lits   []literal
	texts  [][2]string     // marker, literal
	ints   map[int64]int64 // marker value -> value
	keys   map[int]int     // marker's offset -> literal
	failed bool            // a key's new value routes nowhere
}

var (
	keyType       = reflect.TypeFor[engine.Key]()
	targetType    = reflect.TypeFor[engine.Target]()
	keyTypesType  = reflect.TypeFor[*engine.KeyTypes]()
	enginePackage = keyType.PkgPath()
	plannerPkg    = reflect.TypeFor[Statement]().PkgPath()
)

// value returns a copy of v with the markers replaced, sharing what is not
// the planner's or the engine's (tables, vschemas).
func (r *substitution) value(v reflect.Value) reflect.Value {
	t := v.Type()
	switch v.Kind() {
	case reflect.String:
		out := reflect.New(t).Elem()
		out.SetString(r.text(v.String()))
		return out
	case reflect.Int, reflect.Int32, reflect.Int64:
		if n, ok := r.ints[v.Int()]; ok {
			out := reflect.New(t).Elem()
			out.SetInt(n)
			return out
		}
		return v
	case reflect.Pointer:
		if v.IsNil() || !ours(t.Elem()) || t == keyTypesType {
			// What a merge learns of its keys' types holds for
			// every literal: the plans share it.
			return v
		}
		out := reflect.New(t.Elem())
		out.Elem().Set(r.value(v.Elem()))
		return out
	case reflect.Interface:
		if v.IsNil() {
			return v
		}
		out := reflect.New(t).Elem()
		out.Set(r.value(v.Elem()))
		return out
	case reflect.Slice:
		if v.IsNil() {
			return v
		}
		out := reflect.MakeSlice(t, v.Len(), v.Len())
		for i := range v.Len() {
			out.Index(i).Set(r.value(v.Index(i)))
		}
		return out
	case reflect.Map:
		if v.IsNil() {
			return v
		}
		out := reflect.MakeMapWithSize(t, v.Len())
		for it := v.MapRange(); it.Next(); {
			out.SetMapIndex(it.Key(), r.value(it.Value()))
		}
		return out
	case reflect.Struct:
		if t == keyType {
			return r.key(v.Interface().(engine.Key))
		}
		out := reflect.New(t).Elem()
		out.Set(v) // unexported fields as they are
		for i := range t.NumField() {
			if t.Field(i).IsExported() {
				out.Field(i).Set(r.value(v.Field(i)))
			}
		}
		if t == targetType && out.Interface().(engine.Target).Single() != v.Interface().(engine.Target).Single() {
			// Keys that now fall together (or apart) make another plan:
			// one shard's, without a multi-shard part.
			r.failed = true
		}
		return out
	}
	return v
}

// ours reports whether values of t are the planner's or the engine's.
func ours(t reflect.Type) bool {
	return t.PkgPath() == enginePackage || t.PkgPath() == plannerPkg
}

// key routes a literal key by its new value.
func (r *substitution) key(k engine.Key) reflect.Value {
	i, ok := r.keys[k.At]
	if k.Param != 0 || k.Table == nil || !ok {
		return reflect.ValueOf(k)
	}
	l := r.lits[i]
	nk, ok := shardKey(k.Table, constant(r.sql[l.start:l.end], l))
	if !ok {
		r.failed = true
	}
	return reflect.ValueOf(nk)
}

// text replaces every marker in s that stands alone (not part of a longer
// number or word).
func (r *substitution) text(s string) string {
	if !strings.Contains(s, "2147") && !strings.Contains(s, "9007") && !strings.Contains(s, "shardgate_marker_") {
		return s
	}
	for _, pair := range r.texts {
		marker, text := pair[0], pair[1]
		var b strings.Builder
		last := 0
		for i := 0; ; {
			j := strings.Index(s[i:], marker)
			if j < 0 {
				break
			}
			j += i
			end := j + len(marker)
			if (j == 0 || !isIdentChar(s[j-1]) && s[j-1] != '.') && (end == len(s) || !isIdentChar(s[end]) && s[end] != '.') {
				b.WriteString(s[last:j])
				b.WriteString(text)
				last = end
			}
			i = end
		}
		if last > 0 {
			b.WriteString(s[last:])
			s = b.String()
		}
	}
	return s
}
