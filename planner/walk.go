package planner

import (
	pg_query "github.com/pganalyze/pg_query_go/v6"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// walk calls visit for m and every message below it in the parse tree,
// depth first. When visit returns false, walk does not descend into that
// message's children.
func walk(m proto.Message, visit func(proto.Message) bool) {
	if m == nil {
		return
	}
	walkReflect(m.ProtoReflect(), visit)
}

func walkReflect(m protoreflect.Message, visit func(proto.Message) bool) {
	if !m.IsValid() || !visit(m.Interface()) {
		return
	}
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		if fd.Message() == nil || fd.IsMap() {
			return true
		}
		if fd.IsList() {
			l := v.List()
			for i := 0; i < l.Len(); i++ {
				walkReflect(l.Get(i).Message(), visit)
			}
			return true
		}
		walkReflect(v.Message(), visit)
		return true
	})
}

// isPlainSelect reports whether s is a query level of its own rather than a
// set operation (UNION, INTERSECT, EXCEPT) over two others.
func isPlainSelect(s *pg_query.SelectStmt) bool {
	return s.Op == pg_query.SetOperation_SET_OPERATION_UNDEFINED || s.Op == pg_query.SetOperation_SETOP_NONE
}
