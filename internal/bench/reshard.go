package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/shardgate/shardgate/internal/pgtest"
	"github.com/shardgate/shardgate/migrate"
	"github.com/shardgate/shardgate/topology"
)

// reshardScenario moves a quarter of keyspace grow (scale x 100,000 rows
// over two shards) from its second shard to the direct server with
// 'shardctl reshard', and compares the copy with a plain COPY ... TO
// STDOUT | COPY ... FROM STDIN of the same rows between the same servers;
// then it cuts the writes over in batches while pgbench updates rows of
// the keyspace through the gateway, and reports each batch's pause.
const reshardScenario = "reshard"

// reshardResult is what the scenario measured.
type reshardResult struct {
	Rows              int64     `json:"rows"`
	ShardgateRowsPerS float64   `json:"shardgate_copy_rows_per_s"`
	PlainRowsPerS     float64   `json:"plain_copy_rows_per_s"`
	Ratio             float64   `json:"shardgate_vs_plain"`
	PausesMs          []float64 `json:"cutover_pauses_ms"`
	PauseP50Ms        float64   `json:"cutover_pause_p50_ms"`
	PauseP99Ms        float64   `json:"cutover_pause_p99_ms"`
	WritesDuring      int64     `json:"pgbench_transactions_during_cutover"`
}

// The update pgbench runs through the gateway during the cutover.
const reshardScript = `\set id random(1, %d)
UPDATE accounts SET balance = balance + 1 WHERE id = :id;
`

func (e *env) resharding(ctx context.Context, o options) (*reshardResult, error) {
	rows := int64(o.scale) * 100000
	for _, c := range []*pgtest.Cluster{e.s0, e.s1, e.directPG} {
		if _, err := queryOne(ctx, c.DSN("postgres"), "create database grow"); err != nil {
			return nil, fmt.Errorf("create database grow: %w", err)
		}
	}
	if _, err := queryOne(ctx, e.directPG.DSN("postgres"), "create database plain"); err != nil {
		return nil, err
	}
	const table = "create table accounts (id bigint primary key, balance bigint not null default 0, filler text)"
	for i, c := range []*pgtest.Cluster{e.s0, e.s1} {
		lo, hi := migrate.KeyRange(64, i*32, i*32+31)
		logf("reshard: loading shard %d of keyspace grow", i)
		for _, sql := range []string{
			table,
			fmt.Sprintf("insert into accounts select g, 0, repeat('x', 84) from generate_series(1, %d) g where hashint8extended(g, 0) between %d and %d", rows, lo, hi),
			"vacuum analyze accounts",
		} {
			if err := execOne(ctx, c.DSN("grow"), sql); err != nil {
				return nil, fmt.Errorf("loading keyspace grow: %w", err)
			}
		}
	}
	vschema := filepath.Join(e.tmp, "grow.yaml")
	if err := os.WriteFile(vschema, []byte("keyspaces:\n  grow:\n    sharded: true\n    tables:\n      accounts: {column: id, type: bigint}\n"), 0o600); err != nil {
		return nil, err
	}
	for _, args := range [][]string{
		{"shard", "add", "g0", "--dsn", e.s0.DSN("grow")},
		{"shard", "add", "g1", "--dsn", e.s1.DSN("grow")},
		{"shard", "add", "g2", "--dsn", e.directPG.DSN("grow")},
		{"keyspace", "create", "grow", "--logical-shards", "64", "--shards", "g0,g1"},
		{"vschema", "apply", vschema},
		{"reshard", "create", "grow", "--keyspace", "grow", "--move", "48-63:g2", "--apply"},
	} {
		if _, err := e.shardctl(ctx, args...); err != nil {
			return nil, err
		}
	}

	// The plain copy of the same rows between the same servers.
	lo, hi := migrate.KeyRange(64, 48, 63)
	logf("reshard: plain COPY | COPY of logical shards 48-63")
	start := time.Now()
	moved, err := plainCopy(ctx, e.s1.DSN("grow"), e.directPG.DSN("plain"), table,
		fmt.Sprintf("COPY (SELECT * FROM accounts WHERE hashint8extended(id, 0) BETWEEN %d AND %d) TO STDOUT", lo, hi))
	if err != nil {
		return nil, fmt.Errorf("plain copy: %w", err)
	}
	r := &reshardResult{Rows: moved, PlainRowsPerS: float64(moved) / time.Since(start).Seconds()}

	// The workflow's copy, then its catch-up.
	logf("reshard: shardctl reshard start")
	ctl := exec.Command(filepath.Join(e.binDir, "shardctl"), "--etcd", e.etcd, "reshard", "start", "grow")
	p, err := startProc("shardctl reshard start", ctl)
	if err != nil {
		return nil, err
	}
	defer p.stop()
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{e.etcd}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		return nil, err
	}
	defer cli.Close()
	store := topology.NewStore(cli, "local")
	w, err := waitWorkflow(ctx, store, p, func(w *topology.Workflow) bool { return w.Phase == topology.PhaseCatchingUp })
	if err != nil {
		return nil, err
	}
	src := w.Sources["g1"]
	if src == nil || src.CopySeconds <= 0 || src.Copied["accounts"].Rows != moved {
		return nil, fmt.Errorf("reshard copied %+v, the plain copy %d rows", src, moved)
	}
	r.ShardgateRowsPerS = float64(moved) / src.CopySeconds
	r.Ratio = r.ShardgateRowsPerS / r.PlainRowsPerS

	// The cutover, 8 batches, under pgbench's updates through the gateway.
	script := filepath.Join(e.tmp, "grow.sql")
	if err := os.WriteFile(script, []byte(fmt.Sprintf(reshardScript, rows)), 0o600); err != nil {
		return nil, err
	}
	load := o.duration + 10*time.Second
	logf("reshard: cutover in 8 batches under pgbench -c 8 for %s", load)
	type bench struct {
		out string
		err error
	}
	done := make(chan bench, 1)
	gw := e.sharded
	gw.db = "grow"
	go func() {
		out, err := e.runPgbench(ctx, o, gw, "-n", "-c", "8", "-j", "2", "-M", "prepared", "-T", fmt.Sprint(int(load.Seconds())), "-f", script)
		done <- bench{out, err}
	}()
	time.Sleep(3 * time.Second) // pgbench under way
	if _, err := e.shardctl(ctx, "reshard", "cutover", "grow", "--batch", "2"); err != nil {
		return nil, err
	}
	b := <-done
	if b.err != nil {
		return nil, fmt.Errorf("pgbench during the cutover: %w", b.err)
	}
	var sum result
	if err := parseSummary(b.out, &sum); err != nil {
		return nil, err
	}
	r.WritesDuring = sum.Txns
	if o.verbose {
		logf("shardctl reshard start said:\n%s", p.log.String())
	}
	if w, err = store.Workflow(ctx, "grow"); err != nil {
		return nil, err
	}
	for _, b := range w.Batches {
		r.PausesMs = append(r.PausesMs, b.PauseMS)
	}
	sorted := slices.Sorted(slices.Values(r.PausesMs))
	r.PauseP50Ms = sorted[len(sorted)/2]
	r.PauseP99Ms = sorted[min(len(sorted)-1, len(sorted)*99/100)]
	return r, nil
}

