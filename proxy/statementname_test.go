package proxy

import (
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"testing"
)

// TestStatementNameIsFNV1a checks the hand-written hash of statementName
// against hash/fnv over the same bytes, and that what names a statement
// (text, parameter types, search_path) changes its name.
func TestStatementNameIsFNV1a(t *testing.T) {
	reference := func(sql string, oids []uint32, scope string) string {
		h := fnv.New64a()
		h.Write([]byte(sql))
		for _, o := range oids {
			_ = binary.Write(h, binary.BigEndian, o)
		}
		h.Write([]byte{0})
		h.Write([]byte(scope))
		return fmt.Sprintf("sg_%016x", h.Sum64())
	}
	cases := []struct {
		sql   string
		oids  []uint32
		scope string
	}{
		{"", nil, ""},
		{"SELECT 1", nil, ""},
		{"SELECT $1", []uint32{23}, ""},
		{"SELECT $1", []uint32{20}, ""},
		{"SELECT $1, $2", []uint32{0x01020304, 0xfffffffe}, "app, public"},
		{"SELECT abalance FROM pgbench_accounts WHERE aid = $1", []uint32{23}, "\"$user\", public"},
	}
	seen := map[string]bool{}
	for _, c := range cases {
		got, want := statementName(c.sql, c.oids, c.scope), reference(c.sql, c.oids, c.scope)
		if got != want {
			t.Errorf("statementName(%q, %v, %q) = %s, want %s", c.sql, c.oids, c.scope, got, want)
		}
		if seen[got] {
			t.Errorf("statementName(%q, %v, %q) = %s, as for an earlier case", c.sql, c.oids, c.scope, got)
		}
		seen[got] = true
	}
}
