package proxy

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/shardgate/shardgate/vschema"
)

func TestExtendedProtocol(t *testing.T) {
	g := startGateway(t, DefaultPoolConfig)
	ctx := context.Background()
	a, b := g.twoKeys()
	for _, mode := range []pgx.QueryExecMode{pgx.QueryExecModeCacheStatement, pgx.QueryExecModeCacheDescribe, pgx.QueryExecModeDescribeExec, pgx.QueryExecModeExec, pgx.QueryExecModeSimpleProtocol} {
		t.Run(mode.String(), func(t *testing.T) {
			cfg, err := pgx.ParseConfig(g.dsn("app", ""))
			if err != nil {
				t.Fatal(err)
			}
			cfg.DefaultQueryExecMode = mode
			conn, err := pgx.ConnectConfig(ctx, cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close(ctx)
			if _, err := conn.Exec(ctx, "delete from users"); err != nil {
				t.Fatal(err)
			}
			// Binary and text parameters route by the sharding column.
			for _, id := range []int64{a, b} {
				if _, err := conn.Exec(ctx, "insert into users (id, name) values ($1, $2)", id, fmt.Sprint("n", id)); err != nil {
					t.Fatal(err)
				}
			}
			var name string
			if err := conn.QueryRow(ctx, "select name from users where id = $1", b).Scan(&name); err != nil || name != fmt.Sprint("n", b) {
				t.Fatalf("by key: %q %v", name, err)
			}
			var n int64
			if err := conn.QueryRow(ctx, "select count(*) from users").Scan(&n); err != nil || n != 2 {
				t.Fatalf("count: %d %v", n, err)
			}

			// A batch is one transaction: an error anywhere undoes all of it.
			batch := &pgx.Batch{}
			batch.Queue("insert into users (id, name) values ($1, 'batch')", a+1000)
			batch.Queue("update users set name = 'batched' where id = $1", b)
			batch.Queue("insert into users (id, name) values ($1, 'dup')", a)
			if err := conn.SendBatch(ctx, batch).Close(); err == nil || !strings.Contains(err.Error(), "23505") {
				t.Fatalf("failing batch: %v", err)
			}
			if err := conn.QueryRow(ctx, "select name from users where id = $1", b).Scan(&name); err != nil || name != fmt.Sprint("n", b) {
				t.Fatalf("failed batch changed a row: %q %v", name, err)
			}
			batch = &pgx.Batch{}
			batch.Queue("update users set name = 'batched' where id = $1", a)
			batch.Queue("update users set name = 'batched' where id = $1", b)
			batch.Queue("select name from users where id = $1", a)
			br := conn.SendBatch(ctx, batch)
			for range 2 {
				if _, err := br.Exec(); err != nil {
					t.Fatal(err)
				}
			}
			if err := br.QueryRow().Scan(&name); err != nil || name != "batched" {
				t.Fatalf("batch read: %q %v", name, err)
			}
			if err := br.Close(); err != nil {
				t.Fatal(err)
			}
			rows, err := conn.Query(ctx, "select name from users")
			if err != nil {
				t.Fatal(err)
			}
			names, err := pgx.CollectRows(rows, pgx.RowTo[string])
			if err != nil || len(names) != 2 || names[0] != "batched" || names[1] != "batched" {
				t.Fatalf("scatter read: %q %v", names, err)
			}
		})
	}
}

// roundTrip sends messages on a client connection and reads the answer up
// to ReadyForQuery, returning the messages' types and the rows' first
// values.
func roundTrip(t *testing.T, c *pgconn.PgConn, msgs ...pgproto3.FrontendMessage) (types []string, values []string) {
	t.Helper()
	fe := c.Frontend()
	for _, m := range msgs {
		fe.Send(m)
	}
	if err := fe.Flush(); err != nil {
		t.Fatal(err)
	}
	for {
		msg, err := c.ReceiveMessage(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		name := strings.TrimPrefix(fmt.Sprintf("%T", msg), "*pgproto3.")
		types = append(types, name)
		switch m := msg.(type) {
		case *pgproto3.DataRow:
			values = append(values, string(m.Values[0]))
		case *pgproto3.ErrorResponse:
			values = append(values, m.Code)
		case *pgproto3.NoticeResponse:
			values = append(values, m.Message)
		case *pgproto3.ReadyForQuery:
			return types, values
		}
	}
}

func TestExtendedProtocolMessages(t *testing.T) {
	g := startGateway(t, DefaultPoolConfig)
	c := g.connect(t, "app", "")
	// Three keys on one shard, and one on the other.
	ks := g.snap.Keyspace("app")
	var same []int64
	var other int64
	for id := int64(1); len(same) < 3 || other == 0; id++ {
		if ks.ShardFor(vschema.HashInt64(id)) == ks.ShardFor(vschema.HashInt64(1)) {
			if len(same) < 3 {
				same = append(same, id)
			}
		} else if other == 0 {
			other = id
		}
	}
	exec(t, c, fmt.Sprintf("insert into users (id, name) values (%d, 'x'), (%d, 'y'), (%d, 'z'), (%d, 'o')", same[0], same[1], same[2], other))
	param := func(v int64) []byte { return []byte(fmt.Sprint(v)) }

	// Describe a statement before binding: parameter types and columns.
	types, _ := roundTrip(t, c,
		&pgproto3.Parse{Name: "s1", Query: "select name from users where id = $1"},
		&pgproto3.Describe{ObjectType: 'S', Name: "s1"},
		&pgproto3.Sync{})
	if strings.Join(types, ",") != "ParseComplete,ParameterDescription,RowDescription,ReadyForQuery" {
		t.Fatalf("describe: %v", types)
	}
	// A row-limited Execute inside a transaction suspends the portal and
	// continues it.
	types, values := roundTrip(t, c,
		&pgproto3.Query{String: "begin"})
	if types[len(types)-1] != "ReadyForQuery" {
		t.Fatal(types)
	}
	types, values = roundTrip(t, c,
		&pgproto3.Parse{Name: "s2", Query: "select id from users where id in ($1, $2, $3) order by id"},
		&pgproto3.Bind{PreparedStatement: "s2", DestinationPortal: "p", Parameters: [][]byte{param(same[0]), param(same[1]), param(same[2])}},
		&pgproto3.Execute{Portal: "p", MaxRows: 2},
		&pgproto3.Sync{})
	if strings.Join(types, ",") != "ParseComplete,BindComplete,DataRow,DataRow,PortalSuspended,ReadyForQuery" || values[0] != fmt.Sprint(same[0]) {
		t.Fatalf("row-limited execute: %v %v", types, values)
	}
	types, values = roundTrip(t, c, &pgproto3.Execute{Portal: "p", MaxRows: 2}, &pgproto3.Sync{})
	if strings.Join(types, ",") != "DataRow,CommandComplete,ReadyForQuery" || values[0] != fmt.Sprint(same[2]) {
		t.Fatalf("continued portal: %v %v", types, values)
	}
	// A row limit on a result from several shards: the rows come a few
	// at a time all the same.
	types, _ = roundTrip(t, c,
		&pgproto3.Parse{Name: "s3", Query: "select id from users where id in ($1, $2)"},
		&pgproto3.Bind{PreparedStatement: "s3", DestinationPortal: "q", Parameters: [][]byte{param(same[0]), param(other)}},
		&pgproto3.Execute{Portal: "q", MaxRows: 1},
		&pgproto3.Sync{})
	if strings.Join(types, ",") != "ParseComplete,BindComplete,DataRow,PortalSuspended,ReadyForQuery" {
		t.Fatalf("row limit over shards: %v", types)
	}
	types, _ = roundTrip(t, c, &pgproto3.Execute{Portal: "q", MaxRows: 5}, &pgproto3.Sync{})
	if strings.Join(types, ",") != "DataRow,CommandComplete,ReadyForQuery" {
		t.Fatalf("row limit over shards, continued: %v", types)
	}
	roundTrip(t, c, &pgproto3.Query{String: "rollback"})

	// An error skips the rest until Sync, and the session goes on.
	types, values = roundTrip(t, c,
		&pgproto3.Parse{Query: "select 1/0"},
		&pgproto3.Bind{},
		&pgproto3.Execute{},
		&pgproto3.Parse{Query: "select 2"},
		&pgproto3.Bind{},
		&pgproto3.Execute{},
		&pgproto3.Sync{})
	if strings.Join(types, ",") != "ParseComplete,BindComplete,ErrorResponse,ReadyForQuery" || values[0] != "22012" {
		t.Fatalf("error in a pipeline: %v %v", types, values)
	}
	// Notices of the shards reach the client.
	types, values = roundTrip(t, c, &pgproto3.Query{String: "drop table if exists nosuch_table"})
	if types[0] != "NoticeResponse" || !strings.Contains(values[0], "does not exist, skipping") {
		t.Fatalf("notice: %v %v", types, values)
	}
	// Unsupported commands are refused clearly.
	types, values = roundTrip(t, c, &pgproto3.Query{String: "declare c cursor with hold for select 1"})
	if types[0] != "ErrorResponse" || values[0] != "0A000" {
		t.Fatalf("DECLARE: %v %v", types, values)
	}
}

// TestExtendedAnsweredAsItArrives: extended-protocol messages are answered
// as they arrive, as Postgres answers them, not held until the Sync. A
// client that pipelines many Executes and reads while it writes sees the
// first answers once a buffer's worth is waiting, before it sends its Sync
// — a client that waits for them before the Sync would wait forever if
// the gateway held them.
func TestExtendedAnsweredAsItArrives(t *testing.T) {
	g := startGateway(t, DefaultPoolConfig)
	c := g.connect(t, "app", "")
	fe := c.Frontend()
	const executes = 2000
	answered := make(chan struct{})
	wrote := make(chan error, 1)
	go func() {
		fe.Send(&pgproto3.Parse{Name: "one", Query: "select 1"})
		for range executes {
			fe.Send(&pgproto3.Bind{PreparedStatement: "one"})
			fe.Send(&pgproto3.Execute{})
		}
		if err := fe.Flush(); err != nil {
			wrote <- err
			return
		}
		select {
		case <-answered:
		case <-time.After(30 * time.Second):
			wrote <- fmt.Errorf("no answer before the Sync in 30 s")
			return
		}
		fe.Send(&pgproto3.Sync{})
		wrote <- fe.Flush()
	}()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	completes := 0
	for {
		msg, err := c.ReceiveMessage(ctx)
		if err != nil {
			t.Fatalf("after %d CommandCompletes: %v", completes, err)
		}
		switch m := msg.(type) {
		case *pgproto3.CommandComplete:
			if completes++; completes == 1 {
				close(answered)
			}
		case *pgproto3.ErrorResponse:
			t.Fatalf("after %d CommandCompletes: %s %s", completes, m.Code, m.Message)
		}
		if _, ok := msg.(*pgproto3.ReadyForQuery); ok {
			break
		}
	}
	if err := <-wrote; err != nil {
		t.Fatal(err)
	}
	if completes != executes {
		t.Fatalf("%d CommandCompletes for %d Executes", completes, executes)
	}
}

// TestFetchPortalDescribed: a prepared FETCH describes as returning no
// rows, as on Postgres, but its bound portal describes as the cursor's
// columns, which the rows then have.
func TestFetchPortalDescribed(t *testing.T) {
	g := startGateway(t, DefaultPoolConfig)
	ctx := context.Background()
	for _, ks := range []string{"solo", "solotx"} {
		t.Run(ks, func(t *testing.T) {
			c := g.connect(t, ks, "")
			sd, err := c.Prepare(ctx, "fetch_all", `fetch all in "fetched"`, nil)
			if err != nil {
				t.Fatal(err)
			}
			if len(sd.Fields) != 0 {
				t.Fatalf("the statement describes %d columns, want none", len(sd.Fields))
			}
			exec(t, c, "begin")
			exec(t, c, `declare "fetched" cursor for select n, n::text from generate_series(1, 3) n`)
			res := c.ExecStatement(ctx, sd, nil, nil, nil).Read()
			if res.Err != nil {
				t.Fatal(res.Err)
			}
			if len(res.FieldDescriptions) != 2 || res.FieldDescriptions[0].DataTypeOID != 23 || res.FieldDescriptions[1].DataTypeOID != 25 {
				t.Fatalf("the portal describes %+v, want int4 and text", res.FieldDescriptions)
			}
			if len(res.Rows) != 3 || string(res.Rows[2][1]) != "3" {
				t.Fatalf("rows %q", res.Rows)
			}
			exec(t, c, "rollback")
		})
	}
}

// TestDeallocateProtocolStatement: SQL's DEALLOCATE reaches a statement
// prepared with the protocol, which shares its namespace on Postgres, in
// the simple and the extended protocol; the name is free again after.
func TestDeallocateProtocolStatement(t *testing.T) {
	g := startGateway(t, DefaultPoolConfig)
	ctx := context.Background()
	for _, ks := range []string{"app", "solo", "solotx"} {
		t.Run(ks, func(t *testing.T) {
			c := g.connect(t, ks, "")
			if _, err := c.Prepare(ctx, "ps", "select $1::text", nil); err != nil {
				t.Fatal(err)
			}
			exec(t, c, "deallocate ps")
			if _, err := c.Prepare(ctx, "ps", "select $1::text, $2::text", nil); err != nil {
				t.Fatalf("after DEALLOCATE: %v", err)
			}
			if res := c.ExecParams(ctx, "deallocate prepare ps", nil, nil, nil, nil).Read(); res.Err != nil {
				t.Fatalf("DEALLOCATE through the extended protocol: %v", res.Err)
			}
			if _, err := c.Exec(ctx, "deallocate ps").ReadAll(); code(err) != "26000" {
				t.Fatalf("DEALLOCATE of a statement that is gone: %v, want 26000", err)
			}
		})
	}
}

// TestManyParameters: a statement with more than 65535 parameters is
// prepared and described as on Postgres (which then refuses to bind it);
// the session goes on.
func TestManyParameters(t *testing.T) {
	g := startGateway(t, DefaultPoolConfig)
	ctx := context.Background()
	c := g.connect(t, "solo", "")
	params := make([]string, 1<<16)
	for i := range params {
		params[i] = fmt.Sprintf("($%d::text)", i+1)
	}
	sd, err := c.Prepare(ctx, "many", "values"+strings.Join(params, ", "), nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(sd.ParamOIDs) != 1<<16 || len(sd.Fields) != 1 {
		t.Fatalf("described %d parameters and %d columns", len(sd.ParamOIDs), len(sd.Fields))
	}
	if got := one(t, c, "select 1"); got != "1" {
		t.Fatalf("after: %q", got)
	}
}
