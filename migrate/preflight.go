package migrate

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strconv"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/shardgate/shardgate/topology"
	"github.com/shardgate/shardgate/vschema"
)

// TableShare is what one table of one source shard sends to the targets:
// the shard's own estimate of the table, scaled by the share of the
// source's logical shards that move. Rows is -1 when the table was never
// analyzed.
type TableShare struct {
	Table     string
	Source    string
	Reference bool // copied whole to every target
	Rows      int64
	Bytes     int64
}

// Preflight checks, on every source shard of moves, that each table of the
// keyspace's vschema exists and has a primary key that logical replication
// can identify rows by (a change stream is applied to the target by
// primary key), and estimates what moves per table. The first table that
// fails is named in the error.
func Preflight(ctx context.Context, snap *topology.Snapshot, keyspace string, moves []Move) ([]TableShare, error) {
	ks := snap.Keyspace(keyspace)
	if ks == nil {
		return nil, fmt.Errorf("keyspace %s does not exist", keyspace)
	}
	vs := ks.VSchema()
	if vs == nil {
		return nil, fmt.Errorf("keyspace %s has no vschema; apply one first (shardctl vschema apply)", keyspace)
	}
	if !vs.Sharded {
		return nil, fmt.Errorf("keyspace %s is unsharded: it has one logical shard, which cannot be split", keyspace)
	}
	leaving := map[string]int{} // source -> logical shards that leave it
	for _, mv := range moves {
		leaving[mv.From]++
	}
	held := map[string]int{}
	for _, s := range ks.Map.Placement {
		held[s]++
	}
	tables := slices.Sorted(maps.Keys(vs.Tables))
	var out []TableShare
	for _, source := range slices.Sorted(maps.Keys(leaving)) {
		sh := snap.Shards[source]
		if sh == nil {
			return nil, fmt.Errorf("shard %s is not registered", source)
		}
		conn, err := Connect(ctx, sh)
		if err != nil {
			return nil, err
		}
		shares, err := inspect(ctx, conn, source, vs, tables)
		conn.Close(context.Background())
		if err != nil {
			return nil, err
		}
		for _, s := range shares {
			if !s.Reference {
				s.Rows = scale(s.Rows, leaving[source], held[source])
				s.Bytes = scale(s.Bytes, leaving[source], held[source])
			}
			out = append(out, s)
		}
	}
	return out, nil
}

func scale(n int64, part, whole int) int64 {
	if n < 0 {
		return n
	}
	return n * int64(part) / int64(whole)
}

// inspect reads each table's identity and size on one shard.
func inspect(ctx context.Context, conn *pgconn.PgConn, shard string, vs *vschema.Keyspace, tables []string) ([]TableShare, error) {
	const q = `SELECT c.relkind, c.relreplident,
	EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisprimary),
	c.reltuples::bigint, pg_total_relation_size(c.oid)
FROM pg_class c WHERE c.oid = to_regclass($1)`
	var out []TableShare
	for _, name := range tables {
		rr := conn.ExecParams(ctx, q, [][]byte{[]byte(name)}, nil, nil, nil).Read()
		if rr.Err != nil {
			return nil, fmt.Errorf("shard %s: reading table %s: %w", shard, name, rr.Err)
		}
		if len(rr.Rows) == 0 {
			return nil, fmt.Errorf("table %s of the vschema does not exist on shard %s", name, shard)
		}
		r := rr.Rows[0]
		kind, identity, hasPK := string(r[0]), string(r[1]), string(r[2]) == "t"
		switch {
		case kind != "r" && kind != "p":
			return nil, fmt.Errorf("%s on shard %s is not a table (relkind %s); only tables can be resharded", name, shard, kind)
		case !hasPK:
			return nil, fmt.Errorf("table %s has no primary key on shard %s: resharding applies the change stream by primary key; add one first", name, shard)
		case identity == "n":
			return nil, fmt.Errorf("table %s has REPLICA IDENTITY NOTHING on shard %s: its updates and deletes cannot be streamed; set REPLICA IDENTITY DEFAULT first", name, shard)
		}
		rows, _ := strconv.ParseInt(string(r[3]), 10, 64)
		bytes, _ := strconv.ParseInt(string(r[4]), 10, 64)
		out = append(out, TableShare{Table: name, Source: shard, Reference: vs.Tables[name].Kind == vschema.Reference, Rows: rows, Bytes: bytes})
	}
	return out, nil
}

// Connect opens a connection to shard sh for the workflow's own work, its
// password found as the gateways find it (topology.Shard.ResolvePassword)
// but on this host.
func Connect(ctx context.Context, sh *topology.Shard) (*pgconn.PgConn, error) {
	cfg, err := ShardConfig(sh)
	if err != nil {
		return nil, err
	}
	conn, err := pgconn.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("shard %s: %w", sh.Name, err)
	}
	return conn, nil
}

// ShardConfig is how Connect reaches shard sh.
func ShardConfig(sh *topology.Shard) (*pgconn.Config, error) {
	cfg, err := pgconn.ParseConfig(sh.DSN)
	if err != nil {
		return nil, fmt.Errorf("shard %s: its DSN does not parse", sh.Name)
	}
	password, ok, err := sh.ResolvePassword()
	if err != nil {
		return nil, fmt.Errorf("shard %s: %w", sh.Name, err)
	}
	if ok {
		cfg.Password = password
	}
	return cfg, nil
}
