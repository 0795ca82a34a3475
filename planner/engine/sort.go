package engine

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strings"
)

// Sort orders a result the shards could not order for the gateway — the
// groups of an aggregate by an aggregate's value — by holding every row,
// up to the session's shardgate.query_memory (memoryLimit), past which the
// statement fails with 53200. Keys are output columns (Ordinal); their
// collations come in hidden columns that Input appends and Sort takes away.
type Sort struct {
	Input  Primitive
	Keys   []SortKey
	Hidden int
}

var _ Primitive = (*Sort)(nil)

// Inputs implements Primitive.
func (s *Sort) Inputs() []Primitive { return []Primitive{s.Input} }

// Describe implements Primitive.
func (s *Sort) Describe() string {
	keys := make([]string, len(s.Keys))
	for i, k := range s.Keys {
		keys[i] = k.Text
		if k.Desc {
			keys[i] += " DESC"
		}
	}
	return fmt.Sprintf("Sort by(%s)", strings.Join(keys, ", "))
}

// Stream implements Primitive.
func (s *Sort) Stream(ctx context.Context, x Executor, args Params, emit func(*Batch) error) (Tag, error) {
	limit, err := memoryLimit(x)
	if err != nil {
		return "", err
	}
	var (
		fields  []Field
		visible int
		rows    [][][]byte
		size    int
		cmps    []compareFunc
	)
	tag, err := s.Input.Stream(ctx, x, args, func(b *Batch) error {
		if b.Fields != nil {
			fields = append([]Field(nil), b.Fields...)
			visible = len(fields) - s.Hidden
			for _, k := range s.Keys {
				f := fields[k.Ordinal-1]
				cmp, err := comparator(k.clause(), f.DataTypeOID, f.Format, x)
				if err != nil {
					return err
				}
				if collatable(f.DataTypeOID) && k.Collation < 0 {
					return Unsupported("%s across shards is not supported: shardgate cannot tell its collation", k.clause())
				}
				cmps = append(cmps, cmp)
			}
			return emit(&Batch{Fields: fields[:visible]})
		}
		for _, row := range b.Rows {
			if len(rows) == 0 {
				if err := s.checkCollations(fields, visible, row); err != nil {
					return err
				}
			}
			kept := make([][]byte, len(row))
			for i, v := range row {
				if v != nil {
					kept[i] = bytes.Clone(v)
					size += len(v) + 24
				}
			}
			if size > limit {
				return outOfMemory("sorting the combined groups of a statement across shards takes", limit, "Sort by the group keys, narrow the statement")
			}
			rows = append(rows, kept)
		}
		return nil
	})
	if err != nil {
		return "", err
	}
	var cmpErr error
	slices.SortStableFunc(rows, func(a, b [][]byte) int {
		c, err := compareKeys(s.Keys, cmps, func(i int) []byte { return a[s.Keys[i].Ordinal-1] }, func(i int) []byte { return b[s.Keys[i].Ordinal-1] })
		if err != nil && cmpErr == nil {
			cmpErr = err
		}
		return c
	})
	if cmpErr != nil {
		return "", cmpErr
	}
	for i := range rows {
		rows[i] = rows[i][:visible]
	}
	if len(rows) > 0 {
		if err := emit(&Batch{Rows: rows}); err != nil {
			return "", err
		}
	}
	return tag, nil
}

// checkCollations refuses text keys whose collation does not order by
// bytes.
func (s *Sort) checkCollations(fields []Field, visible int, row [][]byte) error {
	for _, k := range s.Keys {
		if !collatable(fields[k.Ordinal-1].DataTypeOID) {
			continue
		}
		if name := string(row[visible+k.Collation]); !bytewiseCollation(name) {
			return &Error{Code: CodeFeatureNotSupported,
				Message: fmt.Sprintf("%s across shards is not supported under collation %s: shardgate sorts text in byte order, which only the C, POSIX and C.UTF-8 collations share", k.clause(), name)}
		}
	}
	return nil
}
