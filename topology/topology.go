// Package topology is the shard map: which physical Postgres shards exist,
// how each keyspace's logical shards are placed on them, and the keyspaces'
// vschemas. It lives in etcd; gateways hold an immutable Snapshot of it that a
// Watcher swaps atomically when it changes.
package topology

import (
	"errors"
	"fmt"
	"maps"
	"math"
	"math/bits"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/shardgate/shardgate/vschema"
)

// Shard is one physical shard: a Postgres primary.
//
// Its password is best given by reference, so that no secret sits in etcd:
// PasswordFile or PasswordEnv name where each gateway finds it on its own
// host. Without either, pgx's own rules apply to the DSN: a password in it,
// else the gateway's PGPASSWORD, else a pgpass file (the DSN's passfile=,
// else the gateway's PGPASSFILE, else ~/.pgpass). TLS is the DSN's too:
// sslmode=verify-full sslrootcert=/path/ca.pem verifies the shard.
type Shard struct {
	Name string `json:"name"`
	// DSN is a libpq connection string or URL for the primary. The database
	// it names holds the shard's tables.
	DSN string `json:"dsn"`
	// PasswordFile is the absolute path, on each gateway's host, of a file
	// whose first line is the password. It is read whenever a connection
	// pool for the shard is created: at first use and whenever the topology
	// changes the shard.
	PasswordFile string `json:"password_file,omitempty"`
	// PasswordEnv names an environment variable of the gateway process
	// that holds the password.
	PasswordEnv string `json:"password_env,omitempty"`
	// Weight is the shard's share of logical shards against the others'
	// when a reshard spreads a keyspace by weight; 0 counts as 1.
	Weight int `json:"weight,omitempty"`
}

// MaxShardWeight bounds a shard's weight.
const MaxShardWeight = 1000

// EffectiveWeight is Weight, or 1 when it is not set.
func (s Shard) EffectiveWeight() int { return max(s.Weight, 1) }

// RedactedDSN returns the DSN with any password replaced, for display.
func (s Shard) RedactedDSN() string { return RedactDSN(s.DSN) }

// PasswordSource describes where the shard's password comes from, for
// display; it never holds the password: "file:PATH", "env:VAR", "dsn" (a
// password stored in the DSN), or "" (pgx's defaults: PGPASSWORD or a pgpass
// file on the gateway's host, or no password at all).
func (s Shard) PasswordSource() string {
	switch {
	case s.PasswordFile != "":
		return "file:" + s.PasswordFile
	case s.PasswordEnv != "":
		return "env:" + s.PasswordEnv
	case DSNHasPassword(s.DSN):
		return "dsn"
	}
	return ""
}

// CheckPassword reports an error unless the shard names at most one source
// of its password: PasswordFile and PasswordEnv exclude each other and a
// password in the DSN, and PasswordFile must be an absolute path (it is
// read on each gateway's host, whatever their working directories) and
// PasswordEnv a plausible variable name. It reads nothing. Its errors do
// not name the shard; callers add that.
func (s Shard) CheckPassword() error {
	switch {
	case s.PasswordFile != "" && s.PasswordEnv != "":
		return errors.New("password_file and password_env are both set; keep one")
	case (s.PasswordFile != "" || s.PasswordEnv != "") && DSNHasPassword(s.DSN):
		return fmt.Errorf("its DSN holds a password and %s names another; keep one", s.passwordRef())
	case s.PasswordFile != "" && !filepath.IsAbs(s.PasswordFile):
		return fmt.Errorf("password_file %q must be an absolute path", s.PasswordFile)
	case s.PasswordEnv != "" && strings.ContainsAny(s.PasswordEnv, "= \t\n\x00"):
		return fmt.Errorf("password_env %q is not an environment variable name", s.PasswordEnv)
	}
	return nil
}

func (s Shard) passwordRef() string {
	if s.PasswordFile != "" {
		return "password_file " + s.PasswordFile
	}
	return "password_env " + s.PasswordEnv
}

