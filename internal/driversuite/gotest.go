package driversuite

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
)

// Status is the outcome of one test in one run.
type Status string

// The outcomes.
const (
	Pass    Status = "pass"
	Fail    Status = "fail"
	Skip    Status = "skip"
	Missing Status = "missing" // started but never finished (the binary died), or absent from the run
)

// maxOutputLines bounds the output kept per test; the first lines are the
// ones that tell what went wrong.
const maxOutputLines = 60

// Result is one test's (or subtest's) outcome in one run.
type Result struct {
	// Name is the package's import path, a dot and the test's full name,
	// as `go test` prints it: "github.com/jackc/pgx/v5/pgconn.TestConnect/TCP".
	Name    string
	Package string
	Status  Status
	// Elapsed is the test's running time in seconds, as go test reports it.
	Elapsed float64
	// Output holds the test's own output lines, without go test's framing
	// (=== RUN, --- PASS, ...), at most maxOutputLines.
	Output []string
	// Crashed (for a package) says its test binary died (a panic, or an
	// exit such as log.Fatal's): the tests still running then have no
	// outcome, and those after never ran. TimedOut says it was go test's
	// -timeout.
	Crashed, TimedOut bool
}

// Run is one `go test -json` run of a suite.
type Run struct {
	Results map[string]*Result // by Result.Name; tests only, not packages
	// Packages maps each package to its outcome, with the package-level
	// output (build errors, panics outside a test, "FAIL").
	Packages map[string]*Result
}

// Counts returns how many tests (subtests included) passed, failed (or never
// finished) and were skipped.
func (r *Run) Counts() (pass, fail, skip int) {
	for _, res := range r.Results {
		switch res.Status {
		case Pass:
			pass++
		case Skip:
			skip++
		default:
			fail++
		}
	}
	return pass, fail, skip
}

// event is one line of `go test -json` (see `go doc test2json`).
type event struct {
	Action     string
	Package    string
	Test       string
	Output     string
	Elapsed    float64
	ImportPath string // build events
}

// ParseEvents reads the output of `go test -json` and returns each test's
// outcome. A temporary directory in a test's name (made by t.TempDir) is
// replaced by $TMPDIR, so that runs can be compared. A test that started but has no outcome (its binary crashed or timed
// out) is Missing. Lines that are not JSON (a go command that failed before
// running anything) are kept as output of the package "".
func ParseEvents(r io.Reader) (*Run, error) {
	run := &Run{Results: map[string]*Result{}, Packages: map[string]*Result{}}
	get := func(m map[string]*Result, name, pkg string) *Result {
		res, ok := m[name]
		if !ok {
			res = &Result{Name: name, Package: pkg, Status: Missing}
			m[name] = res
		}
		return res
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 16<<20)
	for sc.Scan() {
		line := sc.Bytes()
		var ev event
		if len(line) == 0 || line[0] != '{' || json.Unmarshal(line, &ev) != nil {
			addOutput(get(run.Packages, "", ""), string(line))
			continue
		}
		if ev.Action == "build-output" || ev.Action == "build-fail" {
			addOutput(get(run.Packages, ev.ImportPath, ev.ImportPath), strings.TrimSuffix(ev.Output, "\n"))
			continue
		}
		var res *Result
		ev.Test = tempDirName.ReplaceAllString(ev.Test, "$$TMPDIR")
		if ev.Test == "" {
			res = get(run.Packages, ev.Package, ev.Package)
		} else {
			res = get(run.Results, ev.Package+"."+ev.Test, ev.Package)
		}
		switch ev.Action {
		case "pass":
			res.Status, res.Elapsed = Pass, ev.Elapsed
		case "fail":
			res.Status, res.Elapsed = Fail, ev.Elapsed
		case "skip":
			res.Status, res.Elapsed = Skip, ev.Elapsed
		case "output":
			if strings.HasPrefix(ev.Output, "panic: ") {
				pkg := get(run.Packages, ev.Package, ev.Package)
				pkg.Crashed = true
				pkg.TimedOut = pkg.TimedOut || strings.HasPrefix(ev.Output, "panic: test timed out")
			}
			if !framing(ev.Output) {
				addOutput(res, strings.TrimSuffix(ev.Output, "\n"))
			}
		}
	}
	for _, res := range run.Results {
		if res.Status == Missing {
			get(run.Packages, res.Package, res.Package).Crashed = true
		}
	}
	return run, sc.Err()
}

// Crashed returns the packages whose test binary died, sorted.
func (r *Run) Crashed() []string {
	var pkgs []string
	for name, p := range r.Packages {
		if p.Crashed {
			pkgs = append(pkgs, name)
		}
	}
	slices.Sort(pkgs)
	return pkgs
}

// Replace puts the results of package pkg in other in place of r's.
func (r *Run) Replace(pkg string, other *Run) {
	maps.DeleteFunc(r.Results, func(_ string, res *Result) bool { return res.Package == pkg })
	for name, res := range other.Results {
		if res.Package == pkg {
			r.Results[name] = res
		}
	}
	if p, ok := other.Packages[pkg]; ok {
		r.Packages[pkg] = p
	} else {
		delete(r.Packages, pkg)
	}
}

