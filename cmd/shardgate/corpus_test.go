package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/shardgate/shardgate/internal/pgtest"
)

// The differential corpus: hand-written reads in testdata/corpus/<category>.sql
// plus seeded random ones, each run on one plain Postgres and through
// shardgate over four shards, in the simple and the extended protocol (text
// and binary results), and once more in sessions with unusual output
// settings. shardgate must answer exactly as Postgres does, or refuse with
// 0A000, which is counted per category rather than failed.

// corpusCategories are the corpus files, in the order the summary lists them.
var corpusCategories = []string{"point", "in_any", "ranges", "order_by", "limit", "aggregates",
	"group_by", "distinct", "types", "nulls", "errors", "empty", "set_ops", "ctes", "subqueries", "windows", "joins"}

const (
	// corpusSeed fixes the gateway's insert order and the random queries;
	// SHARDGATE_CORPUS_SEED overrides it to explore other seeds.
	corpusSeed = 20240229
	// corpusRandom is how many random queries join the hand-written ones.
	corpusRandom = 200
	// corpusTimeZone makes timestamptz output and zone-less literals depend
	// on a zone with DST, on both sides alike.
	corpusTimeZone = "America/New_York"
)

// corpusEnv is the sharded keyspace corpus over four shards plus the plain
// Postgres it is compared with.
type corpusEnv struct {
	*env
	plain *pgtest.Cluster
}

// newCorpusEnv is newEnv with four shards s0..s3 and keyspace corpus of 64
// logical shards (testdata/vschema/corpus.yaml), plus one plain Postgres.
func newCorpusEnv(t *testing.T) *corpusEnv {
	t.Helper()
	// All five servers start at once; the fifth is the plain one.
	clusters := pgtest.Start(t, 5)
	e := &env{t: t, shards: clusters[:4], etcdDir: t.TempDir()}
	e.startEtcd("")
	for i, c := range e.shards {
		e.shardctl(0, "shard", "add", fmt.Sprintf("s%d", i), "--dsn", c.DSN("postgres"))
	}
	e.shardctl(0, "keyspace", "create", "corpus", "--logical-shards", "64", "--shards", "s0,s1,s2,s3")
	e.shardctl(0, "vschema", "apply", repoPath("testdata/vschema/corpus.yaml"))
	e.gw = startGateway(t, e.etcd.Endpoints())
	return &corpusEnv{env: e, plain: clusters[4]}
}

// corpusStyles are startup settings of the "styled" sessions: output
// formats unlike the defaults, so a gateway that reads values from their
// text (to merge or to route) meets forms it may not expect.
var corpusStyles = map[string]string{"DateStyle": "SQL, DMY", "IntervalStyle": "postgres_verbose", "extra_float_digits": "0"}

// corpusConnect opens a session with the corpus's time zone and the given
// settings in the startup packet.
func corpusConnect(t *testing.T, dsn string, settings map[string]string) *pgconn.PgConn {
	t.Helper()
	cfg, err := pgconn.ParseConfig(dsn)
	if err != nil {
		t.Fatal(err)
	}
	cfg.RuntimeParams["TimeZone"] = corpusTimeZone
	maps.Copy(cfg.RuntimeParams, settings)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := pgconn.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	return c
}

// corpusQuery is one statement of the corpus.
type corpusQuery struct {
	category string
	where    string // file:line, or the random generator's seed and number
	sql      string
	ordered  bool // its ORDER BY fixes the row order
}

