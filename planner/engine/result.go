package engine

import (
	"strconv"
	"strings"
)

// Field describes one result column, as the shard's RowDescription did.
type Field struct {
	Name                 string
	TableOID             uint32
	TableAttributeNumber uint16
	DataTypeOID          uint32
	DataTypeSize         int16
	TypeModifier         int32
	Format               int16
}

// Batch is a piece of a result stream. The first batch of a result that has
// rows carries Fields (and no rows); later batches carry Rows of raw column
// values exactly as the shard sent them (nil is SQL NULL). Everything a Batch
// points to is owned by the sender and valid only until emit returns.
type Batch struct {
	Fields []Field
	Rows   [][][]byte
}

// Tag is a command tag such as "SELECT 3" or "INSERT 0 1".
type Tag string

// count splits a tag into its verb and row count. hasCount is false for tags
// that carry no count, such as "CREATE TABLE".
func (t Tag) count() (verb string, n int64, hasCount bool) {
	s := string(t)
	i := strings.LastIndexByte(s, ' ')
	if i < 0 {
		return s, 0, false
	}
	n, err := strconv.ParseInt(s[i+1:], 10, 64)
	if err != nil {
		return s, 0, false
	}
	return s[:i], n, true
}

// plus combines the tags of the same statement run on two shards: row counts
// add up; tags without a count must agree.
func (t Tag) plus(o Tag) (Tag, error) {
	if t == "" {
		return o, nil
	}
	v1, n1, c1 := t.count()
	v2, n2, c2 := o.count()
	if v1 != v2 || c1 != c2 {
		return "", internal("shards answered %q and %q to the same statement", t, o)
	}
	if !c1 {
		return t, nil
	}
	return Tag(v1 + " " + strconv.FormatInt(n1+n2, 10)), nil
}
