package proxy

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/shardgate/shardgate/planner/engine"
)

// TestRowBufferCopiesRows: rows gathered from a connection's read buffer
// keep their values (NULL, empty and long ones) after that buffer is
// reused, across arena growth, and come out in order.
func TestRowBufferCopiesRows(t *testing.T) {
	var rb rowBuffer
	var got [][][]byte
	emit := func(b *engine.Batch) error {
		for _, row := range b.Rows {
			cp := make([][]byte, len(row))
			for i, v := range row {
				if v != nil {
					cp[i] = append([]byte{}, v...)
				}
			}
			got = append(got, cp)
		}
		return nil
	}
	// First a row of nothing but empty values and NULL, into an arena
	// not yet made.
	want := [][][]byte{{{}, nil, {}}}
	rb.add([][]byte{{}, nil, {}})
	readBuf := make([]byte, 0, 1<<20)
	for i := range 1000 {
		readBuf = readBuf[:0]
		long := bytes.Repeat([]byte{byte('a' + i%26)}, i*37%9000)
		readBuf = append(readBuf, fmt.Sprint(i)...)
		row := [][]byte{readBuf[:len(readBuf):len(readBuf)], nil, {}, long}
		want = append(want, [][]byte{[]byte(fmt.Sprint(i)), nil, {}, long})
		if rb.add(row) {
			if err := rb.flush(emit); err != nil {
				t.Fatal(err)
			}
		}
		copy(readBuf[:cap(readBuf)], "overwritten by the next read")
	}
	if err := rb.flush(emit); err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("%d rows, want %d", len(got), len(want))
	}
	for i := range want {
		for j := range want[i] {
			w, g := want[i][j], got[i][j]
			if (w == nil) != (g == nil) || !bytes.Equal(w, g) {
				t.Fatalf("row %d column %d: %q (nil %v), want %q (nil %v)", i, j, g, g == nil, w, w == nil)
			}
		}
	}
}