// readCorpus reads testdata/corpus/<category>.sql: statements end with a
// semicolon at the end of a line, optionally followed by "-- ordered";
// lines starting with -- are comments.
func readCorpus(t *testing.T, category string) []corpusQuery {
	t.Helper()
	rel := filepath.Join("testdata/corpus", category+".sql")
	data, err := os.ReadFile(repoPath(rel))
	if err != nil {
		t.Fatal(err)
	}
	var out []corpusQuery
	var cur []string
	start := 0
	for i, line := range strings.Split(string(data), "\n") {
		trimmed := strings.TrimSpace(line)
		if len(cur) == 0 && (trimmed == "" || strings.HasPrefix(trimmed, "--")) {
			continue
		}
		if len(cur) == 0 {
			start = i + 1
		}
		ordered := false
		if s, ok := strings.CutSuffix(trimmed, "-- ordered"); ok {
			trimmed, ordered = strings.TrimSpace(s), true
		}
		if !strings.HasSuffix(trimmed, ";") {
			if ordered {
				t.Fatalf("%s:%d: -- ordered must follow the statement's semicolon", rel, i+1)
			}
			cur = append(cur, line)
			continue
		}
		cur = append(cur, strings.TrimSuffix(trimmed, ";"))
		sql := strings.TrimSpace(strings.Join(cur, "\n"))
		if ordered && !strings.Contains(strings.ToLower(sql), "order by") {
			t.Fatalf("%s:%d: marked -- ordered without ORDER BY", rel, start)
		}
		out = append(out, corpusQuery{category: category, where: fmt.Sprintf("%s:%d", rel, start), sql: sql, ordered: ordered})
		cur = nil
	}
	if len(cur) > 0 {
		t.Fatalf("%s: statement from line %d lacks its semicolon", rel, start)
	}
	return out
}

// corpusAnswer is what one side answered to one statement in one protocol.
type corpusAnswer struct {
	fields []string // name, type OID, size, typmod, format of each column
	rows   []string // each row's values, quoted raw bytes or NULL
	tag    string
	code   string // SQLSTATE of an error
	err    string // the error's text, for the report
}

func (a *corpusAnswer) String() string {
	if a.err != "" {
		return "error " + a.err
	}
	s := fmt.Sprintf("%s; %d rows %q; fields %q", a.tag, len(a.rows), a.rows, a.fields)
	if len(s) > 600 {
		s = s[:600] + "..."
	}
	return s
}

// corpusProtocols are the ways each statement runs; "styled" is the
// simple protocol in sessions with corpusStyles.
var corpusProtocols = []string{"simple", "extended/text", "extended/binary", "styled"}

// corpusRun executes sql on c in protocol proto and records the answer;
// errors are answers too.
func corpusRun(c *pgconn.PgConn, proto, sql string) *corpusAnswer {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var results []*pgconn.Result
	var err error
	switch proto {
	case "simple", "styled":
		results, err = c.Exec(ctx, sql).ReadAll()
	case "extended/text":
		r := c.ExecParams(ctx, sql, nil, nil, nil, nil).Read()
		results, err = []*pgconn.Result{r}, r.Err
	case "extended/binary":
		r := c.ExecParams(ctx, sql, nil, nil, nil, []int16{1}).Read()
		results, err = []*pgconn.Result{r}, r.Err
	}
	a := &corpusAnswer{}
	if err != nil {
		var pe *pgconn.PgError
		if errors.As(err, &pe) {
			a.code, a.err = pe.Code, pe.Code+" "+pe.Message
		} else {
			a.code, a.err = "client", err.Error()
		}
		return a
	}
	if len(results) != 1 {
		a.code, a.err = "client", fmt.Sprintf("%d results to one statement", len(results))
		return a
	}
	r := results[0]
	for _, f := range r.FieldDescriptions {
		// Table OIDs and column numbers differ between databases by nature.
		a.fields = append(a.fields, fmt.Sprintf("%s:%d:%d:%d:%d", f.Name, f.DataTypeOID, f.DataTypeSize, f.TypeModifier, f.Format))
	}
	for _, row := range r.Rows {
		vals := make([]string, len(row))
		for i, v := range row {
			if v == nil {
				vals[i] = "NULL"
			} else {
				vals[i] = strconv.Quote(string(v))
			}
		}
		a.rows = append(a.rows, strings.Join(vals, ","))
	}
	a.tag = r.CommandTag.String()
	return a
}

// corpusOutcome classes one comparison.
type corpusOutcome int

