package engine

import (
	"context"
	"encoding/binary"
	"strconv"
)

// CountSum answers SELECT count(*), count(x) ... without GROUP BY across
// shards: Input returns one row of counts per shard, and CountSum answers
// with one row, the sum of each column. Counts of disjoint rows add up
// exactly.
type CountSum struct {
	Input Primitive
}

var _ Primitive = (*CountSum)(nil)

// Stream implements Primitive.
func (c *CountSum) Stream(ctx context.Context, x Executor, args Params, emit func(*Batch) error) (Tag, error) {
	var (
		fields []Field
		sums   []int64
		binOut []bool // the shards answered in binary
	)
	_, err := c.Input.Stream(ctx, x, args, func(b *Batch) error {
		if b.Fields != nil {
			fields = append([]Field(nil), b.Fields...)
			return nil
		}
		for _, row := range b.Rows {
			if sums == nil {
				sums, binOut = make([]int64, len(row)), make([]bool, len(row))
			}
			if len(row) != len(sums) {
				return internal("shards disagree on the columns of a count")
			}
			for j, v := range row {
				n, bin, err := decodeCount(v)
				if err != nil {
					return err
				}
				sums[j] += n
				binOut[j] = bin
			}
		}
		return nil
	})
	if err != nil {
		return "", err
	}
	if fields != nil {
		if err := emit(&Batch{Fields: fields}); err != nil {
			return "", err
		}
	}
	row := make([][]byte, len(sums))
	for j, n := range sums {
		if binOut[j] {
			row[j] = binary.BigEndian.AppendUint64(nil, uint64(n))
		} else {
			row[j] = strconv.AppendInt(nil, n, 10)
		}
	}
	if err := emit(&Batch{Rows: [][][]byte{row}}); err != nil {
		return "", err
	}
	return "SELECT 1", nil
}

// decodeCount reads a count (bigint) in text or binary form. Eight bytes
// that are all digits are text: as binary they would be a count above 3e18.
func decodeCount(v []byte) (n int64, binaryForm bool, err error) {
	if n, err := strconv.ParseInt(string(v), 10, 64); err == nil {
		return n, false, nil
	}
	if len(v) == 8 {
		return int64(binary.BigEndian.Uint64(v)), true, nil
	}
	return 0, false, internal("a shard answered a count with %q", v)
}

// Inputs implements Primitive.
func (c *CountSum) Inputs() []Primitive { return []Primitive{c.Input} }

// Describe implements Primitive.
func (c *CountSum) Describe() string { return "CountSum" }
