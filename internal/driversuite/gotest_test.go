package driversuite

import (
	"maps"
	"os"
	"slices"
	"strings"
	"testing"
)

// events builds `go test -json` output, one event per line.
func events(lines ...string) *strings.Reader {
	return strings.NewReader(strings.Join(lines, "\n") + "\n")
}

func TestParseEvents(t *testing.T) {
	run, err := ParseEvents(events(
		`{"Action":"start","Package":"p"}`,
		`{"Action":"run","Package":"p","Test":"TestA"}`,
		`{"Action":"output","Package":"p","Test":"TestA","Output":"=== RUN   TestA\n"}`,
		`{"Action":"run","Package":"p","Test":"TestA/sub"}`,
		`{"Action":"output","Package":"p","Test":"TestA/sub","Output":"    a_test.go:7: boom\n"}`,
		`{"Action":"output","Package":"p","Test":"TestA/sub","Output":"    --- FAIL: TestA/sub (0.00s)\n"}`,
		`{"Action":"fail","Package":"p","Test":"TestA/sub","Elapsed":0.5}`,
		`{"Action":"fail","Package":"p","Test":"TestA","Elapsed":1}`,
		`{"Action":"run","Package":"p","Test":"TestB"}`,
		`{"Action":"skip","Package":"p","Test":"TestB"}`,
		`{"Action":"run","Package":"p","Test":"TestC"}`,
		`{"Action":"pass","Package":"p","Test":"TestC"}`,
		`{"Action":"run","Package":"p","Test":"TestD"}`,
		`{"Action":"output","Package":"p","Output":"panic: test timed out after 1s\n"}`,
		`{"Action":"fail","Package":"p","Elapsed":2}`,
		`{"Action":"run","Package":"p","Test":"TestE/file=`+os.TempDir()+`/TestE123456/001/x"}`,
		`{"Action":"pass","Package":"p","Test":"TestE/file=`+os.TempDir()+`/TestE123456/001/x"}`,
		`not json: go: downloading something`,
	))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]Status{"p.TestA": Fail, "p.TestA/sub": Fail, "p.TestB": Skip, "p.TestC": Pass, "p.TestD": Missing, "p.TestE/file=$TMPDIR/x": Pass}
	for name, status := range want {
		if r := run.Results[name]; r == nil || r.Status != status {
			t.Errorf("%s: %+v, want %s", name, r, status)
		}
	}
	if len(run.Results) != len(want) {
		t.Errorf("results %v, want %d", slices.Sorted(maps.Keys(run.Results)), len(want))
	}
	if got := run.Results["p.TestA/sub"].Output; !slices.Equal(got, []string{"    a_test.go:7: boom"}) {
		t.Errorf("output of TestA/sub: %q", got)
	}
	if p := run.Packages["p"]; p.Status != Fail || !slices.Contains(p.Output, "panic: test timed out after 1s") {
		t.Errorf("package p: %+v", p)
	}
	if got := run.Crashed(); !slices.Equal(got, []string{"p"}) || !run.Packages["p"].TimedOut {
		t.Errorf("crashed %v, timed out %v; want [p], true", got, run.Packages["p"].TimedOut)
	}
	again, err := ParseEvents(events(
		`{"Action":"run","Package":"p","Test":"TestD"}`,
		`{"Action":"pass","Package":"p","Test":"TestD"}`,
		`{"Action":"pass","Package":"p"}`,
	))
	if err != nil {
		t.Fatal(err)
	}
	run.Replace("p", again)
	if len(run.Results) != 1 || run.Results["p.TestD"].Status != Pass || run.Packages["p"].Status != Pass || len(run.Crashed()) != 0 {
		t.Errorf("after Replace: %v %+v", slices.Sorted(maps.Keys(run.Results)), run.Packages["p"])
	}
	run, _ = ParseEvents(events(
		`{"Action":"run","Package":"p","Test":"TestA"}`,
		`{"Action":"pass","Package":"p","Test":"TestA"}`,
		`{"Action":"pass","Package":"p"}`,
	))
	if pass, fail, skip := run.Counts(); pass != 1 || fail != 0 || skip != 0 || len(run.Crashed()) != 0 {
		t.Errorf("counts %d %d %d, crashed %v", pass, fail, skip, run.Crashed())
	}
}

func TestCounts(t *testing.T) {
	run, err := ParseEvents(events(
		`{"Action":"run","Package":"p","Test":"TestA"}`,
		`{"Action":"pass","Package":"p","Test":"TestA"}`,
		`{"Action":"run","Package":"p","Test":"TestB"}`,
		`{"Action":"fail","Package":"p","Test":"TestB"}`,
		`{"Action":"run","Package":"p","Test":"TestC"}`,
		`{"Action":"skip","Package":"p","Test":"TestC"}`,
		`{"Action":"run","Package":"p","Test":"TestD"}`,
	))
	if err != nil {
		t.Fatal(err)
	}
	if pass, fail, skip := run.Counts(); pass != 1 || fail != 2 || skip != 1 {
		t.Errorf("counts %d %d %d, want 1 2 1", pass, fail, skip)
	}
}

func TestCompare(t *testing.T) {
	res := func(pairs ...string) *Run {
		r := &Run{Results: map[string]*Result{}}
		for i := 0; i < len(pairs); i += 2 {
			r.Results[pairs[i]] = &Result{Name: pairs[i], Status: Status(pairs[i+1])}
		}
		return r
	}
	direct := res(
		"p.TestOK", "pass",
		"p.TestParent", "pass", "p.TestParent/a", "pass", "p.TestParent/b", "pass",
		"p.TestOwn", "pass",
		"p.TestSkipped", "pass",
		"p.TestGone", "pass",
		"p.TestFailsDirectly", "fail",
		"p.TestExcepted", "pass", "p.TestExcepted/x", "pass",
	)
	gateway := res(
		"p.TestOK", "pass",
		"p.TestParent", "fail", "p.TestParent/a", "pass", "p.TestParent/b", "fail",
		"p.TestOwn", "fail",
		"p.TestSkipped", "skip",
		"p.TestFailsDirectly", "fail",
		"p.TestExcepted", "fail", "p.TestExcepted/x", "fail",
	)
	c := Compare(direct, gateway, "session", map[string]Exception{
		"p.TestExcepted": {Modes: []string{"session"}, Reason: "why"},
		"p.TestOK":       {Modes: []string{"session"}, Reason: "not needed"},
		"p.TestOther":    {Modes: []string{"transaction"}, Reason: "other mode"},
	})
	var got []string
	for _, d := range c.Diffs {
		got = append(got, d.Gateway.Name+" "+string(d.Gateway.Status)+" "+d.Exception)
	}
	want := []string{
		"p.TestExcepted/x fail why",
		"p.TestGone missing ",
		"p.TestOwn fail ",
		"p.TestParent/b fail ",
		"p.TestSkipped skip ",
	}
	if !slices.Equal(got, want) {
		t.Errorf("diffs:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if len(c.Failures()) != 4 {
		t.Errorf("failures %d, want 4", len(c.Failures()))
	}
	if !slices.Equal(c.Unused, []string{"p.TestOK"}) {
		t.Errorf("unused %v", c.Unused)
	}
}

func TestSkipPattern(t *testing.T) {
	if got, want := skipPattern(map[string]string{"TestY": "why", "ExampleA.b": "why"}), `^(ExampleA\.b|TestY)$`; got != want {
		t.Errorf("skipPattern = %q, want %q", got, want)
	}
	if got := skipPattern(nil); got != "" {
		t.Errorf("skipPattern(nil) = %q", got)
	}
}