// ResolvePassword reads the password that PasswordFile or PasswordEnv
// refers to. ok is false when the shard names neither; then the DSN and
// pgx's defaults decide. A missing or empty file or variable is an error
// that names the file or variable; no error holds any part of a password.
// It reads the file (or the environment) on every call. Its errors do not
// name the shard; callers add that.
func (s Shard) ResolvePassword() (password string, ok bool, err error) {
	if err := s.CheckPassword(); err != nil {
		return "", false, err
	}
	switch {
	case s.PasswordFile != "":
		b, err := os.ReadFile(s.PasswordFile)
		if err != nil {
			// A *PathError names the file and the reason, nothing read.
			return "", false, fmt.Errorf("reading password_file: %w", err)
		}
		line, _, _ := strings.Cut(string(b), "\n")
		line = strings.TrimSuffix(line, "\r")
		if line == "" {
			return "", false, fmt.Errorf("password_file %s: the first line (the password) is empty", s.PasswordFile)
		}
		return line, true, nil
	case s.PasswordEnv != "":
		v, set := os.LookupEnv(s.PasswordEnv)
		if !set {
			return "", false, fmt.Errorf("password_env %s is not set in the environment of this process", s.PasswordEnv)
		}
		if v == "" {
			return "", false, fmt.Errorf("password_env %s is empty", s.PasswordEnv)
		}
		return v, true, nil
	}
	return "", false, nil
}

// ShardMap places a keyspace's logical shards on physical shards.
type ShardMap struct {
	// Version grows by one with every change of placement.
	Version int64 `json:"version"`
	// LogicalCount is the number of logical shards, a power of two fixed at
	// keyspace creation. An unsharded keyspace has one.
	LogicalCount int `json:"logical_count"`
	// Placement names the physical shard of each logical shard.
	Placement []string `json:"placement"`
}

// MaxLogicalShards is the most logical shards a keyspace may have.
const MaxLogicalShards = 1 << 16

// ValidLogicalCount reports an error unless n is a power of two between 1
// and MaxLogicalShards.
func ValidLogicalCount(n int) error {
	if n < 1 || n&(n-1) != 0 || n > MaxLogicalShards {
		return fmt.Errorf("logical shard count %d must be a power of two between 1 and %d", n, MaxLogicalShards)
	}
	return nil
}

// ValidCluster reports an error unless name can name a cluster: one etcd
// key segment that reads well in a path.
func ValidCluster(name string) error {
	ok := name != "" && len(name) <= 63 && name != "." && name != ".."
	for _, r := range name {
		ok = ok && (r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '.' || r == '-')
	}
	if !ok {
		return fmt.Errorf("cluster name %q must be 1-63 letters, digits, '_', '.' or '-'", name)
	}
	return nil
}

// validate checks the map's shape and that every placed shard exists.
func (m *ShardMap) validate(shards map[string]*Shard) error {
	if err := ValidLogicalCount(m.LogicalCount); err != nil {
		return err
	}
	if len(m.Placement) != m.LogicalCount {
		return fmt.Errorf("placement lists %d shards for %d logical shards", len(m.Placement), m.LogicalCount)
	}
	for i, s := range m.Placement {
		if _, ok := shards[s]; !ok {
			return fmt.Errorf("logical shard %d is placed on unknown shard %q", i, s)
		}
	}
	return nil
}

// LogicalShard returns the logical shard that holds keyspace id h: the top
// log2(LogicalCount) bits of h in signed order, so logical shard 0 holds the
// lowest hashes and each logical shard is one contiguous range of hashes.
func (m *ShardMap) LogicalShard(h int64) int {
	b := bits.TrailingZeros(uint(m.LogicalCount))
	if b == 0 {
		return 0
	}
	return int((uint64(h) ^ (1 << 63)) >> (64 - b))
}

// ShardFor returns the physical shard that holds keyspace id h.
func (m *ShardMap) ShardFor(h int64) string { return m.Placement[m.LogicalShard(h)] }

// Range returns the keyspace ids [lo, hi] (both inclusive) of logical shard i.
func (m *ShardMap) Range(i int) (lo, hi int64) {
	b := bits.TrailingZeros(uint(m.LogicalCount))
	if b == 0 {
		return math.MinInt64, math.MaxInt64
	}
	width := uint64(1) << (64 - b)
	start := uint64(i) * width
	return int64(start ^ (1 << 63)), int64((start + width - 1) ^ (1 << 63))
}

