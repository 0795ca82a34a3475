package copyrows

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
)

// row is one row a Splitter emitted, copied out of the callback.
type row struct {
	Raw  string
	Key  string
	Null bool
}

func r(raw, key string) row { return row{Raw: raw, Key: key} }
func n(raw string) row      { return row{Raw: raw, Null: true} }

// outcome is everything a Splitter reported for one input.
type outcome struct {
	Header []string
	Rows   []row
	Err    string // message of the *Error, "" if none
	Line   int
	Done   bool
}

func (o outcome) String() string {
	var b strings.Builder
	for _, h := range o.Header {
		fmt.Fprintf(&b, "header %q\n", h)
	}
	for _, r := range o.Rows {
		if r.Null {
			fmt.Fprintf(&b, "row %q key NULL\n", r.Raw)
		} else {
			fmt.Fprintf(&b, "row %q key %q\n", r.Raw, r.Key)
		}
	}
	if o.Err != "" {
		fmt.Fprintf(&b, "error line %d: %s\n", o.Line, o.Err)
	}
	return b.String()
}

// split feeds chunks to a new Splitter and collects what it reports. Each
// chunk is a private copy that is scribbled over after Write returns, so a
// Splitter that keeps pointing into a chunk is caught.
func split(t testing.TB, opts Options, key int, chunks [][]byte) outcome {
	t.Helper()
	s, err := NewSplitter(opts, key)
	if err != nil {
		t.Fatalf("NewSplitter: %v", err)
	}
	var out outcome
	fn := func(raw, k []byte, null bool) error {
		if null && k != nil {
			t.Errorf("NULL key with non-nil bytes %q", k)
		}
		out.Rows = append(out.Rows, row{Raw: string(raw), Key: string(k), Null: null})
		return nil
	}
	s.SetHeaderFunc(func(line []byte) error {
		out.Header = append(out.Header, string(line))
		return nil
	})
	fail := func(err error) outcome {
		var e *Error
		if !errors.As(err, &e) {
			t.Fatalf("error %v is not an *Error", err)
		}
		if e.Code != CodeBadCopyFileFormat {
			t.Errorf("error %q has SQLSTATE %s, want %s", e.Message, e.Code, CodeBadCopyFileFormat)
		}
		out.Err, out.Line = e.Message, e.Line
		// Errors are sticky.
		if err2 := s.Write([]byte("x\n"), fn); err2 != err {
			t.Errorf("Write after error returned %v, want %v", err2, err)
		}
		if err2 := s.Close(fn); err2 != err {
			t.Errorf("Close after error returned %v, want %v", err2, err)
		}
		return out
	}
	for _, c := range chunks {
		c = bytes.Clone(c)
		if err := s.Write(c, fn); err != nil {
			return fail(err)
		}
		for i := range c {
			c[i] = '#'
		}
	}
	if err := s.Close(fn); err != nil {
		return fail(err)
	}
	out.Done = s.Done()
	return out
}

// splitAllWays feeds in whole, split in two at every position, and one byte at
// a time, checks that every way gives the same outcome, and returns it.
func splitAllWays(t *testing.T, opts Options, key int, in string) outcome {
	t.Helper()
	whole := split(t, opts, key, [][]byte{[]byte(in)})
	check := func(how string, got outcome) {
		t.Helper()
		if !reflect.DeepEqual(got, whole) {
			t.Fatalf("fed %s:\n%s\nfed whole:\n%s", how, got, whole)
		}
	}
	for i := 0; i <= len(in); i++ {
		check(fmt.Sprintf("split at %d", i), split(t, opts, key, [][]byte{[]byte(in[:i]), []byte(in[i:])}))
	}
	var bytewise [][]byte
	for i := range len(in) {
		bytewise = append(bytewise, []byte{in[i]})
	}
	check("one byte at a time", split(t, opts, key, bytewise))
	check("with empty chunks", split(t, opts, key, [][]byte{nil, []byte(in), {}}))
	return whole
}

func with(o Options, f func(*Options)) Options { f(&o); return o }

var (
	text   = TextOptions()
	csv    = CSVOptions()
	text18 = with(text, func(o *Options) { o.ServerVersion = 180000 })
	csv18  = with(csv, func(o *Options) { o.ServerVersion = 180000 })
)

type splitCase struct {
	name   string
	opts   Options
	key    int
	in     string
	header string
	want   []row
	err    string // error message, with the rows before it in want
	line   int
	// ncols > 0 has the differential test COPY the input into a table of
	// ncols text columns on a real PostgreSQL and compare.
	ncols int
}

