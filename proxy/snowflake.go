package proxy

import (
	"fmt"
	"sync"
	"time"

	"github.com/shardgate/shardgate/planner"
)

// Snowflake ids (vschema sequence_ids: snowflake) are made by each gateway
// alone: 41 bits of milliseconds since snowflakeEpoch, 10 bits of the
// gateway's number (unique among the registered gateways), 12 bits of a
// counter. They increase within a gateway; two gateways never make the
// same one while their clocks do not go back by more than a gateway's
// lease (a number is taken again only after its lease expired).
var snowflakeEpoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

const (
	snowflakeNumberBits  = 10
	snowflakeCounterBits = 12
)

// snowflake makes the snowflake ids of one gateway.
type snowflake struct {
	number func() (int, bool) // the gateway's number; nil: none
	mu     sync.Mutex
	last   int64 // the millisecond of the last id made
	count  int64 // ids made in it
}

// next makes an id, waiting for the next millisecond when this one's are
// all made.
func (f *snowflake) next(now func() time.Time) (int64, error) {
	if f.number == nil {
		return 0, &planner.Error{Code: codeFeatureNotSupp, Message: "this gateway holds no gateway number to make snowflake ids with"}
	}
	n, ok := f.number()
	if !ok {
		return 0, &planner.Error{Code: "55000", Message: "this gateway holds no gateway number now (it lost touch with etcd, or all are taken): it makes no snowflake ids until it holds one again"}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	ms := now().Sub(snowflakeEpoch).Milliseconds()
	switch {
	case ms < 0:
		return 0, fmt.Errorf("the clock reads %v, before the snowflake epoch", now())
	case ms > f.last:
		f.last, f.count = ms, 0
	case f.count == 1<<snowflakeCounterBits:
		// This millisecond's ids are made (or the clock went back): the
		// next one's, made ahead.
		f.last, f.count = f.last+1, 0
	}
	id := f.last<<(snowflakeNumberBits+snowflakeCounterBits) | int64(n)<<snowflakeCounterBits | f.count
	f.count++
	return id, nil
}