// execOne runs one statement on dsn.
func execOne(ctx context.Context, dsn, sql string) error {
	conn, err := pgconn.Connect(ctx, dsn)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	return conn.Exec(ctx, sql).Close()
}

// shardctl runs the CLI against the gateway's etcd and returns its output.
func (e *env) shardctl(ctx context.Context, args ...string) (string, error) {
	c := exec.CommandContext(ctx, filepath.Join(e.binDir, "shardctl"), append([]string{"--etcd", e.etcd}, args...)...)
	out, err := c.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("shardctl %s: %s", strings.Join(args, " "), strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// waitWorkflow polls workflow grow's record until ok holds, the
// controller exits, or three minutes pass.
func waitWorkflow(ctx context.Context, store *topology.Store, ctl *proc, ok func(*topology.Workflow) bool) (*topology.Workflow, error) {
	deadline := time.Now().Add(3 * time.Minute)
	for {
		w, err := store.Workflow(ctx, "grow")
		if err != nil {
			return nil, err
		}
		if ok(w) {
			return w, nil
		}
		if err := ctl.running(); err != nil {
			return nil, err
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("workflow grow is still in phase %s (last error %q)", w.Phase, w.Error)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// plainCopy makes table on dst and streams copyOut's rows from src into
// it, as psql -c "COPY ... TO STDOUT" | psql -c "COPY ... FROM STDIN"
// would, and returns how many.
func plainCopy(ctx context.Context, srcDSN, dstDSN, table, copyOut string) (int64, error) {
	src, err := pgconn.Connect(ctx, srcDSN)
	if err != nil {
		return 0, err
	}
	defer src.Close(context.Background())
	dst, err := pgconn.Connect(ctx, dstDSN)
	if err != nil {
		return 0, err
	}
	defer dst.Close(context.Background())
	if err := dst.Exec(ctx, table).Close(); err != nil {
		return 0, err
	}
	pr, pw := io.Pipe()
	readErr := make(chan error, 1)
	go func() {
		_, err := src.CopyTo(ctx, pw, copyOut)
		pw.CloseWithError(err)
		readErr <- err
	}()
	tag, err := dst.CopyFrom(ctx, pr, "COPY accounts FROM STDIN")
	pr.CloseWithError(errors.New("done"))
	if rerr := <-readErr; rerr != nil {
		return 0, rerr
	}
	return tag.RowsAffected(), err
}

// printReshard adds the reshard lines to the report.
func printReshard(w io.Writer, r *reshardResult) {
	if r == nil {
		return
	}
	fmt.Fprintf(w, "\nreshard: copied %d rows at %.0f rows/s, a plain COPY | COPY of them at %.0f rows/s: %.2fx\n",
		r.Rows, r.ShardgateRowsPerS, r.PlainRowsPerS, r.Ratio)
	fmt.Fprintf(w, "reshard: %d cutover batches under %d pgbench updates, write pause p50 %.1f ms, p99 %.1f ms (all: %v)\n",
		len(r.PausesMs), r.WritesDuring, r.PauseP50Ms, r.PauseP99Ms, r.PausesMs)
}
