package drivertest

import (
	"bytes"
	"encoding/csv"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The scenario's statements, shared by the Go clients. The programs under
// testdata/drivers spell the same statements in their own languages.
var schemaStatements = []string{
	"drop table if exists ledger",
	"drop table if exists accounts",
	"drop table if exists events",
	"create table accounts (id bigint primary key, owner text not null, balance numeric(12,2) not null)",
	"create table ledger (account_id bigint not null, id bigint not null, amount numeric(12,2) not null, note text, primary key (account_id, id))",
	"create table events (id bigint primary key, payload text)",
}

const (
	insertAccount = "insert into accounts (id, owner, balance) values ($1, $2, $3)"
	selectAccount = "select owner, balance from accounts where id = $1"
	selectBalance = "select balance from accounts where id = $1"
	debitAccount  = "update accounts set balance = balance - $2 where id = $1"
	creditAccount = "update accounts set balance = balance + $2 where id = $1"
	insertLedger  = "insert into ledger (account_id, id, amount, note) values ($1, $2, $3, $4)"
	selectLedger  = "select id, amount from ledger where account_id = $1"

	// transferAccounts is the literal IN list of the multi-shard-commit check.
	transferAccounts = "select id, balance from accounts where id in (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11)"

	appName = "shardgate-drivertest"

	// quotedEventID's payload needs CSV quoting: a comma and double quotes.
	quotedEventID      = 7
	quotedEventPayload = `event 7, "quoted"`
	eventCount         = 1000

	// cancelAfter is how long the cancel step lets pg_sleep(20) run, and
	// cancelLimit how long it may take in all.
	cancelAfter = 300 * time.Millisecond
	cancelLimit = 10 * time.Second
)

// eventPayload returns the payload of event id.
func eventPayload(id int) string {
	if id == quotedEventID {
		return quotedEventPayload
	}
	return fmt.Sprintf("event %d", id)
}

// eventsCSV returns the COPY ... (format csv) input for all events.
func eventsCSV() string {
	var b strings.Builder
	w := csv.NewWriter(&b)
	for id := 1; id <= eventCount; id++ {
		w.Write([]string{strconv.Itoa(id), eventPayload(id)})
	}
	w.Flush()
	return b.String()
}

// cents parses a numeric(12,2) in text form ("1000.00") exactly.
func cents(s string) (int64, error) {
	whole, frac, ok := strings.Cut(s, ".")
	if !ok || len(frac) != 2 {
		return 0, fmt.Errorf("numeric %q does not have two decimals", s)
	}
	v, err := strconv.ParseInt(whole+frac, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("numeric %q: %w", s, err)
	}
	return v, nil
}

// checkIDs reports whether ids, in any order, are exactly 1..n.
func checkIDs(ids []int64, n int) error {
	ids = slices.Clone(ids)
	slices.Sort(ids)
	if len(ids) != n {
		return fmt.Errorf("got %d ids, want %d", len(ids), n)
	}
	for i, id := range ids {
		if id != int64(i+1) {
			return fmt.Errorf("sorted ids[%d] = %d, want %d", i, id, i+1)
		}
	}
	return nil
}

// checkTransfers checks the balances of accounts 1..11 after the
// multi-shard-commit step: they sum to 11000.00 and account 1 has 900.00.
func checkTransfers(balances map[int64]string) error {
	if len(balances) != 11 {
		return fmt.Errorf("got %d accounts, want 11", len(balances))
	}
	var sum int64
	for _, b := range balances {
		c, err := cents(b)
		if err != nil {
			return err
		}
		sum += c
	}
	if sum != 1100000 {
		return fmt.Errorf("balances of accounts 1..11 sum to %d cents, want 1100000", sum)
	}
	if balances[1] != "900.00" {
		return fmt.Errorf("account 1 has %s, want 900.00", balances[1])
	}
	return nil
}

// checkCopyOut checks the text-format output of COPY events TO STDOUT.
func checkCopyOut(out []byte) error {
	if n := bytes.Count(out, []byte("\n")); n != eventCount {
		return fmt.Errorf("COPY events TO STDOUT: %d lines, want %d", n, eventCount)
	}
	want := fmt.Sprintf("%d\t%s\n", quotedEventID, quotedEventPayload)
	if !bytes.Contains(out, []byte(want)) {
		return fmt.Errorf("COPY events TO STDOUT lacks the line %q", want)
	}
	return nil
}

// stepper runs the scenario's steps in order, printing "ok <step>" after
// each, and stops at the first failure.
type stepper struct {
	w   io.Writer
	err error
}

func (s *stepper) step(name string, f func() error) {
	if s.err != nil {
		return
	}
	if err := f(); err != nil {
		s.err = fmt.Errorf("%s: %w", name, err)
		return
	}
	fmt.Fprintf(s.w, "ok %s\n", name)
}

// done prints "ok all" if every step passed and returns the first failure.
func (s *stepper) done() error {
	if s.err == nil {
		fmt.Fprintln(s.w, "ok all")
	}
	return s.err
}