const (
	corpusMatched    corpusOutcome = iota
	corpusRefused                  // 0A000 from shardgate where Postgres answers
	corpusRefusedErr               // 0A000 from shardgate where Postgres fails otherwise
	corpusMismatch
)

// corpusCompare compares shardgate's answer got with Postgres's want.
func corpusCompare(want, got *corpusAnswer, ordered bool) (corpusOutcome, string) {
	switch {
	case got.code == "0A000" && want.code == "":
		return corpusRefused, ""
	case got.code == "0A000" && want.code != "0A000":
		return corpusRefusedErr, ""
	case want.code != "" || got.code != "":
		// Errors are compared by SQLSTATE only: messages may name shards.
		if want.code != got.code {
			return corpusMismatch, "different outcome"
		}
		return corpusMatched, ""
	case !slices.Equal(want.fields, got.fields):
		return corpusMismatch, "different RowDescription"
	case want.tag != got.tag:
		return corpusMismatch, "different command tag"
	}
	if slices.Equal(want.rows, got.rows) {
		return corpusMatched, ""
	}
	sameSet := slices.Equal(slices.Sorted(slices.Values(want.rows)), slices.Sorted(slices.Values(got.rows)))
	switch {
	case !sameSet:
		return corpusMismatch, "different rows"
	case ordered:
		return corpusMismatch, "same rows in a different order"
	}
	return corpusMatched, ""
}

// corpusTally counts one category's outcomes, one per statement: its worst
// over the protocols.
type corpusTally struct{ queries, matched, refused, refusedErr, mismatched, styledOnly int }

