package engine

import (
	"context"
	"fmt"
	"strings"
	"sync"

	"github.com/shardgate/shardgate/vschema"
)

// InsertSplit runs INSERT ... VALUES into a sharded table: each row goes to
// the shard of its sharding column's value, found when the statement runs
// (values may be parameters). When every row lands on one shard the
// statement runs there as the client wrote it; otherwise each shard gets
// an INSERT of its own rows, in their order, all shards at once.
type InsertSplit struct {
	// Query is the whole statement, for the one-shard case.
	Query Query
	// Table is the sharded table inserted into.
	Table *vschema.Table
	// Rows are the VALUES rows: each one's key and its text, "(...)".
	Rows []InsertRow
	// Prefix and Suffix surround the joined rows of a shard's own INSERT:
	// "INSERT INTO t (a, b) VALUES " and " RETURNING a", say. A shard's
	// statement keeps the client's parameter numbers; every parameter is
	// passed to every shard.
	Prefix, Suffix string
	// Refusal, when set, is why the rows may not go to several shards (a
	// volatile function would give each shard its own value).
	Refusal *Error
	// Returning is set for INSERT ... RETURNING: rows from several shards
	// come back in the order of the VALUES rows they were, as Postgres
	// returns them (an ORM pairs its objects with them so), held in the
	// gateway until every shard answered.
	Returning bool
}

// InsertRow is one row of an InsertSplit.
type InsertRow struct {
	Key Key
	SQL string
}

var _ Primitive = (*InsertSplit)(nil)

// shardRows is what one shard inserts.
type shardRows struct {
	shard string
	rows  []string
}

// split groups the rows by shard, in order of first appearance, each
// shard's rows in their order; order gives each row's group.
func (n *InsertSplit) split(topo Topology, args Params) (groups []shardRows, order []int, err error) {
	index := map[string]int{}
	for _, r := range n.Rows {
		id, null, ok := r.Key.id(args)
		if !ok {
			what := "a value its sharding function cannot read"
			if null {
				what = "NULL"
			}
			return nil, nil, Unsupported("the sharding column %s.%s got %s from parameter $%d: the row cannot be placed on a shard", n.Table.Name, n.Table.Column, what, r.Key.Param)
		}
		s := topo.ShardFor(id)
		i, seen := index[s]
		if !seen {
			i = len(groups)
			index[s] = i
			groups = append(groups, shardRows{shard: s})
		}
		groups[i].rows = append(groups[i].rows, r.SQL)
		order = append(order, i)
	}
	return groups, order, nil
}

// Stream implements Primitive.
func (n *InsertSplit) Stream(ctx context.Context, x Executor, args Params, emit func(*Batch) error) (Tag, error) {
	groups, order, err := n.split(x.Topology(), args)
	if err != nil {
		return "", err
	}
	if len(groups) == 1 {
		return x.Query(ctx, groups[0].shard, n.Query, emit)
	}
	if n.Refusal != nil {
		return "", n.Refusal
	}
	parts := make([]shardQuery, len(groups))
	for i, g := range groups {
		parts[i] = shardQuery{shard: g.shard, query: Query{SQL: n.Prefix + strings.Join(g.rows, ", ") + n.Suffix}}
	}
	if !n.Returning {
		return streamParallel(ctx, x, parts, emit)
	}
	held := &rowsByShard{Executor: x, rows: map[string][][][]byte{}}
	tag, err := streamParallel(ctx, held, parts, emit)
	if err != nil {
		return "", err
	}
	// Each shard returned its rows in their order: deal them out in the
	// order of the VALUES rows. A shard that returned fewer rows than it
	// inserted (ON CONFLICT DO NOTHING, a trigger that skipped one) does
	// not say which: the rows come shard by shard then.
	out := &Batch{}
	exact := true
	for _, g := range groups {
		exact = exact && len(held.rows[g.shard]) == len(g.rows)
	}
	if exact {
		next := make([]int, len(groups))
		for _, g := range order {
			out.Rows = append(out.Rows, held.rows[groups[g].shard][next[g]])
			next[g]++
		}
	} else {
		for _, g := range groups {
			out.Rows = append(out.Rows, held.rows[g.shard]...)
		}
	}
	if err := emit(out); err != nil {
		return "", err
	}
	return tag, nil
}

// rowsByShard keeps the rows each shard returns, passing on only their
// columns.
type rowsByShard struct {
	Executor
	mu   sync.Mutex
	rows map[string][][][]byte
}

// Query implements Executor.
func (r *rowsByShard) Query(ctx context.Context, shard string, q Query, emit func(*Batch) error) (Tag, error) {
	return r.Executor.Query(ctx, shard, q, func(b *Batch) error {
		if b.Fields != nil {
			return emit(&Batch{Fields: b.Fields})
		}
		kept := make([][][]byte, len(b.Rows))
		for i, row := range b.Rows {
			kept[i] = make([][]byte, len(row))
			for j, v := range row {
				if v != nil {
					kept[i][j] = append([]byte{}, v...)
				}
			}
		}
		r.mu.Lock()
		r.rows[shard] = append(r.rows[shard], kept...)
		r.mu.Unlock()
		return nil
	})
}

// Inputs implements Primitive.
func (n *InsertSplit) Inputs() []Primitive { return nil }

// Describe implements Primitive.
func (n *InsertSplit) Describe() string {
	keys := make([]string, len(n.Rows))
	for i, r := range n.Rows {
		keys[i] = r.Key.String()
	}
	s := fmt.Sprintf("InsertSplit %s keys(%s) sql=%q", n.Table.Name, strings.Join(keys, ", "), n.Query.SQL)
	if n.Refusal != nil {
		s += fmt.Sprintf(" multi-shard: refused (%s)", n.Refusal.Message)
	}
	return s
}

// Keys returns the keys of the rows, in order.
func (n *InsertSplit) Keys() []Key {
	keys := make([]Key, len(n.Rows))
	for i, r := range n.Rows {
		keys[i] = r.Key
	}
	return keys
}