var splitCases = []splitCase{
	// Text format.
	{name: "text rows", opts: text, key: 0, in: "a\tb\nc\td\n", ncols: 2,
		want: []row{r("a\tb\n", "a"), r("c\td\n", "c")}},
	{name: "text second field", opts: text, key: 1, in: "a\tb\nc\td\n", ncols: 2,
		want: []row{r("a\tb\n", "b"), r("c\td\n", "d")}},
	{name: "text last of three fields", opts: text, key: 2, in: "a\tb\tc\n", ncols: 3,
		want: []row{r("a\tb\tc\n", "c")}},
	{name: "text empty fields", opts: text, key: 1, in: "\t\n\n", ncols: 2,
		want: []row{r("\t\n", "")},
		err:  "row has only 1 field, sharding column is field 2", line: 2},
	{name: "text empty line", opts: text, key: 0, in: "\nx\n", ncols: 1,
		want: []row{r("\n", ""), r("x\n", "x")}},
	{name: "text letter escapes", opts: text, key: 0, in: `\b\f\n\r\t\v|\a\\\Nx` + "\tv\n", ncols: 2,
		want: []row{r(`\b\f\n\r\t\v|\a\\\Nx`+"\tv\n", "\b\f\n\r\t\v|a\\Nx")}},
	{name: "text octal escapes", opts: text, key: 0, in: `\101\0102\7777\1\18\0` + "\n",
		want: []row{r(`\101\0102\7777\1\18\0`+"\n", "A\b2\xff7\x01\x018\x00")}},
	{name: "text hex escapes", opts: text, key: 0, in: `\x41\x4g\xg\xFf\x0` + "\tv\n",
		want: []row{r(`\x41\x4g\xg\xFf\x0`+"\tv\n", "A\x04gxg\xff\x00")}},
	{name: "text hex utf8", opts: text, key: 0, in: `\xc3\xa9\303\251é` + "\tv\n", ncols: 2,
		want: []row{r(`\xc3\xa9\303\251é`+"\tv\n", "ééé")}},
	{name: "text escaped delimiter", opts: text, key: 1, in: "a\\\tb\tc\n", ncols: 2,
		want: []row{r("a\\\tb\tc\n", "c")}},
	{name: "text escaped delimiter in key", opts: text, key: 0, in: "a\\\tb\tc\n", ncols: 2,
		want: []row{r("a\\\tb\tc\n", "a\tb")}},
	{name: "text escaped newline", opts: text, key: 1, in: "a\\\nb\tc\\\nd\ne\tf\n", ncols: 2,
		want: []row{r("a\\\nb\tc\\\nd\n", "c\nd"), r("e\tf\n", "f")}},
	{name: "text escaped carriage return", opts: text, key: 0, in: "a\\\rb\tc\n", ncols: 2,
		want: []row{r("a\\\rb\tc\n", "a\rb")}},
	{name: "text null", opts: text, key: 0, in: "\\N\tx\n\\\\N\ty\nN\tz\n\\N \tw\n", ncols: 2,
		want: []row{n("\\N\tx\n"), r("\\\\N\ty\n", `\N`), r("N\tz\n", "N"), r("\\N \tw\n", "N ")}},
	{name: "text custom null", opts: with(text, func(o *Options) { o.Null = "NULL" }), key: 1,
		in: "a\tNULL\nb\t\\N\nc\t\\NULL\n", ncols: 2,
		want: []row{n("a\tNULL\n"), r("b\t\\N\n", "N"), r("c\t\\NULL\n", "NULL")}},
	{name: "text empty null", opts: with(text, func(o *Options) { o.Null = "" }), key: 0,
		in: "\tx\n\\N\ty\n", ncols: 2,
		want: []row{n("\tx\n"), r("\\N\ty\n", "N")}},
	{name: "text null compared before de-escaping", opts: with(text, func(o *Options) { o.Null = `\x41` }), key: 0,
		in: "\\x41\tx\nA\ty\n\\101\tz\n", ncols: 2,
		want: []row{n("\\x41\tx\n"), r("A\ty\n", "A"), r("\\101\tz\n", "A")}},
	{name: "text delimiter upper-case hex digit", opts: with(text, func(o *Options) { o.Delimiter = 'A' }), key: 1,
		in: `\x4AbA\x4Ac` + "\n", ncols: 2,
		want: []row{r(`\x4AbA\x4Ac`+"\n", "Jc")}},
	{name: "text pipe delimiter", opts: with(text, func(o *Options) { o.Delimiter = '|' }), key: 1,
		in: "a\tb|c\\|d|e\n", ncols: 3,
		want: []row{r("a\tb|c\\|d|e\n", "c|d")}},
	{name: "text too few fields", opts: text, key: 2, in: "a\tb\tc\nd\te\nf\n", ncols: 3,
		want: []row{r("a\tb\tc\n", "c")},
		err:  "row has only 2 fields, sharding column is field 3", line: 2},
	{name: "text multibyte", opts: text, key: 1, in: "日本\t😀é\n", ncols: 2,
		want: []row{r("日本\t😀é\n", "😀é")}},

	// Newline styles.
	{name: "text CRLF", opts: text, key: 1, in: "a\tb\r\nc\td\r\n", ncols: 2,
		want: []row{r("a\tb\r\n", "b"), r("c\td\r\n", "d")}},
	{name: "text CR", opts: text, key: 1, in: "a\tb\rc\td\r", ncols: 2,
		want: []row{r("a\tb\r", "b"), r("c\td\r", "d")}},
	{name: "text CR then LF", opts: text, key: 0, in: "a\rb\n", ncols: 1,
		want: []row{r("a\r", "a")},
		err:  "literal newline found in data", line: 2},
	{name: "text CRLF then LF", opts: text, key: 0, in: "a\r\nb\n", ncols: 1,
		want: []row{r("a\r\n", "a")},
		err:  "literal newline found in data", line: 2},
	{name: "text CRLF then CR", opts: text, key: 0, in: "a\r\nb\rc\r\n", ncols: 1,
		want: []row{r("a\r\n", "a")},
		err:  "literal carriage return found in data", line: 2},
	{name: "text LF then CR", opts: text, key: 0, in: "a\nb\rc\n", ncols: 1,
		want: []row{r("a\n", "a")},
		err:  "literal carriage return found in data", line: 2},
	{name: "text CRLF then CR at end", opts: text, key: 0, in: "a\r\nb\r", ncols: 1,
		want: []row{r("a\r\n", "a")},
		err:  "literal carriage return found in data", line: 2},
	{name: "text CR at end", opts: text, key: 0, in: "a\r", ncols: 1,
		want: []row{r("a\r", "a")}},
	{name: "text escaped CR in CRLF", opts: text, key: 0, in: "a\\\r\r\n", ncols: 1,
		want: []row{r("a\\\r\r\n", "a\r")}},
	{name: "text escaped CR before LF in CRLF", opts: text, key: 0, in: "a\r\nb\\\r\n", ncols: 1,
		want: []row{r("a\r\n", "a")},
		err:  "literal newline found in data", line: 2},

	// The end of the data.
	{name: "text no final newline", opts: text, key: 1, in: "a\tb\nc\td", ncols: 2,
		want: []row{r("a\tb\n", "b"), r("c\td\n", "d")}},
	{name: "text no final CRLF", opts: text, key: 0, in: "a\r\nb", ncols: 1,
		want: []row{r("a\r\n", "a"), r("b\r\n", "b")}},
	{name: "text no final CR", opts: text, key: 0, in: "a\rb", ncols: 1,
		want: []row{r("a\r", "a"), r("b\r", "b")}},
	{name: "text final backslash", opts: text, key: 1, in: "a\tb\\", ncols: 2,
		want: []row{r("a\tb\n", "b")}},
	{name: "text final backslash after null", opts: text, key: 1, in: "a\t\\N\\", ncols: 2,
		want: []row{n("a\t\\N\n")}},
	{name: "text lone final backslash", opts: with(text, func(o *Options) { o.Null = "" }), key: 0, in: "a\n\\", ncols: 1,
		want: []row{r("a\n", "a"), n("\n")}},
	{name: "text empty", opts: text, key: 0, in: "", ncols: 1},
	{name: "text marker", opts: text, key: 0, in: "a\tb\n\\.\nignored\n\\.x", ncols: 2,
		want: []row{r("a\tb\n", "a")}},
	{name: "text marker only", opts: text, key: 0, in: "\\.\n", ncols: 2},
	{name: "text marker CRLF", opts: text, key: 0, in: "a\r\n\\.\r\nb\n", ncols: 1,
		want: []row{r("a\r\n", "a")}},
	{name: "text marker CR", opts: text, key: 0, in: "a\r\\.\rb\n", ncols: 1,
		want: []row{r("a\r", "a")}},
	{name: "text marker first line CR", opts: text, key: 0, in: "\\.\r", ncols: 1},
	{name: "text marker after data", opts: text, key: 0, in: "a\nb\\.\nc\n", ncols: 1,
		want: []row{r("a\n", "a"), r("b\n", "b")}},
	{name: "text marker after data CRLF", opts: text, key: 0, in: "a\r\nb\\.\r\nc\r\n", ncols: 1,
		want: []row{r("a\r\n", "a"), r("b\r\n", "b")}},
	{name: "text marker with trailing data", opts: text, key: 0, in: "a\n\\.x\n", ncols: 1,
		want: []row{r("a\n", "a")},
		err:  "end-of-copy marker corrupt", line: 2},
	{name: "text marker at end", opts: text, key: 0, in: "a\n\\.", ncols: 1,
		want: []row{r("a\n", "a")},
		err:  "end-of-copy marker corrupt", line: 2},
	{name: "text marker LF in CRLF", opts: text, key: 0, in: "a\r\n\\.\n", ncols: 1,
		want: []row{r("a\r\n", "a")},
		err:  "end-of-copy marker does not match previous newline style", line: 2},
	{name: "text marker CR in LF", opts: text, key: 0, in: "a\n\\.\r\n", ncols: 1,
		want: []row{r("a\n", "a")},
		err:  "end-of-copy marker does not match previous newline style", line: 2},
	{name: "text marker LF in CR", opts: text, key: 0, in: "a\r\\.\n", ncols: 1,
		want: []row{r("a\r", "a")},
		err:  "end-of-copy marker does not match previous newline style", line: 2},
	{name: "text marker CRCR in CRLF", opts: text, key: 0, in: "a\r\n\\.\r\r", ncols: 1,
		want: []row{r("a\r\n", "a")},
		err:  "end-of-copy marker does not match previous newline style", line: 2},
	{name: "text marker CR x in CRLF", opts: text, key: 0, in: "a\r\n\\.\rx", ncols: 1,
		want: []row{r("a\r\n", "a")},
		err:  "end-of-copy marker corrupt", line: 2},
	{name: "text escaped backslash dot", opts: text, key: 0, in: "\\\\.\n", ncols: 1,
		want: []row{r("\\\\.\n", `\.`)}},
	{name: "text 18 marker", opts: text18, key: 0, in: "a\n\\.\nb\n",
		want: []row{r("a\n", "a")}},
	{name: "text 18 marker after data", opts: text18, key: 0, in: "a\nb\\.\nc\n",
		want: []row{r("a\n", "a")},
		err:  "end-of-copy marker is not alone on its line", line: 2},
	{name: "text 18 marker with trailing data", opts: text18, key: 0, in: "a\n\\.x\n",
		want: []row{r("a\n", "a")},
		err:  "end-of-copy marker is not alone on its line", line: 2},
	{name: "text 18 marker at end", opts: text18, key: 0, in: "a\n\\.",
		want: []row{r("a\n", "a")},
		err:  "end-of-copy marker is not alone on its line", line: 2},
	{name: "text 18 marker LF in CRLF", opts: text18, key: 0, in: "a\r\n\\.\n",
		want: []row{r("a\r\n", "a")},
		err:  "end-of-copy marker does not match previous newline style", line: 2},

	// Header.
	{name: "text header", opts: with(text, func(o *Options) { o.Header = true }), key: 1,
		in: "h1\th2\na\tb\n", ncols: 2, header: "h1\th2\n",
		want: []row{r("a\tb\n", "b")}},
	{name: "text header only", opts: with(text, func(o *Options) { o.Header = true }), key: 0,
		in: "h1\th2", ncols: 2, header: "h1\th2\n"},
	{name: "text header with one field", opts: with(text, func(o *Options) { o.Header = true }), key: 1,
		in: "h\na\tb\nc\n", ncols: 2, header: "h\n",
		want: []row{r("a\tb\n", "b")},
		err:  "row has only 1 field, sharding column is field 2", line: 3},
	{name: "csv header", opts: with(csv, func(o *Options) { o.Header = true }), key: 0,
		in: "\"h\n1\",h2\r\n\"a\nb\",c\r\n", ncols: 2, header: "\"h\n1\",h2\r\n",
		want: []row{r("\"a\nb\",c\r\n", "a\nb")}},
	{name: "csv unterminated header", opts: with(csv, func(o *Options) { o.Header = true }), key: 0,
		in: "\"h1,h2\n", ncols: 2, header: "\"h1,h2\n\n"},

	// CSV.
	{name: "csv rows", opts: csv, key: 1, in: "a,b\nc,d\n", ncols: 2,
		want: []row{r("a,b\n", "b"), r("c,d\n", "d")}},
	{name: "csv quoted delimiter", opts: csv, key: 0, in: "\"a,b\",c\n", ncols: 2,
		want: []row{r("\"a,b\",c\n", "a,b")}},
	{name: "csv after quoted delimiter", opts: csv, key: 1, in: "\"a,b\",c\n", ncols: 2,
		want: []row{r("\"a,b\",c\n", "c")}},
	{name: "csv doubled quote", opts: csv, key: 0, in: "\"a\"\"b\",\"\"\"\"\n", ncols: 2,
		want: []row{r("\"a\"\"b\",\"\"\"\"\n", `a"b`)}},
	{name: "csv quote mid-field", opts: csv, key: 0, in: "ab\"c,d\"e\"\",f\n", ncols: 2,
		want: []row{r("ab\"c,d\"e\"\",f\n", "abc,de")}},
	{name: "csv multi-line field", opts: csv, key: 0, in: "\"a\nb\r\nc\rd\",x\ne,f\n", ncols: 2,
		want: []row{r("\"a\nb\r\nc\rd\",x\n", "a\nb\r\nc\rd"), r("e,f\n", "e")}},
	{name: "csv multi-line field line numbers", opts: csv, key: 2, in: "x,y,z\n\"a\nb\nc\",x,y\nd,e\n", ncols: 3,
		want: []row{r("x,y,z\n", "z"), r("\"a\nb\nc\",x,y\n", "y")},
		err:  "row has only 2 fields, sharding column is field 3", line: 5},
	{name: "csv multi-line first row line numbers", opts: csv, key: 1, in: "\"a\nb\nc\",x\nd\n", ncols: 2,
		want: []row{r("\"a\nb\nc\",x\n", "x")},
		err:  "row has only 1 field, sharding column is field 2", line: 2},
	{name: "csv null and empty", opts: csv, key: 0, in: ",x\n\"\",y\n", ncols: 2,
		want: []row{n(",x\n"), r("\"\",y\n", "")}},
	{name: "csv empty line", opts: csv, key: 0, in: "\nx\n", ncols: 1,
		want: []row{n("\n"), r("x\n", "x")}},
	{name: "csv custom null", opts: with(csv, func(o *Options) { o.Null = "NULL" }), key: 0,
		in: "NULL,x\n\"NULL\",y\n,z\nN\"ULL\",w\n", ncols: 2,
		want: []row{n("NULL,x\n"), r("\"NULL\",y\n", "NULL"), r(",z\n", ""), r("N\"ULL\",w\n", "NULL")}},
	{name: "csv force null", opts: with(csv, func(o *Options) { o.ForceNull = true }), key: 0,
		in: "\"\",x\n,y\n\"a\",z\n", ncols: 2,
		want: []row{n("\"\",x\n"), n(",y\n"), r("\"a\",z\n", "a")}},
	{name: "csv force not null", opts: with(csv, func(o *Options) { o.ForceNotNull = true; o.Null = "NULL" }), key: 0,
		in: "NULL,x\n\"NULL\",y\n", ncols: 2,
		want: []row{r("NULL,x\n", "NULL"), r("\"NULL\",y\n", "NULL")}},
	{name: "csv force null and not null", opts: with(csv, func(o *Options) { o.ForceNull = true; o.ForceNotNull = true }), key: 0,
		in: ",x\n\"\",y\n", ncols: 2,
		want: []row{r(",x\n", ""), n("\"\",y\n")}},
	{name: "csv escape", opts: with(csv, func(o *Options) { o.Escape = '\\' }), key: 0,
		in: `"a\"b\\c\d""",x` + "\n" + `"\\",y` + "\n" + `a\",z",w` + "\n", ncols: 2,
		want: []row{
			r(`"a\"b\\c\d""",x`+"\n", `a"b\c\d`),
			r(`"\\",y`+"\n", `\`),
			r(`a\",z",w`+"\n", `a\,z`),
		}},
	{name: "csv escape newline", opts: with(csv, func(o *Options) { o.Escape = '\\' }), key: 1,
		in: "\"a\\\"\n\",\"b\\\\\"\n", ncols: 2,
		want: []row{r("\"a\\\"\n\",\"b\\\\\"\n", `b\`)}},
	{name: "csv quote and delimiter options", opts: with(csv, func(o *Options) { o.Delimiter = ';'; o.Quote = '\'' }), key: 1,
		in: "'a;b';'c''d,\"e'\n", ncols: 2,
		want: []row{r("'a;b';'c''d,\"e'\n", "c'd,\"e")}},
	{name: "csv tab delimiter", opts: with(csv, func(o *Options) { o.Delimiter = '\t'; o.Null = `\N` }), key: 1,
		in: "a\t\\N\nb\t\"\\N\"\n", ncols: 2,
		want: []row{n("a\t\\N\n"), r("b\t\"\\N\"\n", `\N`)}},
	{name: "csv backslashes are data", opts: csv, key: 0, in: "a\\,b\n\\N,c\n\\\\.,d\n", ncols: 2,
		want: []row{r("a\\,b\n", `a\`), r("\\N,c\n", `\N`), r("\\\\.,d\n", `\\.`)}},
	{name: "csv CRLF", opts: csv, key: 1, in: "a,\"b\r\nc\"\r\nd,e\r\n", ncols: 2,
		want: []row{r("a,\"b\r\nc\"\r\n", "b\r\nc"), r("d,e\r\n", "e")}},
	{name: "csv CR", opts: csv, key: 1, in: "a,\"b\rc\"\rd,e\r", ncols: 2,
		want: []row{r("a,\"b\rc\"\r", "b\rc"), r("d,e\r", "e")}},
	{name: "csv unquoted CR", opts: csv, key: 0, in: "a\nb\rc\n", ncols: 1,
		want: []row{r("a\n", "a")},
		err:  "unquoted carriage return found in data", line: 2},
	{name: "csv unquoted LF in CRLF", opts: csv, key: 0, in: "a\r\nb\nc\r\n", ncols: 1,
		want: []row{r("a\r\n", "a")},
		err:  "unquoted newline found in data", line: 2},
	{name: "csv unterminated quote", opts: csv, key: 1, in: "a,b\nc,\"d\ne", ncols: 2,
		want: []row{r("a,b\n", "b")},
		err:  "unterminated CSV quoted field", line: 3},
	{name: "csv unterminated quote with key before it", opts: csv, key: 0, in: "a,\"b", ncols: 2,
		err: "unterminated CSV quoted field", line: 1},
	{name: "csv no final newline", opts: csv, key: 0, in: "a,b\r\n\"c\nd\",e", ncols: 2,
		want: []row{r("a,b\r\n", "a"), r("\"c\nd\",e\r\n", "c\nd")}},
	{name: "csv too few fields", opts: csv, key: 2, in: "a,\"b,c\"\n", ncols: 3,
		err: "row has only 2 fields, sharding column is field 3", line: 1},
	{name: "csv marker", opts: csv, key: 0, in: "a,b\n\\.\nc,d\n", ncols: 2,
		want: []row{r("a,b\n", "a")}},
	{name: "csv marker CRLF", opts: csv, key: 0, in: "a\r\n\\.\r\nc\r\n", ncols: 1,
		want: []row{r("a\r\n", "a")}},
	{name: "csv marker lookalikes", opts: csv, key: 0, in: "\\.x\n\\\n\"\\.\"\n \\.\n\\.", ncols: 1,
		want: []row{r("\\.x\n", `\.x`), r("\\\n", `\`), r("\"\\.\"\n", `\.`), r(" \\.\n", ` \.`), r("\\.", `\.`)}},
	{name: "csv marker lookalike at end", opts: csv, key: 0, in: "a\n\\", ncols: 1,
		want: []row{r("a\n", "a"), r("\\\n", `\`)}},
	{name: "csv marker in quotes", opts: csv, key: 0, in: "\"a\n\\.\n\",b\n", ncols: 2,
		want: []row{r("\"a\n\\.\n\",b\n", "a\n\\.\n")}},
	{name: "csv marker LF in CRLF", opts: csv, key: 0, in: "a\r\n\\.\n", ncols: 1,
		want: []row{r("a\r\n", "a")},
		err:  "unquoted newline found in data", line: 2},
	{name: "csv marker CR x in CRLF", opts: csv, key: 0, in: "a\r\n\\.\rx", ncols: 1,
		want: []row{r("a\r\n", "a")},
		err:  "unquoted carriage return found in data", line: 2},
	{name: "csv marker CR at end in CRLF", opts: csv, key: 0, in: "a\r\n\\.\r", ncols: 1,
		want: []row{r("a\r\n", "a")},
		err:  "unquoted carriage return found in data", line: 2},
	{name: "csv marker CR in LF", opts: csv, key: 0, in: "a\n\\.\r\n", ncols: 1,
		want: []row{r("a\n", "a")},
		err:  "end-of-copy marker does not match previous newline style", line: 2},
	{name: "csv marker with quote dot", opts: with(csv, func(o *Options) { o.Quote = '.' }), key: 0,
		in: "a\r\n\\.\r\n.\r\n", ncols: 1,
		want: []row{r("a\r\n", "a")}},
	{name: "csv marker lookalike with quote dot", opts: with(csv, func(o *Options) { o.Quote = '.' }), key: 0,
		in: "a\r\n\\.\rb\n.\r\n", ncols: 1,
		want: []row{r("a\r\n", "a"), r("\\.\rb\n.\r\n", "\\\rb\n")}},
	{name: "csv 18 marker is data", opts: csv18, key: 0, in: "a\n\\.\nb\n",
		want: []row{r("a\n", "a"), r("\\.\n", `\.`), r("b\n", "b")}},
}

func TestSplitter(t *testing.T) {
	for _, tc := range splitCases {
		t.Run(tc.name, func(t *testing.T) {
			got := splitAllWays(t, tc.opts, tc.key, tc.in)
			want := outcome{Rows: tc.want, Err: tc.err, Line: tc.line, Done: tc.err == ""}
			if tc.header != "" {
				want.Header = []string{tc.header}
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("input %q:\ngot:\n%s\nwant:\n%s", tc.in, got, want)
			}
		})
	}
}

func TestDoneAfterMarker(t *testing.T) {
	s, err := NewSplitter(TextOptions(), 0)
	if err != nil {
		t.Fatal(err)
	}
	var rows []string
	fn := func(raw, _ []byte, _ bool) error { rows = append(rows, string(raw)); return nil }
	for _, c := range []string{"a\n\\", ".\n", "b\n", "\\.x\n"} {
		if err := s.Write([]byte(c), fn); err != nil {
			t.Fatalf("Write(%q): %v", c, err)
		}
	}
	if !s.Done() {
		t.Error("not Done after the end-of-data marker")
	}
	if err := s.Close(fn); err != nil {
		t.Fatal(err)
	}
	if want := []string{"a\n"}; !reflect.DeepEqual(rows, want) {
		t.Errorf("rows %q, want %q", rows, want)
	}
}

func TestRowFuncError(t *testing.T) {
	s, err := NewSplitter(CSVOptions(), 0)
	if err != nil {
		t.Fatal(err)
	}
	stop := errors.New("stop")
	calls := 0
	fn := func(_, _ []byte, _ bool) error { calls++; return stop }
	if err := s.Write([]byte("a\nb\nc"), fn); err != stop {
		t.Fatalf("Write returned %v, want the RowFunc's error", err)
	}
	if err := s.Close(fn); err != stop {
		t.Fatalf("Close returned %v, want the RowFunc's error", err)
	}
	if calls != 1 {
		t.Errorf("RowFunc called %d times, want 1", calls)
	}
}

func TestOptionErrors(t *testing.T) {
	for _, tc := range []struct {
		opts Options
		key  int
		msg  string
	}{
		{TextOptions(), -1, "copyrows: key field -1 out of range"},
		{with(text, func(o *Options) { o.Delimiter = '\n' }), 0, "COPY delimiter cannot be newline or carriage return"},
		{with(text, func(o *Options) { o.Delimiter = 'x' }), 0, `COPY delimiter cannot be "x"`},
		{with(text, func(o *Options) { o.Delimiter = '\\' }), 0, `COPY delimiter cannot be "\\"`},
		{with(text, func(o *Options) { o.Null = "a\rb" }), 0, "COPY null representation cannot use newline or carriage return"},
		{with(text, func(o *Options) { o.Null = "a\tb" }), 0, "COPY delimiter character must not appear in the NULL specification"},
		{with(csv, func(o *Options) { o.Quote = ',' }), 0, "COPY delimiter and quote must be different"},
		{with(csv, func(o *Options) { o.Null = `"` }), 0, "CSV quote character must not appear in the NULL specification"},
		{with(csv, func(o *Options) { o.Escape = '\r' }), 0, "COPY quote and escape cannot be newline or carriage return"},
	} {
		_, err := NewSplitter(tc.opts, tc.key)
		var e *Error
		if !errors.As(err, &e) || e.Message != tc.msg || e.Code != CodeInvalidParameterValue {
			t.Errorf("NewSplitter(%+v, %d) = %v, want %q", tc.opts, tc.key, err, tc.msg)
		}
	}
}

func TestDefaults(t *testing.T) {
	// Zero delimiter, quote and escape mean PostgreSQL's defaults.
	got := split(t, Options{CSV: true}, 1, [][]byte{[]byte("a,\"b\"\"c\"\n")})
	if want := []row{r("a,\"b\"\"c\"\n", `b"c`)}; !reflect.DeepEqual(got.Rows, want) {
		t.Errorf("got %s", got)
	}
	got = split(t, Options{Null: `\N`}, 1, [][]byte{[]byte("a\t\\N\n")})
	if want := []row{n("a\t\\N\n")}; !reflect.DeepEqual(got.Rows, want) {
		t.Errorf("got %s", got)
	}
}

func TestRowTooLong(t *testing.T) {
	defer func(old int) { maxRowBytes = old }(maxRowBytes)
	maxRowBytes = 10
	s, err := NewSplitter(TextOptions(), 0)
	if err != nil {
		t.Fatal(err)
	}
	fn := func(_, _ []byte, _ bool) error { return nil }
	if err := s.Write([]byte("0123456789\n0123456789"), fn); err != nil {
		t.Fatalf("a row of the maximum length: %v", err)
	}
	err = s.Write([]byte("x"), fn)
	var e *Error
	if !errors.As(err, &e) || e.Code != CodeProgramLimitExceeded || e.Line != 2 {
		t.Fatalf("Write of a too long row returned %v, want a 54000 error on line 2", err)
	}
}

// TestNoAllocs checks that a warmed-up Splitter does not allocate, with rows
// inside a chunk, rows across chunks and keys that need decoding.
func TestNoAllocs(t *testing.T) {
	for _, tc := range []struct {
		opts Options
		data string
	}{
		{TextOptions(), "1\tuser one\tx\n2\tuser\\ttwo\ty\n3\t\\N\tz\n"},
		{CSVOptions(), "1,user one,x\n2,\"user,\"\"two\",y\n3,,\"z\nz\"\n"},
	} {
		s, err := NewSplitter(tc.opts, 1)
		if err != nil {
			t.Fatal(err)
		}
		data := []byte(strings.Repeat(tc.data, 50))
		fn := func(_, _ []byte, _ bool) error { return nil }
		feed := func() {
			for p := 0; p < len(data); p += 37 {
				if err := s.Write(data[p:min(p+37, len(data))], fn); err != nil {
					t.Fatal(err)
				}
			}
		}
		feed()
		if allocs := testing.AllocsPerRun(20, feed); allocs != 0 {
			t.Errorf("%+v: %v allocations per run, want 0", tc.opts, allocs)
		}
	}
}

func FuzzSplitter(f *testing.F) {
	for _, tc := range splitCases {
		f.Add([]byte(tc.in), uint8(tc.key), tc.opts.CSV, tc.opts.Header, tc.opts.ServerVersion >= 180000, uint16(len(tc.in)/2))
	}
	f.Fuzz(func(t *testing.T, in []byte, key uint8, csv, header, v18 bool, cut uint16) {
		opts := TextOptions()
		if csv {
			opts = CSVOptions()
		}
		opts.Header = header
		if v18 {
			opts.ServerVersion = 180000
		}
		k := int(key % 4)
		at := int(cut) % (len(in) + 1)
		whole := split(t, opts, k, [][]byte{in})
		halves := split(t, opts, k, [][]byte{in[:at], in[at:]})
		if !reflect.DeepEqual(whole, halves) {
			t.Fatalf("split at %d:\n%s\nwhole:\n%s", at, halves, whole)
		}
		var bytewise [][]byte
		for i := range in {
			bytewise = append(bytewise, in[i:i+1])
		}
		if got := split(t, opts, k, bytewise); !reflect.DeepEqual(got, whole) {
			t.Fatalf("one byte at a time:\n%s\nwhole:\n%s", got, whole)
		}
	})
}

func benchData(opts Options, escapes bool) []byte {
	var b bytes.Buffer
	for i := 0; b.Len() < 4<<20; i++ {
		switch {
		case opts.CSV && escapes:
			fmt.Fprintf(&b, "%d,user%d@example.com,\"Some, quoted\"\"text\",2024-01-%02d 12:00:00\n", i, i, i%28+1)
		case opts.CSV:
			fmt.Fprintf(&b, "%d,user%d@example.com,Some text,2024-01-%02d 12:00:00\n", i, i, i%28+1)
		case escapes:
			fmt.Fprintf(&b, "%d\tuser%d@example.com\tsome text\\twith escapes\t2024-01-%02d 12:00:00\n", i, i, i%28+1)
		default:
			fmt.Fprintf(&b, "%d\tuser%d@example.com\tsome text\t2024-01-%02d 12:00:00\n", i, i, i%28+1)
		}
	}
	return b.Bytes()
}

// BenchmarkSplitter splits 4 MB of rows fed in 8 kB chunks, as psql sends
// CopyData. Plain rows take the fast path; rows with escapes or quotes (in a
// field after the key) the state machine.
func BenchmarkSplitter(b *testing.B) {
	for _, bc := range []struct {
		name    string
		opts    Options
		key     int
		escapes bool
	}{
		{"text/plain/key0", TextOptions(), 0, false},
		{"text/plain/key3", TextOptions(), 3, false},
		{"text/escapes/key0", TextOptions(), 0, true},
		{"text/escapes/key2", TextOptions(), 2, true},
		{"csv/plain/key0", CSVOptions(), 0, false},
		{"csv/plain/key3", CSVOptions(), 3, false},
		{"csv/quotes/key0", CSVOptions(), 0, true},
		{"csv/quotes/key2", CSVOptions(), 2, true},
	} {
		data := benchData(bc.opts, bc.escapes)
		b.Run(bc.name, func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			fn := func(_, _ []byte, _ bool) error { return nil }
			for b.Loop() {
				s, err := NewSplitter(bc.opts, bc.key)
				if err != nil {
					b.Fatal(err)
				}
				for p := 0; p < len(data); p += 8192 {
					if err := s.Write(data[p:min(p+8192, len(data))], fn); err != nil {
						b.Fatal(err)
					}
				}
				if err := s.Close(fn); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