func TestCorpus(t *testing.T) {
	seed := int64(corpusSeed)
	if s := os.Getenv("SHARDGATE_CORPUS_SEED"); s != "" {
		v, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			t.Fatalf("SHARDGATE_CORPUS_SEED: %v", err)
		}
		seed = v
	}
	t.Logf("corpus seed %d (set SHARDGATE_CORPUS_SEED to change it)", seed)

	var queries []corpusQuery
	for _, c := range corpusCategories {
		queries = append(queries, readCorpus(t, c)...)
	}
	if len(queries) < 600 {
		t.Fatalf("the corpus holds %d hand-written queries, want at least 600", len(queries))
	}
	queries = append(queries, corpusRandomQueries(seed, corpusRandom)...)

	start := time.Now()
	e := newCorpusEnv(t)
	direct := corpusConnect(t, e.plain.DSN("postgres"), nil)
	gw := corpusConnect(t, e.gw.dsn("corpus"), nil)
	corpusLoad(t, direct, gw, seed)
	corpusCheckSpread(t, e, direct)
	// sessions[proto] is {Postgres, shardgate} for that protocol.
	sessions := map[string][2]*pgconn.PgConn{}
	for _, proto := range corpusProtocols {
		sessions[proto] = [2]*pgconn.PgConn{direct, gw}
	}
	sessions["styled"] = [2]*pgconn.PgConn{corpusConnect(t, e.plain.DSN("postgres"), corpusStyles), corpusConnect(t, e.gw.dsn("corpus"), corpusStyles)}
	// reopen replaces the shardgate sessions after one broke. A gateway
	// that died (a panic) is restarted, so the rest of the corpus still
	// runs and every difference gets reported, not just the first.
	reopen := func() {
		select {
		case err := <-e.gw.exited:
			e.gw.exited <- err
			t.Errorf("shardgate exited (%v); restarting it for the rest of the corpus", err)
			e.gw = startGateway(t, e.etcd.Endpoints())
		case <-time.After(time.Second):
		}
		gw = corpusConnect(t, e.gw.dsn("corpus"), nil)
		for _, proto := range corpusProtocols {
			sessions[proto] = [2]*pgconn.PgConn{sessions[proto][0], gw}
		}
		sessions["styled"] = [2]*pgconn.PgConn{sessions["styled"][0], corpusConnect(t, e.gw.dsn("corpus"), corpusStyles)}
	}
	t.Logf("clusters up and data loaded in %s", time.Since(start).Round(time.Millisecond))

	tallies := map[string]*corpusTally{}
	var order []string
	for _, q := range queries {
		if tallies[q.category] == nil {
			tallies[q.category] = &corpusTally{}
			order = append(order, q.category)
		}
		tally := tallies[q.category]
		tally.queries++
		worst := corpusMatched
		var refusedIn []string
		var refusal string
		styledRefused := false
		for _, proto := range corpusProtocols {
			s := sessions[proto]
			want := corpusRun(s[0], proto, q.sql)
			got := corpusRun(s[1], proto, q.sql)
			if s[1].IsClosed() {
				t.Errorf("%s [%s] %s: shardgate closed the session: %s\n  query: %s", q.where, q.category, proto, got.err, q.sql)
				reopen()
			}
			if s[0].IsClosed() {
				t.Fatalf("%s: Postgres closed the session: %s", q.where, want.err)
			}
			if proto == "simple" {
				corpusSanity(t, q, want)
			}
			outcome, why := corpusCompare(want, got, q.ordered)
			switch outcome {
			case corpusMismatch:
				t.Errorf("%s [%s] %s: %s\n  query:     %s\n  postgres:  %s\n  shardgate: %s",
					q.where, q.category, proto, why, q.sql, want, got)
			case corpusRefused, corpusRefusedErr:
				refusedIn = append(refusedIn, proto)
				refusal = got.err
				if outcome == corpusRefusedErr {
					refusal += " (Postgres: " + want.err + ")"
				}
			}
			if proto == "styled" && outcome != corpusMismatch {
				// A refusal only under unusual output settings is counted
				// on its own, not against the protocols the table is about.
				styledRefused = styledRefused || outcome != corpusMatched
				continue
			}
			worst = max(worst, outcome)
		}
		if styledRefused && worst == corpusMatched {
			tally.styledOnly++
		}
		if len(refusedIn) > 0 {
			// Which statements are refused, and why, is what shrinks the
			// refusal rate next.
			t.Logf("refused %s in %v: %s\n    %.200s", q.where, refusedIn, q.sql, refusal)
		}
		switch worst {
		case corpusMatched:
			tally.matched++
		case corpusRefused:
			tally.refused++
		case corpusRefusedErr:
			tally.refused++
			tally.refusedErr++
		case corpusMismatch:
			tally.mismatched++
		}
	}

	var b bytes.Buffer
	w := tabwriter.NewWriter(&b, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(w, "category\tqueries\tmatched\trefused\tmismatched\tof matched, refused styled\t")
	var total corpusTally
	for _, c := range order {
		ta := tallies[c]
		fmt.Fprintf(w, "%s\t%d\t%d\t%d\t%d\t%d\t\n", c, ta.queries, ta.matched, ta.refused, ta.mismatched, ta.styledOnly)
		total.queries += ta.queries
		total.matched += ta.matched
		total.refused += ta.refused
		total.refusedErr += ta.refusedErr
		total.mismatched += ta.mismatched
		total.styledOnly += ta.styledOnly
	}
	fmt.Fprintf(w, "total\t%d\t%d\t%d\t%d\t%d\t\n", total.queries, total.matched, total.refused, total.mismatched, total.styledOnly)
	w.Flush()
	t.Logf("corpus results (seed %d), in %s:\n%srefusal rate: %.1f%%\nrefused where Postgres errors: %d\n"+
		"refused only in styled sessions (%v), matched otherwise: %d",
		seed, time.Since(start).Round(time.Millisecond), b.String(),
		100*float64(total.refused)/float64(total.queries), total.refusedErr, corpusStyles, total.styledOnly)
}

