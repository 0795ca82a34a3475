package planner

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/cockroachdb/datadriven"

	"github.com/shardgate/shardgate/planner/engine"
	"github.com/shardgate/shardgate/vschema"
)

// TestGolden plans the SQL of testdata/plans, testdata/levels (nested
// query levels: WITH, subqueries, set operations) and testdata/ddl (schema
// changes; "plan learning" plans under unlisted_tables: reference) and compares the printed plan
// trees (plan) or refusals (plan-error) with the expected ones. Each plan
// is followed by where it runs against the fake topology ("-> s0, s1"), or
// the error running it gives. Regenerate with
// `go test ./planner -run Golden -rewrite` and review the diff.
func TestGolden(t *testing.T) {
	f := newFake(t)
	for _, file := range []string{"testdata/plans", "testdata/levels", "testdata/ddl", "testdata/sequences", "testdata/views"} {
		t.Run(file, func(t *testing.T) { golden(t, f, file) })
	}
}

// testCatalog is what the shards' catalog says of the fake keyspace's
// tables ("plan catalog").
var testCatalog = &vschema.Catalog{Relations: map[string]*vschema.Relation{
	"users":            {Kind: 'r', Columns: []vschema.Column{{Name: "id", Type: "bigint", Identity: 'd', Sequence: "users_id_seq", OwnsSequence: true}, {Name: "name", Type: "text"}, {Name: "seen", Type: "timestamp with time zone"}, {Name: "n", Type: "bigint", Sequence: "shared_numbers"}}},
	"orders":           {Kind: 'r', Columns: []vschema.Column{{Name: "id", Type: "bigint", Sequence: "orders_id_seq", OwnsSequence: true}, {Name: "user_id", Type: "bigint"}, {Name: "amount", Type: "numeric"}}},
	"countries":        {Kind: 'r', Columns: []vschema.Column{{Name: "id", Type: "integer", Identity: 'a', Sequence: "countries_id_seq"}, {Name: "code", Type: "text"}, {Name: "added", Type: "timestamp with time zone", Default: "now()"}, {Name: "token", Type: "uuid", Default: "gen_random_uuid()"}, {Name: "kind", Type: "text", Default: "'country'::text"}}},
	"named_users":      {Kind: 'v', View: " SELECT users.id, users.name FROM users WHERE users.name IS NOT NULL;", Columns: []vschema.Column{{Name: "id"}, {Name: "name"}}},
	"country_codes":    {Kind: 'v', View: "SELECT code FROM countries", Columns: []vschema.Column{{Name: "code"}}},
	"first_named":      {Kind: 'v', View: "SELECT min(id) AS id FROM named_users", Columns: []vschema.Column{{Name: "id"}}},
	"billing.numbers":  {Kind: 'S'},
	"billing.invoices": {Kind: 'r', Columns: []vschema.Column{{Name: "account_id", Type: "bigint"}, {Name: "number", Type: "bigint"}}},
}}

func golden(t *testing.T, f *fakeTopology, file string) {
	datadriven.RunTest(t, file, func(t *testing.T, d *datadriven.TestData) string {
		vs := f.vs
		if d.HasArg("learning") {
			// unlisted_tables: reference
			learning := *f.vs
			learning.UnlistedTables = vschema.ReferenceUnlisted
			vs = &learning
		}
		if d.HasArg("catalog") {
			vs = vs.WithCatalog(testCatalog)
		}
		stmts, err := Plan(vs, d.Input)
		switch d.Cmd {
		case "plan":
			if err != nil {
				return "unexpected error: " + err.Error() + "\n"
			}
			var b strings.Builder
			for _, st := range stmts {
				if len(st.Learns) > 0 {
					fmt.Fprintf(&b, "Learns %s\n", strings.Join(st.Learns, ", "))
				}
				for _, c := range st.Sequences {
					switch {
					case c.Drop:
						fmt.Fprintf(&b, "Sequence %s dropped\n", c.Sequence)
					case c.Restart != nil:
						fmt.Fprintf(&b, "Sequence %s restarts at %d\n", c.Sequence, *c.Restart)
					default:
						fmt.Fprintf(&b, "Sequence %s restarts at its start\n", c.Sequence)
					}
				}
				switch {
				case st.Root != nil:
					b.WriteString(engine.Format(st.Root))
					if calls, err := f.runPlan(st.Root, nil); err != nil {
						fmt.Fprintf(&b, "-> error %s\n", err)
					} else {
						fmt.Fprintf(&b, "-> %s\n", strings.Join(shardsOf(calls), ", "))
					}
				case st.Control != nil:
					fmt.Fprintf(&b, "Control %s %s\n", st.Control.Kind, st.Control.Savepoint)
				case st.Setting != nil:
					fmt.Fprintf(&b, "Setting %+v\n", *st.Setting)
				case st.Copy != nil:
					fmt.Fprintf(&b, "Copy from=%v %s sql=%q\n", st.Copy.From, st.Copy.Target, st.Copy.ShardSQL)
					if shards, err := st.Copy.Shards(f); err != nil {
						fmt.Fprintf(&b, "-> error %s\n", err)
					} else {
						fmt.Fprintf(&b, "-> %s\n", strings.Join(shards, ", "))
					}
				}
			}
			return b.String()
		case "plan-error":
			if err == nil && len(stmts) == 1 && stmts[0].Root != nil {
				_, err = f.run(d.Input, nil)
			}
			var pe *Error
			if !errors.As(err, &pe) {
				return fmt.Sprintf("expected an error, got %v\n", err)
			}
			return pe.Code + " " + pe.Message + "\n"
		}
		return "unknown command " + d.Cmd + "\n"
	})
}