// tempDirName matches a t.TempDir() path, which some suites put in subtest
// names; it differs from run to run.
var tempDirName = regexp.MustCompile(regexp.QuoteMeta(os.TempDir()) + `/[A-Za-z0-9_]*?[0-9]+/[0-9]{3}`)

// framing reports whether an output line is go test's own bookkeeping.
func framing(line string) bool {
	s := strings.TrimLeft(line, " ")
	for _, p := range []string{"=== RUN", "=== PAUSE", "=== CONT", "=== NAME", "--- PASS", "--- SKIP", "--- FAIL"} {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}

func addOutput(res *Result, line string) {
	if len(res.Output) < maxOutputLines {
		res.Output = append(res.Output, line)
	}
}

// Exception admits that one test (and its subtests) does not pass through a
// gateway in the given pooling modes, for a reason no gateway can avoid.
type Exception struct {
	Modes  []string // pooling modes: "session", "transaction"
	Reason string
}

// Diff is a test that passed directly but not through a gateway.
type Diff struct {
	Direct, Gateway *Result
	// Exception is the reason it is admitted, or "".
	Exception string
}

// Comparison is the result of comparing a gateway run with the direct run.
type Comparison struct {
	// Diffs lists the tests that passed directly but not through the
	// gateway, sorted by name. A test whose subtests differ is not listed
	// itself: its subtests are, since a parent fails when one subtest does.
	Diffs []Diff
	// Unused lists the exceptions for this mode that matched no test: the
	// test passes through the gateway now (or no longer exists).
	Unused []string
}

// Failures returns the diffs that no exception admits.
func (c *Comparison) Failures() []Diff {
	return slices.DeleteFunc(slices.Clone(c.Diffs), func(d Diff) bool { return d.Exception != "" })
}

// Compare compares a gateway run in the given pooling mode with the direct
// run. An exception's key is a test name as in Result.Name; it covers that
// test and its subtests.
func Compare(direct, gateway *Run, mode string, exceptions map[string]Exception) *Comparison {
	var differ []string
	for name, d := range direct.Results {
		if d.Status != Pass {
			continue
		}
		if g, ok := gateway.Results[name]; ok && g.Status == Pass {
			continue
		}
		differ = append(differ, name)
	}
	slices.Sort(differ)
	used := map[string]bool{}
	c := &Comparison{}
	for i, name := range differ {
		// Sorted, so a test's subtests follow it directly.
		if i+1 < len(differ) && strings.HasPrefix(differ[i+1], name+"/") {
			continue
		}
		g, ok := gateway.Results[name]
		if !ok {
			g = &Result{Name: name, Status: Missing}
		}
		diff := Diff{Direct: direct.Results[name], Gateway: g}
		for key, e := range exceptions {
			if (name == key || strings.HasPrefix(name, key+"/")) && slices.Contains(e.Modes, mode) {
				diff.Exception = e.Reason
				used[key] = true
			}
		}
		c.Diffs = append(c.Diffs, diff)
	}
	for key, e := range exceptions {
		if slices.Contains(e.Modes, mode) && !used[key] {
			c.Unused = append(c.Unused, key)
		}
	}
	slices.Sort(c.Unused)
	return c
}

// Fetch copies the source of module@version, as the Go module proxy serves
// it, into dst (which must not exist), writable. goBin is the go command.
func Fetch(ctx context.Context, goBin, module, version, dst string) error {
	cmd := exec.CommandContext(ctx, goBin, "mod", "download", "-json", module+"@"+version)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	// In dst's parent, outside this module, so that no go.mod changes.
	cmd.Dir = filepath.Dir(dst)
	cmd.Env = append(os.Environ(), "GOWORK=off")
	out, err := cmd.Output()
	var info struct{ Dir, Error string }
	if jerr := json.Unmarshal(out, &info); err != nil || jerr != nil || info.Error != "" || info.Dir == "" {
		return fmt.Errorf("go mod download %s@%s: %v %s %s", module, version, errors.Join(err, jerr), info.Error, stderr.String())
	}
	if err := os.CopyFS(dst, os.DirFS(info.Dir)); err != nil {
		return fmt.Errorf("copying %s: %w", info.Dir, err)
	}
	return nil
}

// GoTest runs `go test -json -count=1 args...` in dir with the given
// environment and returns the parsed run and everything the go command wrote
// to stderr. The events are copied to raw unless it is nil. Failing tests are
// no error; a go command that ran no test is.
func GoTest(ctx context.Context, goBin, dir string, env []string, raw io.Writer, args ...string) (*Run, string, error) {
	cmd := exec.CommandContext(ctx, goBin, append([]string{"test", "-json", "-count=1"}, args...)...)
	cmd.Dir = dir
	cmd.Env = env
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, "", err
	}
	if err := cmd.Start(); err != nil {
		return nil, "", err
	}
	var events io.Reader = stdout
	if raw != nil {
		events = io.TeeReader(stdout, raw)
	}
	run, perr := ParseEvents(events)
	if perr != nil {
		io.Copy(io.Discard, stdout)
	}
	werr := cmd.Wait()
	if perr != nil {
		return nil, stderr.String(), perr
	}
	if len(run.Results) == 0 {
		return nil, stderr.String(), fmt.Errorf("go test ran no test: %v", werr)
	}
	return run, stderr.String(), nil
}