// corpusCheckSpread makes sure the rows really are spread over the four
// shards (and the reference table copied to each), so a gateway that kept
// everything on one shard cannot pass the corpus trivially.
func corpusCheckSpread(t *testing.T, e *corpusEnv, direct *pgconn.PgConn) {
	t.Helper()
	for _, table := range []string{"customers", "orders", "events", "devices", "regions"} {
		sql := "select count(*) from " + table
		want, _ := strconv.Atoi(mustQuery(t, direct, sql)[0][0])
		sum := 0
		for i := range e.shards {
			n, _ := strconv.Atoi(mustQuery(t, e.backend(i), sql)[0][0])
			switch {
			case table == "regions" && n != want:
				t.Fatalf("shard s%d holds %d rows of reference table regions, want %d", i, n, want)
			case table != "regions" && n == 0:
				t.Fatalf("shard s%d holds no rows of %s", i, table)
			}
			sum += n
		}
		if table != "regions" && sum != want {
			t.Fatalf("the shards hold %d rows of %s, Postgres %d", sum, table, want)
		}
	}
}

// TestCorpusCompare checks the comparison itself on made-up answers.
func TestCorpusCompare(t *testing.T) {
	rows := func(r ...string) *corpusAnswer {
		return &corpusAnswer{fields: []string{"a:25:-1:-1:0"}, rows: r, tag: fmt.Sprintf("SELECT %d", len(r))}
	}
	for _, c := range []struct {
		name      string
		want, got *corpusAnswer
		ordered   bool
		outcome   corpusOutcome
	}{
		{"same", rows(`"a"`, `"b"`), rows(`"a"`, `"b"`), true, corpusMatched},
		{"multiset", rows(`"a"`, `"b"`), rows(`"b"`, `"a"`), false, corpusMatched},
		{"order", rows(`"a"`, `"b"`), rows(`"b"`, `"a"`), true, corpusMismatch},
		{"duplicates", rows(`"a"`, `"a"`, `"b"`), rows(`"a"`, `"b"`, `"b"`), false, corpusMismatch},
		{"null is not empty", rows("NULL"), rows(`""`), false, corpusMismatch},
		{"type", rows(`"a"`), &corpusAnswer{fields: []string{"a:1043:-1:-1:0"}, rows: []string{`"a"`}, tag: "SELECT 1"}, false, corpusMismatch},
		{"refused", rows(`"a"`), &corpusAnswer{code: "0A000"}, false, corpusRefused},
		{"refused error", &corpusAnswer{code: "42703"}, &corpusAnswer{code: "0A000"}, false, corpusRefusedErr},
		{"both 0A000", &corpusAnswer{code: "0A000"}, &corpusAnswer{code: "0A000"}, false, corpusMatched},
		{"same error", &corpusAnswer{code: "22012", err: "x"}, &corpusAnswer{code: "22012", err: "y"}, false, corpusMatched},
		{"other error", &corpusAnswer{code: "22012"}, &corpusAnswer{code: "22003"}, false, corpusMismatch},
		{"error for rows", rows(), &corpusAnswer{code: "XX000"}, false, corpusMismatch},
		{"rows for error", &corpusAnswer{code: "22012"}, rows(), false, corpusMismatch},
	} {
		if got, _ := corpusCompare(c.want, c.got, c.ordered); got != c.outcome {
			t.Errorf("%s: outcome %d, want %d", c.name, got, c.outcome)
		}
	}
}

// corpusSanity checks the corpus itself against Postgres's answer, so a
// statement cannot silently test less than its category says.
func corpusSanity(t *testing.T, q corpusQuery, want *corpusAnswer) {
	t.Helper()
	switch {
	case q.category == "errors" && want.code == "":
		t.Errorf("%s: corpus statement in errors does not fail on Postgres: %s", q.where, q.sql)
	case q.category != "errors" && want.code != "":
		t.Errorf("%s: corpus statement fails on Postgres (%s): %s", q.where, want.err, q.sql)
	case q.category == "empty" && len(want.rows) > 0:
		t.Errorf("%s: corpus statement in empty returns %d rows on Postgres: %s", q.where, len(want.rows), q.sql)
	}
}

