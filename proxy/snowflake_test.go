package proxy

import (
	"testing"
	"time"
)

// TestSnowflake: ids carry the time, the gateway's number and a counter;
// they increase within a gateway, also past 4096 in one millisecond and
// when the clock goes back; without a number none is made.
func TestSnowflake(t *testing.T) {
	number, held := 5, true
	f := &snowflake{number: func() (int, bool) { return number, held }}
	at := snowflakeEpoch.Add(90 * time.Second)
	clock := func() time.Time { return at }
	var last int64
	for i := range 5000 {
		id, err := f.next(clock)
		if err != nil {
			t.Fatal(err)
		}
		if id <= last {
			t.Fatalf("id %d after %d", id, last)
		}
		last = id
		if i == 0 {
			if ms := id >> 22; ms != 90_000 {
				t.Fatalf("first id's milliseconds: %d, want 90000", ms)
			}
			if n := id >> 12 & 1023; n != 5 {
				t.Fatalf("first id's gateway number: %d, want 5", n)
			}
		}
	}
	if ms := last >> 22; ms != 90_001 {
		t.Fatalf("the 5000th id of one millisecond is of millisecond %d, want the next one", ms)
	}
	at = at.Add(-time.Second) // the clock goes back
	if id, err := f.next(clock); err != nil || id <= last {
		t.Fatalf("after the clock went back: %d (%v), want more than %d", id, err, last)
	}
	held = false
	if _, err := f.next(clock); err == nil {
		t.Fatal("an id made without a gateway number held")
	}
	if _, err := (&snowflake{}).next(clock); err == nil {
		t.Fatal("an id made by a gateway with no number at all")
	}
}
