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
	// In the fields' declared order (Range's is undefined), so that what
	// a walk finds comes in the same order every time.
	fields := m.Descriptor().Fields()
	for i := 0; i < fields.Len(); i++ {
		fd := fields.Get(i)
		if fd.Message() == nil || fd.IsMap() || !m.Has(fd) {
			continue
		}
		v := m.Get(fd)
		if fd.IsList() {
			l := v.List()
			for i := 0; i < l.Len(); i++ {
				walkReflect(l.Get(i).Message(), visit)
			}
			continue
		}
		walkReflect(v.Message(), visit)
	}
}

// isPlainSelect reports whether s is a query level of its own rather than a
// set operation (UNION, INTERSECT, EXCEPT) over two others.
func isPlainSelect(s *pg_query.SelectStmt) bool {
	return s.Op == pg_query.SetOperation_SET_OPERATION_UNDEFINED || s.Op == pg_query.SetOperation_SETOP_NONE
}

// rewrite returns n with each node for which replace returns another
// replaced by it, not looking below a replaced node. n itself changes.
func rewrite(n *pg_query.Node, replace func(*pg_query.Node) *pg_query.Node) *pg_query.Node {
	if r := replace(n); r != nil {
		return r
	}
	rewriteBelow(n.ProtoReflect(), replace)
	return n
}

func rewriteBelow(m protoreflect.Message, replace func(*pg_query.Node) *pg_query.Node) {
	type change struct {
		fd    protoreflect.FieldDescriptor
		index int // in a list, else -1
		to    *pg_query.Node
	}
	var changes []change
	visit := func(fd protoreflect.FieldDescriptor, index int, child protoreflect.Message) {
		if node, ok := child.Interface().(*pg_query.Node); ok {
			if r := replace(node); r != nil {
				changes = append(changes, change{fd, index, r})
				return
			}
		}
		rewriteBelow(child, replace)
	}
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		if fd.Message() == nil || fd.IsMap() {
			return true
		}
		if fd.IsList() {
			for i := 0; i < v.List().Len(); i++ {
				visit(fd, i, v.List().Get(i).Message())
			}
			return true
		}
		visit(fd, -1, v.Message())
		return true
	})
	// Set after Range: a message must not change while it is ranged over.
	for _, c := range changes {
		v := protoreflect.ValueOfMessage(c.to.ProtoReflect())
		if c.index >= 0 {
			m.Mutable(c.fd).List().Set(c.index, v)
		} else {
			m.Set(c.fd, v)
		}
	}
}

// starTarget is a select list's *.
func starTarget() *pg_query.Node {
	return pg_query.MakeResTargetNodeWithVal(pg_query.MakeColumnRefNode([]*pg_query.Node{pg_query.MakeAStarNode()}, -1), -1)
}
