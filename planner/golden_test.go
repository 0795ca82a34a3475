package planner

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/cockroachdb/datadriven"
)

// TestGolden plans the SQL of testdata/plans and compares the printed plan
// trees (plan) or refusals (plan-error) with the expected ones. Regenerate
// with `go test ./planner -run Golden -rewrite` and review the diff.
func TestGolden(t *testing.T) {
	f := newFake(t)
	datadriven.RunTest(t, "testdata/plans", func(t *testing.T, d *datadriven.TestData) string {
		stmts, err := Plan(f, d.Input)
		switch d.Cmd {
		case "plan":
			if err != nil {
				return "unexpected error: " + err.Error() + "\n"
			}
			var b strings.Builder
			for _, st := range stmts {
				switch {
				case st.Root != nil:
					b.WriteString(Format(st.Root))
				case st.Control != nil:
					fmt.Fprintf(&b, "Control %s %s\n", st.Control.Kind, st.Control.Savepoint)
				case st.Setting != nil:
					fmt.Fprintf(&b, "Setting %+v\n", *st.Setting)
				case st.Copy != nil:
					fmt.Fprintf(&b, "Copy from=%v shards=%s sql=%q\n", st.Copy.From, strings.Join(st.Copy.Shards, ","), st.Copy.ShardSQL)
				}
			}
			return b.String()
		case "plan-error":
			var pe *Error
			if !errors.As(err, &pe) {
				return fmt.Sprintf("expected an error, got %v\n", err)
			}
			return pe.Code + " " + pe.Message + "\n"
		}
		return "unknown command " + d.Cmd + "\n"
	})
}
