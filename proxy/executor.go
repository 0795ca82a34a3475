package proxy

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/shardgate/shardgate/planner"
	"github.com/shardgate/shardgate/topology"
)

// shardExecutor runs plan primitives' SQL on pooled backend connections of
// the shards of one topology snapshot.
type shardExecutor struct {
	pools *Pools
	snap  *topology.Snapshot
}

var _ planner.Executor = (*shardExecutor)(nil)

// Query implements planner.Executor. Rows are forwarded as the shard sent
// them, without decoding.
func (x *shardExecutor) Query(ctx context.Context, shard string, sql string, emit func(*planner.Batch) error) (planner.Tag, error) {
	sh, ok := x.snap.Shards[shard]
	if !ok {
		return "", fmt.Errorf("shard %s is not in the topology", shard)
	}
	conn, err := x.pools.acquire(ctx, sh)
	if err != nil {
		return "", err
	}
	defer conn.Release()
	pg := conn.Conn().PgConn()
	var tag planner.Tag
	err = forward(ctx, pg, sql, emit, func(t planner.Tag) error {
		tag = t
		return nil
	})
	return tag, err
}

// forward runs sql (one or more statements) on pg and streams each result:
// emit gets the fields and rows, done gets the command tag at the end of each
// statement. If emit or done fails (the client went away), the backend
// connection is closed rather than drained, so a large result costs nothing
// more.
func forward(ctx context.Context, pg *pgconn.PgConn, sql string, emit func(*planner.Batch) error, done func(planner.Tag) error) error {
	mrr := pg.Exec(ctx, sql)
	var (
		batch planner.Batch
		row   [1][][]byte
	)
	for mrr.NextResult() {
		rr := mrr.ResultReader()
		if fds := rr.FieldDescriptions(); fds != nil {
			if err := emit(&planner.Batch{Fields: convertFields(fds)}); err != nil {
				pg.Close(context.Background())
				return err
			}
		}
		for rr.NextRow() {
			row[0] = rr.Values()
			batch.Rows = row[:]
			if err := emit(&batch); err != nil {
				pg.Close(context.Background())
				return err
			}
		}
		tag, err := rr.Close()
		if err != nil {
			mrr.Close()
			return err
		}
		if err := done(planner.Tag(tag.String())); err != nil {
			pg.Close(context.Background())
			return err
		}
	}
	return mrr.Close()
}

func convertFields(fds []pgconn.FieldDescription) []planner.Field {
	out := make([]planner.Field, len(fds))
	for i, f := range fds {
		out[i] = planner.Field{
			Name:                 f.Name,
			TableOID:             f.TableOID,
			TableAttributeNumber: f.TableAttributeNumber,
			DataTypeOID:          f.DataTypeOID,
			DataTypeSize:         f.DataTypeSize,
			TypeModifier:         f.TypeModifier,
			Format:               f.Format,
		}
	}
	return out
}
