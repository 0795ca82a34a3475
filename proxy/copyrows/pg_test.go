package copyrows

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/shardgate/shardgate/internal/pgtest"
)

// TestAgainstPostgres checks the Splitter against PostgreSQL's own COPY FROM:
// the hand-written cases of TestSplitter, and streams of random rows with
// every character that matters to the formats.
func TestAgainstPostgres(t *testing.T) {
	pg := pgtest.Start(t, 1)[0]
	ctx := t.Context()
	conn, err := pgconn.Connect(ctx, pg.DSN("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	db := &pgDB{t: t, ctx: ctx, conn: conn}
	version, err := strconv.Atoi(string(db.query("show server_version_num")[0][0]))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("PostgreSQL %d", version)

	t.Run("cases", func(t *testing.T) {
		db.t = t
		for _, tc := range splitCases {
			if tc.ncols == 0 {
				continue
			}
			t.Run(tc.name, func(t *testing.T) {
				db.t = t
				// The case's expectations are for its own ServerVersion; here
				// the Splitter must agree with the server at hand.
				opts := tc.opts
				opts.ServerVersion = version
				compareCase(db, opts, tc.key, tc.ncols, tc.in)
			})
		}
	})
	t.Run("random-bytes", func(t *testing.T) {
		db.t = t
		compareRandomBytes(db, version)
	})
	for i, cfg := range randomConfigs(version) {
		t.Run("random/"+cfg.name, func(t *testing.T) {
			db.t = t
			compareRandom(db, cfg, uint64(i+1))
		})
	}
}

// pgDB runs statements for a test, failing it on any error.
type pgDB struct {
	t    *testing.T
	ctx  context.Context
	conn *pgconn.PgConn
}

func (db *pgDB) exec(sql string) {
	db.t.Helper()
	if _, err := db.conn.Exec(db.ctx, sql).ReadAll(); err != nil {
		db.t.Fatalf("%s: %v", sql, err)
	}
}

func (db *pgDB) query(sql string) [][][]byte {
	db.t.Helper()
	res, err := db.conn.Exec(db.ctx, sql).ReadAll()
	if err != nil {
		db.t.Fatalf("%s: %v", sql, err)
	}
	return res[len(res)-1].Rows
}

func (db *pgDB) copyIn(sql string, data []byte) error {
	_, err := db.conn.CopyFrom(db.ctx, bytes.NewReader(data), sql)
	return err
}

func quoteLiteral(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// copySQL is the COPY statement for opts, with the key column keyCol.
func copySQL(table string, cols []string, keyCol string, o Options) string {
	var with []string
	if o.CSV {
		with = append(with, "FORMAT csv")
		if o.Quote != 0 {
			with = append(with, "QUOTE "+quoteLiteral(string(o.Quote)))
		}
		if o.Escape != 0 {
			with = append(with, "ESCAPE "+quoteLiteral(string(o.Escape)))
		}
		if o.ForceNull {
			with = append(with, "FORCE_NULL ("+keyCol+")")
		}
		if o.ForceNotNull {
			with = append(with, "FORCE_NOT_NULL ("+keyCol+")")
		}
	} else {
		with = append(with, "FORMAT text")
	}
	if o.Delimiter != 0 {
		with = append(with, "DELIMITER "+quoteLiteral(string(o.Delimiter)))
	}
	with = append(with, "NULL "+quoteLiteral(o.Null), fmt.Sprintf("HEADER %t", o.Header))
	return fmt.Sprintf("COPY %s (%s) FROM STDIN WITH (%s)", table, strings.Join(cols, ", "), strings.Join(with, ", "))
}

var whereLine = regexp.MustCompile(`line (\d+)`)

// pgCopy loads data into a new table of text columns and returns the table's
// rows in arrival order (each value as "NULL" or quoted), or PostgreSQL's
// error.
func pgCopy(db *pgDB, table string, cols []string, keyCol string, opts Options, data []byte) ([][]string, *pgconn.PgError) {
	db.t.Helper()
	defs := []string{"arrival bigserial"}
	for _, c := range cols {
		defs = append(defs, c+" text")
	}
	db.exec(fmt.Sprintf("drop table if exists %s; create table %s (%s)", table, table, strings.Join(defs, ", ")))
	if err := db.copyIn(copySQL(table, cols, keyCol, opts), data); err != nil {
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) {
			db.t.Fatalf("COPY: %v", err)
		}
		return nil, pgErr
	}
	var sel []string
	for _, c := range cols {
		sel = append(sel, fmt.Sprintf("%s is null, coalesce(%s, '')", c, c))
	}
	var out [][]string
	for _, r := range db.query(fmt.Sprintf("select %s from %s order by arrival", strings.Join(sel, ", "), table)) {
		var vals []string
		for i := 0; i < len(r); i += 2 {
			vals = append(vals, showValue(string(r[i+1]), string(r[i]) == "t"))
		}
		out = append(out, vals)
	}
	return out, nil
}

func showValue(v string, null bool) string {
	if null {
		return "NULL"
	}
	return strconv.Quote(v)
}

// splitRows splits data and returns the rows' raw bytes, concatenated, and
// their keys as showValue prints them, or the Splitter's error.
func splitRows(t *testing.T, opts Options, key int, chunks [][]byte) (raw []byte, keys []string, err error) {
	s, err := NewSplitter(opts, key)
	if err != nil {
		t.Fatal(err)
	}
	fn := func(row, k []byte, null bool) error {
		raw = append(raw, row...)
		keys = append(keys, showValue(string(k), null))
		return nil
	}
	for _, c := range chunks {
		if err := s.Write(c, fn); err != nil {
			return nil, nil, err
		}
	}
	if err := s.Close(fn); err != nil {
		return nil, nil, err
	}
	return raw, keys, nil
}

// compareRows checks that the Splitter's keys are PostgreSQL's values of the
// key column, and that the rows it emitted, loaded on their own (as a shard
// would get them), give the same table.
func compareRows(db *pgDB, cols []string, key int, opts Options, want [][]string, raw []byte, keys []string) {
	t := db.t
	t.Helper()
	if len(keys) != len(want) {
		t.Fatalf("Splitter emitted %d rows, PostgreSQL stored %d", len(keys), len(want))
	}
	for i := range want {
		if keys[i] != want[i][key] {
			t.Fatalf("row %d: Splitter key %s, PostgreSQL stored %s (row %v)", i, keys[i], want[i][key], want[i])
		}
	}
	shardOpts := opts
	shardOpts.Header = false
	got, pgErr := pgCopy(db, "shard", cols, cols[key], shardOpts, raw)
	if pgErr != nil {
		t.Fatalf("COPY of the emitted rows failed: %s (%s)\nrows: %q", pgErr.Message, pgErr.Where, raw)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("the emitted rows load as\n%v\nthe input as\n%v", got, want)
	}
}

func compareCase(db *pgDB, opts Options, key, ncols int, in string) {
	t := db.t
	var cols []string
	for i := range ncols {
		cols = append(cols, fmt.Sprintf("c%d", i+1))
	}
	want, pgErr := pgCopy(db, "t", cols, cols[key], opts, []byte(in))
	raw, keys, err := splitRows(t, opts, key, [][]byte{[]byte(in)})
	if pgErr != nil {
		pgLine := 0
		if m := whereLine.FindStringSubmatch(pgErr.Where); m != nil {
			pgLine, _ = strconv.Atoi(m[1])
		}
		var e *Error
		switch {
		case !errors.As(err, &e):
			t.Fatalf("PostgreSQL: %s (%s); Splitter: %v", pgErr.Message, pgErr.Where, err)
		case strings.HasPrefix(e.Message, "row has only"):
			if !strings.HasPrefix(pgErr.Message, "missing data for column") || pgLine != e.Line {
				t.Fatalf("PostgreSQL: %s (%s); Splitter: %s on line %d", pgErr.Message, pgErr.Where, e.Message, e.Line)
			}
		case e.Message != pgErr.Message || e.Line != pgLine || e.Hint != pgErr.Hint:
			t.Fatalf("PostgreSQL: %s (%s, hint %q); Splitter: %s on line %d (hint %q)",
				pgErr.Message, pgErr.Where, pgErr.Hint, e.Message, e.Line, e.Hint)
		}
		return
	}
	if err != nil {
		t.Fatalf("PostgreSQL loads %v; Splitter: %v", want, err)
	}
	compareRows(db, cols, key, opts, want, raw, keys)
}

// randomConfig is one format for random streams.
type randomConfig struct {
	name   string
	opts   Options
	eol    string
	cols   []string // the order of the fields in the data; "k" is the key
	marker bool     // end with `\.` and garbage after it
}

func randomConfigs(version int) []randomConfig {
	o := func(base Options, f func(*Options)) Options {
		base.ServerVersion = version
		if f != nil {
			f(&base)
		}
		return base
	}
	return []randomConfig{
		{"text", o(text, nil), "\n", []string{"ord", "k", "v"}, true},
		{"text-crlf", o(text, nil), "\r\n", []string{"k", "v", "ord"}, false},
		{"text-cr-pipe-null", o(text, func(o *Options) { o.Delimiter = '|'; o.Null = "NULL" }), "\r", []string{"v", "ord", "k"}, true},
		{"text-header-empty-null", o(text, func(o *Options) { o.Header = true; o.Null = "" }), "\n", []string{"ord", "v", "k"}, false},
		{"csv", o(csv, nil), "\n", []string{"ord", "k", "v"}, version < 180000},
		{"csv-crlf-options", o(csv, func(o *Options) { o.Delimiter = ';'; o.Quote = '\''; o.Escape = '\\'; o.Null = "NULL" }),
			"\r\n", []string{"k", "ord", "v"}, version < 180000},
		{"csv-cr-tab-header", o(csv, func(o *Options) { o.Delimiter = '\t'; o.Null = `\N`; o.Header = true }),
			"\r", []string{"v", "k", "ord"}, false},
		{"csv-escape-force-null", o(csv, func(o *Options) { o.Escape = '\\'; o.ForceNull = true }), "\n", []string{"k", "v", "ord"}, false},
		{"csv-force-not-null", o(csv, func(o *Options) { o.Null = "NULL"; o.ForceNotNull = true }), "\r\n", []string{"ord", "k", "v"}, false},
	}
}

// pieces are what random values are made of: everything special to either
// format, multibyte characters, and look-alikes of escapes and markers.
var pieces = []string{
	"a", "b", "Z", "U", "L", "0", "7", "8", "x", "N", "NULL", " ", ",", ";", "|", "\t", `"`, "'",
	`\`, `\N`, `\.`, ".", "\n", "\r", "\r\n", "é", "日本", "😀", "\b", "\f", "\v", "\x01", "\x7f", "x41", "A", "f",
}

func randomValue(rng *rand.Rand) *string {
	var v string
	switch p := rng.IntN(100); {
	case p < 10:
		return nil
	case p < 15:
		v = ""
	case p < 25:
		v = []string{`\N`, "NULL", `\.`, ".", `""`, "N", "\\", "\n", " "}[rng.IntN(9)]
	default:
		for range 1 + rng.IntN(8) {
			v += pieces[rng.IntN(len(pieces))]
		}
	}
	return &v
}

// encodeText writes v as a text-format field, choosing among the equivalent
// escapes at random.
func encodeText(rng *rand.Rand, v string, delim byte, null string) string {
	for {
		var b strings.Builder
		for i := 0; i < len(v); i++ {
			c := v[i]
			lit := string([]byte{c})
			octal := fmt.Sprintf(`\%03o`, c)
			hex := fmt.Sprintf(`\x%02x`, c)
			if rng.IntN(2) == 0 {
				hex = fmt.Sprintf(`\x%02X`, c)
			}
			pick := func(alts ...string) { b.WriteString(alts[rng.IntN(len(alts))]) }
			switch {
			case c == '\\':
				pick(`\\`, octal, hex)
			case c == '\n':
				pick(`\n`, octal, hex, "\\\n")
			case c == '\r':
				pick(`\r`, octal, hex, "\\\r")
			case c == delim:
				pick(`\`+lit, octal, hex)
			case c == '\t':
				pick("\t", `\t`, octal)
			case c == '\b':
				pick("\b", `\b`)
			case c == '\v':
				pick("\v", `\v`)
			case c >= 0x80:
				// PostgreSQL checks the encoding before de-escaping, so a
				// character is written all literally or all escaped.
				_, size := utf8.DecodeRuneInString(v[i:])
				if rng.IntN(3) > 0 {
					b.WriteString(v[i : i+size])
				} else {
					for _, c := range []byte(v[i : i+size]) {
						fmt.Fprintf(&b, []string{`\%03o`, `\x%02x`, `\x%02X`}[rng.IntN(3)], c)
					}
				}
				i += size - 1
			case strings.IndexByte("acdeghijklmopqsuwyzACDLNUZ", c) >= 0:
				pick(lit, `\`+lit, octal)
			case c == '.':
				pick(".", octal, hex) // never `\.`: that is the end-of-data marker
			default:
				pick(lit, lit, octal, hex)
			}
		}
		if enc := b.String(); enc != null {
			return enc
		}
		// The value came out as the null marker; escape it differently.
	}
}

// encodeCSV writes v as a CSV field: unquoted where possible, else (or at
// random) quoted entirely or in part.
func encodeCSV(rng *rand.Rand, v string, o Options) string {
	esc := o.Escape
	if esc == 0 {
		esc = o.Quote
	}
	special := string([]byte{o.Delimiter, o.Quote, '\n', '\r'})
	mustQuote := v == o.Null || strings.ContainsAny(v, special)
	quoted := func(s string) string {
		var b strings.Builder
		b.WriteByte(o.Quote)
		for i := 0; i < len(s); i++ {
			c := s[i]
			switch {
			case c == o.Quote:
				b.WriteByte(esc)
				b.WriteByte(c)
			case c == esc:
				// A lone escape character is data unless a quote or
				// another escape character follows (the closing quote
				// follows the last one).
				next := i + 1
				if next < len(s) && s[next] != o.Quote && s[next] != esc && rng.IntN(2) == 0 {
					b.WriteByte(c)
				} else {
					b.WriteByte(esc)
					b.WriteByte(c)
				}
			default:
				b.WriteByte(c)
			}
		}
		b.WriteByte(o.Quote)
		return b.String()
	}
	switch p := rng.IntN(100); {
	case mustQuote && (p < 20 || v == o.Null):
		return quoted(v)
	case mustQuote:
		// Quote only the part from the first special byte on, and maybe
		// leave a plain tail unquoted.
		i := strings.IndexAny(v, special)
		if i < 0 {
			i = len(v)
		}
		j := len(v)
		if k := strings.LastIndexAny(v, special); k >= 0 && rng.IntN(2) == 0 {
			j = k + 1
		}
		return v[:i] + quoted(v[i:j]) + v[j:]
	case p < 25:
		return quoted(v)
	case p < 35:
		i := rng.IntN(len(v) + 1)
		for i < len(v) && !utf8.RuneStart(v[i]) {
			i++ // a quote inside a UTF-8 sequence would make it invalid
		}
		return v[:i] + quoted(v[i:])
	}
	return v
}

func compareRandom(db *pgDB, cfg randomConfig, seed uint64) {
	t := db.t
	rng := rand.New(rand.NewPCG(seed, 42))
	const nrows = 1500
	o := cfg.opts
	delim := o.Delimiter
	encode := func(v *string) string {
		if v == nil {
			return o.Null
		}
		if o.CSV {
			return encodeCSV(rng, *v, o)
		}
		return encodeText(rng, *v, delim, o.Null)
	}
	var data bytes.Buffer
	if o.Header {
		if o.CSV {
			fmt.Fprintf(&data, "%cheader%sspans lines%c%c\"k\"%cv%s", o.Quote, cfg.eol, o.Quote, delim, delim, cfg.eol)
		} else {
			fmt.Fprintf(&data, "header\\%sspans lines%ck%cv%s", cfg.eol, delim, delim, cfg.eol)
		}
	}
	keyField := -1
	var want [][]string
	for i := range nrows {
		vals := map[string]*string{"ord": new(strconv.Itoa(i)), "k": randomValue(rng), "v": randomValue(rng)}
		for col, v := range vals {
			// In text format an empty string cannot be told from the
			// null marker "".
			if v != nil && *v == "" && o.Null == "" && !o.CSV {
				vals[col] = nil
			}
		}
		var fields []string
		var row []string
		for f, col := range cfg.cols {
			if col == "k" {
				keyField = f
			}
			fields = append(fields, encode(vals[col]))
			v := vals[col]
			switch {
			case col == "k" && o.CSV && o.ForceNotNull && v == nil:
				v = new(o.Null)
			case col == "k" && o.CSV && o.ForceNull && v != nil && *v == o.Null:
				v = nil
			}
			if v == nil {
				row = append(row, "NULL")
			} else {
				row = append(row, strconv.Quote(*v))
			}
		}
		want = append(want, row)
		data.WriteString(strings.Join(fields, string(delim)))
		if i < nrows-1 || rng.IntN(2) == 0 || cfg.marker {
			data.WriteString(cfg.eol)
		}
	}
	if cfg.marker {
		data.WriteString(`\.` + cfg.eol + "garbage\t\"\\ after the marker\n")
	}
	in := data.Bytes()

	got, pgErr := pgCopy(db, "t", cfg.cols, "k", o, in)
	if pgErr != nil {
		t.Fatalf("PostgreSQL rejected the generated data: %s (%s)", pgErr.Message, pgErr.Where)
	}
	// The generator and PostgreSQL agree on what the data means...
	if !reflect.DeepEqual(got, want) {
		for i := range min(len(got), len(want)) {
			if !reflect.DeepEqual(got[i], want[i]) {
				t.Fatalf("row %d: PostgreSQL stored %v, generated %v", i, got[i], want[i])
			}
		}
		t.Fatalf("PostgreSQL stored %d rows, generated %d", len(got), len(want))
	}
	// ...and the Splitter agrees with PostgreSQL, however the data is cut.
	var chunks [][]byte
	for p := 0; p < len(in); {
		n := 1 + rng.IntN(200)
		if rng.IntN(10) == 0 {
			n = 8192
		}
		n = min(n, len(in)-p)
		chunks = append(chunks, in[p:p+n])
		p += n
	}
	raw, keys, err := splitRows(t, o, keyField, chunks)
	if err != nil {
		t.Fatalf("Splitter: %v", err)
	}
	compareRows(db, cfg.cols, keyField, o, got, raw, keys)
}

// compareRandomBytes compares short random inputs made of the bytes that
// matter to line splitting (newlines, backslashes, dots, quotes), one field
// per line, so that only the line splitting and the key's decoding can make
// PostgreSQL and the Splitter differ, including in their errors.
func compareRandomBytes(db *pgDB, version int) {
	rng := rand.New(rand.NewPCG(7, 7))
	textAlphabet := []string{"z", "g", "N", "x", "4", "1", ".", "\\", "\\", "\n", "\n", "\r", "\r\n"}
	csvAlphabet := []string{"a", "N", ".", "\\", "\\", "\"", "\"", "\n", "\n", "\r", "\r\n"}
	for _, c := range []struct {
		opts     Options
		alphabet []string
	}{
		{text, textAlphabet},
		{with(text, func(o *Options) { o.Header = true }), textAlphabet},
		{with(csv, func(o *Options) { o.Delimiter = '|' }), csvAlphabet},
		{with(csv, func(o *Options) { o.Delimiter = '|'; o.Escape = '\\' }), csvAlphabet},
	} {
		c.opts.ServerVersion = version
		for range 150 {
			var b strings.Builder
			for range rng.IntN(16) {
				b.WriteString(c.alphabet[rng.IntN(len(c.alphabet))])
			}
			in := b.String()
			db.t.Run(fmt.Sprintf("%q", in), func(t *testing.T) {
				parent := db.t
				db.t = t
				defer func() { db.t = parent }()
				compareCase(db, c.opts, 0, 1, in)
			})
		}
	}
}