// Shards returns the distinct physical shards of the map in order of first
// placement.
func (m *ShardMap) Shards() []string {
	var out []string
	seen := map[string]bool{}
	for _, s := range m.Placement {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}

// EvenPlacement spreads logicalCount logical shards over shards in contiguous
// blocks of (nearly) equal size.
func EvenPlacement(logicalCount int, shards []string) []string {
	p := make([]string, logicalCount)
	for i := range p {
		p[i] = shards[i*len(shards)/logicalCount]
	}
	return p
}

// Keyspace is one keyspace as a gateway sees it.
type Keyspace struct {
	Name string
	// vschema is nil until a vschema is applied; a keyspace without one
	// refuses queries.
	vschema *vschema.Keyspace
	Map     *ShardMap
	// SchemaChange names the latest schema change a gateway recorded for
	// the keyspace (see Store.MarkSchemaChanged), "" for none: what a
	// gateway remembers of statements' descriptions from before is stale.
	SchemaChange string
	// Fence, when not nil, holds writes to some logical shards while a
	// reshard workflow switches their placement (see Fence).
	Fence *Fence
	// Copies names, per physical shard, logical shards whose rows it
	// holds without owning them: a reshard copies them in, or they moved
	// away and stay until the workflow completes. A statement sent there
	// without a key would read or change them too, so a statement over
	// several shards passes over them there.
	Copies map[string][]int
	// Reads, when not nil, sends some reads of a reshard's moving logical
	// shards to its targets (see ReadTraffic); routed and readView are
	// what it means now (see Routed and ReadView).
	Reads    *ReadTraffic
	routed   map[int]string
	readView *Keyspace
	// shards lists Map's distinct physical shards, computed once;
	// placed holds, per logical shard, its physical shard as a list of
	// one that shares shards' array, so that routing a key allocates
	// nothing.
	shards []string
	placed [][]string
}

// setShards computes shards and placed from Map.
func (k *Keyspace) setShards() {
	k.shards = k.Map.Shards()
	index := make(map[string]int, len(k.shards))
	for i, name := range k.shards {
		index[name] = i
	}
	k.placed = make([][]string, len(k.Map.Placement))
	for l, name := range k.Map.Placement {
		i := index[name]
		k.placed[l] = k.shards[i : i+1 : i+1]
	}
}

// VSchema returns the keyspace's vschema, or nil if none was applied yet.
func (k *Keyspace) VSchema() *vschema.Keyspace { return k.vschema }

// ShardFor returns the physical shard that holds keyspace id h.
func (k *Keyspace) ShardFor(h int64) string { return k.Map.ShardFor(h) }

// Shards returns the keyspace's distinct physical shards in placement order.
func (k *Keyspace) Shards() []string { return k.shards }

// SchemaShards returns the shards that hold the keyspace's tables: its
// own, then those that only keep copies (a reshard's targets before their
// first logical shard moves, its sources after their last one did), which
// schema changes must reach too.
func (k *Keyspace) SchemaShards() []string {
	if len(k.Copies) == 0 {
		return k.shards
	}
	out := slices.Clone(k.shards)
	for _, shard := range slices.Sorted(maps.Keys(k.Copies)) {
		if !slices.Contains(out, shard) {
			out = append(out, shard)
		}
	}
	return out
}

// ShardListFor returns the physical shard that holds keyspace id h as a
// list of one, which the caller must not change.
func (k *Keyspace) ShardListFor(h int64) []string {
	if k.placed == nil {
		return []string{k.ShardFor(h)}
	}
	return k.placed[k.Map.LogicalShard(h)]
}

// Snapshot is an immutable view of the whole topology at one etcd revision.
// Safe for concurrent use; never modified after it is built.
type Snapshot struct {
	Revision  int64
	Shards    map[string]*Shard
	Keyspaces map[string]*Keyspace
	// Users are the gateway's logins by name (see users.go).
	Users map[string]*User
}

// Keyspace returns the named keyspace, or nil.
func (s *Snapshot) Keyspace(name string) *Keyspace {
	if s == nil {
		return nil
	}
	return s.Keyspaces[name]
}
