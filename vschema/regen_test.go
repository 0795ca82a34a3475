package vschema

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/shardgate/shardgate/internal/pgtest"
)

var regen = flag.Bool("regen", false, "rewrite "+pgHashVectorsPath+" with the hashes a live PostgreSQL computes for its values")

// hashVectorsQuery hashes every loaded value with the server's own function
// for its type, in file order. COPY's CSV is the file's format, so its output
// is the file byte for byte: "" for an empty string, quotes only where needed.
const hashVectorsQuery = `COPY (
	SELECT typ AS type, val AS value,
	       CASE typ
	       WHEN 'int2' THEN hashint2extended(val::int2, 0)
	       WHEN 'int4' THEN hashint4extended(val::int4, 0)
	       WHEN 'int8' THEN hashint8extended(val::int8, 0)
	       WHEN 'text' THEN hashtextextended(val, 0)
	       WHEN 'varchar' THEN hashtextextended(val::varchar, 0)
	       WHEN 'uuid' THEN uuid_hash_extended(val::uuid, 0)
	       END AS hash_extended_seed0
	FROM vectors ORDER BY n
) TO STDOUT (FORMAT csv, HEADER)`

// TestPGHashVectorsFile hashes the types and values of pgHashVectorsPath on a
// live PostgreSQL and checks that the file holds exactly what the server
// computes, so the ground truth the Go hash is held to can always be made
// again. With -regen it writes the server's answer to the file instead; to
// add a vector, append a line "type,value," and run
//
//	go test ./vschema -run PGHashVectorsFile -regen
func TestPGHashVectorsFile(t *testing.T) {
	file, err := os.ReadFile(pgHashVectorsPath)
	if err != nil {
		t.Fatal(err)
	}
	got := serverHashVectors(t, file)
	if *regen {
		if err := os.WriteFile(pgHashVectorsPath, got, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote %s from PostgreSQL", pgHashVectorsPath)
		return
	}
	if !bytes.Equal(got, file) {
		t.Fatalf("%s differs from what PostgreSQL computes for its values (first difference %s); "+
			"run go test ./vschema -run PGHashVectorsFile -regen and review the diff", pgHashVectorsPath, firstDifference(file, got))
	}
}

// serverHashVectors loads the file's types and values into a fresh server and
// returns the CSV that hashVectorsQuery makes of them.
func serverHashVectors(t *testing.T, file []byte) []byte {
	t.Helper()
	ctx := t.Context()
	pg := pgtest.Start(t, 1)[0]
	conn, err := pgconn.Connect(ctx, pg.DSN("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	for _, sql := range []string{
		"SET client_encoding = 'UTF8'",
		"CREATE TEMP TABLE vectors (n bigserial, typ text NOT NULL, val text NOT NULL, old_hash text)",
	} {
		if _, err := conn.Exec(ctx, sql).ReadAll(); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	// COPY wrote the file, so COPY reads it back exactly; the empty hash of
	// a newly added line becomes NULL.
	if _, err := conn.CopyFrom(ctx, bytes.NewReader(file), "COPY vectors (typ, val, old_hash) FROM STDIN (FORMAT csv, HEADER)"); err != nil {
		t.Fatalf("loading %s: %v", pgHashVectorsPath, err)
	}
	res := conn.ExecParams(ctx, "SELECT string_agg(DISTINCT typ, ', ') FROM vectors WHERE typ NOT IN ('int2', 'int4', 'int8', 'text', 'varchar', 'uuid')",
		nil, nil, nil, nil).Read()
	if res.Err != nil {
		t.Fatal(res.Err)
	}
	if unknown := res.Rows[0][0]; unknown != nil {
		t.Fatalf("%s: no hash function for type %s", pgHashVectorsPath, unknown)
	}
	var out bytes.Buffer
	if _, err := conn.CopyTo(ctx, &out, hashVectorsQuery); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

// firstDifference names the first line where want and got differ.
func firstDifference(want, got []byte) string {
	w, g := bytes.Split(want, []byte("\n")), bytes.Split(got, []byte("\n"))
	for i := 0; i < len(w) || i < len(g); i++ {
		var wl, gl []byte
		if i < len(w) {
			wl = w[i]
		}
		if i < len(g) {
			gl = g[i]
		}
		if !bytes.Equal(wl, gl) {
			return fmt.Sprintf("at line %d: file %q, PostgreSQL %q", i+1, wl, gl)
		}
	}
	return "none"
}