// corpusLoad creates the schema on both sides and loads
// testdata/corpus/data.sql: into Postgres in file order, into shardgate
// shuffled (seeded) and regrouped into multi-row INSERTs, so no answer can
// depend on insertion order without the comparison noticing.
func corpusLoad(t *testing.T, direct, gw *pgconn.PgConn, seed int64) {
	t.Helper()
	for _, s := range statements(t, "testdata/corpus/schema.sql") {
		mustQuery(t, direct, s)
		mustQuery(t, gw, s)
	}
	data, err := os.ReadFile(repoPath("testdata/corpus/data.sql"))
	if err != nil {
		t.Fatal(err)
	}
	// Each line is INSERT INTO t (cols) VALUES (row);
	type row struct{ prefix, values string }
	var rows []row
	for i, line := range strings.Split(string(data), "\n") {
		if !strings.HasPrefix(line, "INSERT INTO ") {
			continue
		}
		prefix, values, ok := strings.Cut(strings.TrimSuffix(line, ";"), " VALUES ")
		if !ok {
			t.Fatalf("data.sql:%d: not INSERT ... VALUES (...)", i+1)
		}
		rows = append(rows, row{prefix, values})
	}
	insert := func(c *pgconn.PgConn, rows []row, batch int) {
		for len(rows) > 0 {
			n := 1
			for n < len(rows) && n < batch && rows[n].prefix == rows[0].prefix {
				n++
			}
			vals := make([]string, n)
			for i := range n {
				vals[i] = rows[i].values
			}
			mustQuery(t, c, rows[0].prefix+" VALUES "+strings.Join(vals, ", "))
			rows = rows[n:]
		}
	}
	insert(direct, rows, 200)
	shuffled := slices.Clone(rows)
	rand.New(rand.NewSource(seed)).Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
	// Stable by table, so the batches stay shuffled but hold up to 25 rows.
	slices.SortStableFunc(shuffled, func(a, b row) int { return strings.Compare(a.prefix, b.prefix) })
	insert(gw, shuffled, 25)
	for _, s := range []string{"ANALYZE"} {
		mustQuery(t, direct, s)
		mustQuery(t, gw, s)
	}
}

// genTable describes a corpus table to the random generator.
type genTable struct {
	name    string
	key     string   // sharding column, "" for the reference table
	keyLits []string // literals of the sharding column, most of them present
	unique  string   // a column unique in the data, to fix an order
	cols    []genCol
}

// genCol is a column with literals to compare it with.
type genCol struct {
	name string
	lits []string
	// group: equal values always print alike, so GROUP BY it and min/max
	// of it give one answer (not float -0/0, numeric 1.5/1.50, interval
	// '1 day'/'24 hours').
	group bool
	// agg is "sum" for a column sum, min and max take, "minmax" for one
	// only min and max take, "" for neither.
	agg string
}

