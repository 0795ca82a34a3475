package main

import (
	"fmt"
	"slices"
	"strings"
	"testing"
)

// showRows runs "topology show KS" and returns its header line and the
// fields of each table row (the header row excluded).
func (e *testEnv) showRows(t *testing.T, ks string) (string, [][]string) {
	t.Helper()
	out := e.run("", "topology", "show", ks).ok(t)
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(lines) < 3 || strings.Join(strings.Fields(lines[1]), " ") != "LOGICAL HASH RANGE SHARD" {
		t.Fatalf("topology show %s printed\n%s", ks, out)
	}
	var rows [][]string
	for _, l := range lines[2:] {
		rows = append(rows, strings.Fields(l))
	}
	return lines[0], rows
}

func TestTopologyShow(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.addShards(3)
	e.run("", "keyspace", "create", "app", "--shards", "s0,s1").ok(t)
	e.run("", "keyspace", "create", "small", "--logical-shards", "4", "--shards", "s0,s1,s2").ok(t)
	e.run("", "keyspace", "create", "meta", "--logical-shards", "1", "--shards", "s2").ok(t)
	rev := e.load().Revision

	header, rows := e.showRows(t, "app")
	if want := fmt.Sprintf("keyspace app: shard map version 1, 256 logical shards, etcd revision %d", rev); header != want {
		t.Errorf("header %q, want %q", header, want)
	}
	want := [][]string{
		{"0-127", "[-9223372036854775808,", "-1]", "s0"},
		{"128-255", "[0,", "9223372036854775807]", "s1"},
	}
	if !slices.EqualFunc(rows, want, slices.Equal) {
		t.Errorf("topology show app rows %q, want %q", rows, want)
	}

	_, rows = e.showRows(t, "small")
	want = [][]string{
		{"0-1", "[-9223372036854775808,", "-1]", "s0"},
		{"2", "[0,", "4611686018427387903]", "s1"},
		{"3", "[4611686018427387904,", "9223372036854775807]", "s2"},
	}
	if !slices.EqualFunc(rows, want, slices.Equal) {
		t.Errorf("topology show small rows %q, want %q", rows, want)
	}

	_, rows = e.showRows(t, "meta")
	want = [][]string{{"0", "[-9223372036854775808,", "9223372036854775807]", "s2"}}
	if !slices.EqualFunc(rows, want, slices.Equal) {
		t.Errorf("topology show meta rows %q, want %q", rows, want)
	}

	// Without a keyspace: all of them, in name order, separated by a blank line.
	out := e.run("", "topology", "show").ok(t)
	var headers []string
	for _, block := range strings.Split(out, "\n\n") {
		headers = append(headers, strings.SplitN(block, ":", 2)[0])
	}
	if !slices.Equal(headers, []string{"keyspace app", "keyspace meta", "keyspace small"}) {
		t.Errorf("topology show printed blocks %q:\n%s", headers, out)
	}

	e.run("", "topology", "show", "ghost").fails(t, "keyspace ghost does not exist")
	if out := e.withCluster(e.cluster+"-empty").run("", "topology", "show").ok(t); !strings.Contains(out, "has no keyspaces") {
		t.Errorf("topology show on an empty cluster printed %q", out)
	}
}

func TestTopologyMove(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.addShards(3)
	e.run("", "keyspace", "create", "app", "--shards", "s0,s1").ok(t)

	out := e.run("", "topology", "move", "app", "--logical", "0-63", "--to", "s1").ok(t)
	if !strings.Contains(out, "shard map version 2") || !strings.Contains(out, "no rows were moved") {
		t.Errorf("topology move printed %q", out)
	}
	m := e.load().Keyspace("app").Map
	if m.Version != 2 {
		t.Errorf("version %d after one move, want 2", m.Version)
	}
	for i, sh := range m.Placement {
		want := "s1"
		if i >= 64 && i < 128 {
			want = "s0"
		}
		if sh != want {
			t.Fatalf("after the move logical shard %d is on %s, want %s", i, sh, want)
		}
	}
	_, rows := e.showRows(t, "app")
	want := [][]string{
		{"0-63", "[-9223372036854775808,", "-4611686018427387905]", "s1"},
		{"64-127", "[-4611686018427387904,", "-1]", "s0"},
		{"128-255", "[0,", "9223372036854775807]", "s1"},
	}
	if !slices.EqualFunc(rows, want, slices.Equal) {
		t.Errorf("topology show after the move: rows %q, want %q", rows, want)
	}

	// A single logical shard, onto a shard new to the keyspace.
	out = e.run("", "topology", "move", "app", "--logical", "255", "--to", "s2").ok(t)
	if !strings.Contains(out, "logical shards 255 now routed to s2; shard map version 3") {
		t.Errorf("topology move printed %q", out)
	}
	m = e.load().Keyspace("app").Map
	if m.Version != 3 || m.Placement[255] != "s2" || m.Placement[254] != "s1" {
		t.Errorf("after moving 255 to s2: version %d, placement[254:] %v", m.Version, m.Placement[254:])
	}
}

func TestTopologyMoveErrors(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.addShards(2)
	e.run("", "keyspace", "create", "app", "--logical-shards", "16", "--shards", "s0,s1").ok(t)
	tests := []struct {
		args []string
		want []string
	}{
		{[]string{"app", "--logical", "x", "--to", "s1"}, []string{`--logical "x"`, "N-M"}},
		{[]string{"app", "--logical", "-1", "--to", "s1"}, []string{`--logical "-1"`}},
		{[]string{"app", "--logical", "+1", "--to", "s1"}, []string{`--logical "+1"`}},
		{[]string{"app", "--logical", " 1", "--to", "s1"}, []string{`--logical " 1"`}},
		{[]string{"app", "--logical", "1-", "--to", "s1"}, []string{`--logical "1-"`}},
		{[]string{"app", "--logical", "1-2-3", "--to", "s1"}, []string{`--logical "1-2-3"`}},
		{[]string{"app", "--logical", "0x1", "--to", "s1"}, []string{`--logical "0x1"`}},
		{[]string{"app", "--logical", "99999999999999999999", "--to", "s1"}, []string{"--logical"}},
		{[]string{"app", "--logical", "5-3", "--to", "s1"}, []string{`--logical "5-3"`, "ends before it starts"}},
		{[]string{"app", "--logical", "0-16", "--to", "s1"}, []string{"logical shards 0-16 out of range", "0-15"}},
		{[]string{"app", "--logical", "16", "--to", "s1"}, []string{"out of range"}},
		{[]string{"app", "--logical", "0-3", "--to", "s9"}, []string{"shard s9 is not registered"}},
		{[]string{"ghost", "--logical", "0-3", "--to", "s1"}, []string{"keyspace ghost does not exist"}},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			e.run("", append([]string{"topology", "move"}, tt.args...)...).fails(t, tt.want...)
		})
	}
	m := e.load().Keyspace("app").Map
	if m.Version != 1 || m.Placement[0] != "s0" || m.Placement[15] != "s1" {
		t.Errorf("failed moves changed the map: version %d, placement %v", m.Version, m.Placement)
	}
}