var genTables = []genTable{
	{name: "customers", key: "id", unique: "id",
		keyLits: []string{"-9223372036854775808", "9223372036854775807", "0", "-1", "1", "7", "42", "299", "300", "301", "100000"},
		cols: []genCol{
			{"name", []string{"'a'", "'A'", "'ä'", "''", "'cust 010'", "'zoe'"}, true, "minmax"},
			{"nick", []string{"'x'", "''", "'Nick'"}, true, "minmax"},
			{"code", []string{"'ab'", "'AB'", "''"}, true, "minmax"},
			{"region", []string{"'us'", "'de'", "'xx'"}, true, "minmax"},
			{"age", []string{"0", "18", "50", "99", "-32768"}, true, "sum"},
			{"score", []string{"0", "500", "-1000", "2147483647"}, true, "sum"},
			{"balance", []string{"0", "100.25", "-0.01"}, true, "sum"},
			{"ratio", []string{"1.5", "'NaN'", "0"}, false, ""},
			{"rating", []string{"0", "1.5", "'NaN'", "'-0'"}, false, ""},
			{"weight", []string{"0", "'Infinity'", "-10.5"}, false, ""},
			{"active", []string{"true", "false"}, true, ""},
			{"avatar", []string{`'\x00'`, `'\x'`}, true, ""},
			{"born", []string{"'2000-02-29'", "'1980-01-01'", "'infinity'"}, true, "minmax"},
			{"seen", []string{"'2021-06-01'", "'infinity'"}, true, "minmax"},
			{"joined", []string{"'2021-03-14 07:00:00+00'", "'2021-11-07 01:30:00'"}, true, "minmax"},
			{"trial", []string{"'1 day'", "'30 days'"}, false, ""},
		}},
	{name: "orders", key: "customer_id", unique: "id",
		keyLits: []string{"7", "1", "2", "9223372036854775807", "-9223372036854775808", "0", "100000", "-5", "5", "301"},
		cols: []genCol{
			{"qty", []string{"1", "5", "10", "32767"}, true, "sum"},
			{"amount", []string{"0", "100", "150.50", "299.75"}, true, "sum"},
			{"status", []string{"'paid'", "'Paid'", "''", "'new'"}, true, "minmax"},
			{"placed", []string{"'2021-03-14 07:00:00+00'", "'2021-06-15'", "'infinity'"}, true, "minmax"},
			{"due", []string{"'2021-06-15'", "'-infinity'"}, true, "minmax"},
			{"discount", []string{"0", "'NaN'", "5.25"}, false, ""},
			{"note", []string{"'a'", "'Ä'", "'日本'"}, true, "minmax"},
		}},
	{name: "events", key: "key", unique: "seq",
		keyLits: []string{"'a'", "'A'", "'ä'", "'Ä'", "''", "' '", "'a '", "'key-03'", "'ß'", "'nope'"},
		cols: []genCol{
			{"seq", []string{"1", "120", "300", "520"}, true, "sum"},
			{"kind", []string{"'click'", "'Click'", "''"}, true, "minmax"},
			{"val", []string{"1.5", "'NaN'", "0", "'Infinity'"}, false, ""},
			{"at", []string{"'2021-06-01'", "'infinity'"}, true, "minmax"},
			{"dur", []string{"'1 day'", "'1 mon'"}, false, ""},
			{"ok", []string{"true", "false"}, true, ""},
		}},
	{name: "devices", key: "id", unique: "id",
		keyLits: []string{"'00000000-0000-0000-0000-000000000000'", "'ffffffff-ffff-ffff-ffff-ffffffffffff'",
			"'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'", "'018eeb46-7d46-42f3-503d-b84f5416ecd2'", "'12345678-1234-1234-1234-123456789abc'"},
		cols: []genCol{
			{"owner_id", []string{"7", "0", "-10", "224"}, true, "sum"},
			{"model", []string{"'alpha'", "'Alpha'", "'Ω-1'", "''"}, true, "minmax"},
			{"serial", []string{"''", "'SN0100'"}, true, "minmax"},
			{"fw", []string{"100", "104"}, true, "sum"},
			{"temp", []string{"0", "'NaN'", "-10.25"}, false, ""},
			{"seen", []string{"'2021-11-07 06:00:00+00'"}, true, "minmax"},
		}},
	{name: "regions", unique: "code",
		cols: []genCol{
			{"name", []string{"''", "'France'"}, true, "minmax"},
			{"tz", []string{"'Europe/Paris'"}, true, "minmax"},
			{"rank", []string{"1", "2"}, true, "sum"},
		}},
}

// corpusRandomQueries returns n SELECTs drawn from a small grammar:
// projections of columns, WHERE on the sharding column and others, ORDER
// BY ending in a unique column, LIMIT/OFFSET only under such an ORDER BY,
// count, sum, min and max with or without GROUP BY. Each names the seed
// that makes it again.
func corpusRandomQueries(seed int64, n int) []corpusQuery {
	r := rand.New(rand.NewSource(seed))
	pick := func(xs []string) string { return xs[r.Intn(len(xs))] }
	var out []corpusQuery
	for i := range n {
		t := genTables[r.Intn(len(genTables))]
		col := func() genCol { return t.cols[r.Intn(len(t.cols))] }
		var where []string
		if t.key != "" && r.Intn(3) > 0 {
			switch r.Intn(4) {
			case 0, 1:
				where = append(where, fmt.Sprintf("%s = %s", t.key, pick(t.keyLits)))
			case 2:
				where = append(where, fmt.Sprintf("%s IN (%s, %s, %s)", t.key, pick(t.keyLits), pick(t.keyLits), pick(t.keyLits)))
			case 3:
				where = append(where, fmt.Sprintf("(%s = %s OR %s = %s)", t.key, pick(t.keyLits), t.key, pick(t.keyLits)))
			}
		}
		for range r.Intn(3) {
			c := col()
			switch r.Intn(5) {
			case 0:
				where = append(where, c.name+" IS NULL")
			case 1:
				where = append(where, c.name+" IS NOT NULL")
			default:
				where = append(where, fmt.Sprintf("%s %s %s", c.name, pick([]string{"=", "<>", "<", ">="}), pick(c.lits)))
			}
		}
		whereSQL := ""
		if len(where) > 0 {
			whereSQL = " WHERE " + strings.Join(where, pick([]string{" AND ", " AND ", " OR "}))
		}
		var sql string
		ordered := false
		switch r.Intn(5) {
		case 0: // count, or counts per group
			groupBy := t.key
			if groupBy == "" || r.Intn(2) == 0 {
				for {
					if c := col(); c.group {
						groupBy = c.name
						break
					}
				}
			}
			aggs := []string{"count(*)"}
			for range r.Intn(3) {
				switch c := col(); {
				case c.agg == "sum" && r.Intn(2) == 0:
					aggs = append(aggs, fmt.Sprintf("sum(%s)", c.name))
				case c.agg != "":
					aggs = append(aggs, fmt.Sprintf("%s(%s)", pick([]string{"min", "max"}), c.name))
				default:
					aggs = append(aggs, fmt.Sprintf("count(%s)", c.name))
				}
			}
			switch r.Intn(3) {
			case 0:
				sql = fmt.Sprintf("SELECT %s FROM %s%s", strings.Join(aggs, ", "), t.name, whereSQL)
			default:
				sql = fmt.Sprintf("SELECT %s, %s FROM %s%s GROUP BY %s", groupBy, strings.Join(aggs, ", "), t.name, whereSQL, groupBy)
				if r.Intn(2) == 0 {
					// The group column is unique in the answer.
					sql += fmt.Sprintf(" ORDER BY %s %s", groupBy, pick([]string{"ASC", "DESC", "NULLS FIRST", "DESC NULLS LAST"}))
					ordered = true
				}
			}
		default: // rows
			proj := "*"
			if r.Intn(5) > 0 {
				var cols []string
				for range 1 + r.Intn(4) {
					cols = append(cols, col().name)
				}
				if r.Intn(2) == 0 {
					cols = append(cols, t.unique)
				}
				proj = strings.Join(cols, ", ")
			}
			sql = fmt.Sprintf("SELECT %s FROM %s%s", proj, t.name, whereSQL)
			if r.Intn(2) == 0 {
				var keys []string
				for range r.Intn(3) {
					keys = append(keys, col().name+pick([]string{"", " DESC", " NULLS FIRST", " DESC NULLS LAST"}))
				}
				keys = append(keys, t.unique+pick([]string{"", " DESC"}))
				sql += " ORDER BY " + strings.Join(keys, ", ")
				ordered = true
				if r.Intn(2) == 0 {
					sql += fmt.Sprintf(" LIMIT %d", r.Intn(30))
				}
				if r.Intn(3) == 0 {
					sql += fmt.Sprintf(" OFFSET %d", r.Intn(20))
				}
			}
		}
		out = append(out, corpusQuery{category: "random", where: fmt.Sprintf("random query %d of seed %d", i+1, seed), sql: sql, ordered: ordered})
	}
	return out
}
