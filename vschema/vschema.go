// Package vschema describes what a client's database looks like once it is
// sharded: keyspaces, their tables, and how each table's rows map to a
// keyspace id. It is pure data and pure functions; nothing here does I/O.
package vschema

import (
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"

	"sigs.k8s.io/yaml"
)

// File is a vschema file as an operator writes it: one or more keyspaces by
// name. YAML and JSON are both accepted (JSON is a subset of YAML).
type File struct {
	Keyspaces map[string]*Keyspace `json:"keyspaces"`
}

// Keyspace is what a client names as its database.
type Keyspace struct {
	// Name is filled from the File's map key; it is not written in the file.
	Name string `json:"-"`
	// Sharded keyspaces spread their sharded tables over many logical shards;
	// an unsharded keyspace lives on one physical shard and takes any SQL.
	Sharded bool              `json:"sharded"`
	Tables  map[string]*Table `json:"tables,omitempty"`
	// Pooling says how client sessions share backend connections.
	Pooling Pooling `json:"pooling,omitempty"`
	// MultiShardWrites says what a transaction that writes on more than
	// one shard does.
	MultiShardWrites MultiShardWrites `json:"multi_shard_writes,omitempty"`
	// MaxPinnedSessions caps the sessions that may hold a backend
	// connection for state they left there under transaction pooling
	// (0: no cap); the statement that would pin one more gets 53300.
	MaxPinnedSessions int `json:"max_pinned_sessions,omitempty"`
	// UnlistedTables says what CREATE TABLE of a table the vschema does
	// not name does in a sharded keyspace.
	UnlistedTables UnlistedTables `json:"unlisted_tables,omitempty"`
	// SequenceBlock is how many values of a global sequence a gateway
	// leases from etcd at a time (default 1000): fewer, and ids follow
	// each other more closely across gateways; more, and etcd is asked
	// less often.
	SequenceBlock int64 `json:"sequence_block,omitempty"`
	// SequenceIDs says how global sequences make their values.
	SequenceIDs SequenceIDs `json:"sequence_ids,omitempty"`
	// Catalog is what the shards' catalog says of the keyspace's
	// relations, when the gateway read it (see WithCatalog); nil if not.
	Catalog *Catalog `json:"-"`
}

// SequenceIDs is how a sharded keyspace's global sequences make values.
type SequenceIDs string

// Ways to make sequence values.
const (
	// BlockIDs hands out each sequence's values in order, from blocks the
	// gateways lease in etcd.
	BlockIDs SequenceIDs = "blocks"
	// SnowflakeIDs makes each value of the time in milliseconds, the
	// gateway's number and a counter, without asking etcd: unique as long
	// as the gateways' clocks do not go back by more than a gateway's
	// lease. They need bigint columns.
	SnowflakeIDs SequenceIDs = "snowflake"
)

// Bounds of Keyspace.SequenceBlock.
const (
	DefaultSequenceBlock = 1000
	MaxSequenceBlock     = 1_000_000
)

// UnlistedTables is a policy for tables a sharded keyspace's vschema does
// not name.
type UnlistedTables string

// Policies for unlisted tables.
const (
	// RefuseUnlisted refuses them: every table must be listed first.
	RefuseUnlisted UnlistedTables = "refuse"
	// ReferenceUnlisted makes them reference tables: CREATE TABLE of one
	// adds it to the vschema as a reference table and creates it on every
	// shard.
	ReferenceUnlisted UnlistedTables = "reference"
)

// Pooling is a backend connection pooling mode.
type Pooling string

// Pooling modes.
const (
	// PoolTransaction lends a session backend connections for one
	// transaction (or one statement) at a time: many clients share few
	// connections. Session settings and prepared statements follow the
	// client from connection to connection.
	PoolTransaction Pooling = "transaction"
	// PoolSession holds a session's backend connections until it ends.
	PoolSession Pooling = "session"
)

// MultiShardWrites is a policy for transactions that write on several shards.
type MultiShardWrites string

// Multi-shard write policies.
const (
	// TwoPhaseCommit commits them atomically with PREPARE TRANSACTION and
	// COMMIT PREPARED, the decision recorded in etcd.
	TwoPhaseCommit MultiShardWrites = "two_phase_commit"
	// RefuseMultiShardWrites fails the write that would touch a second shard.
	RefuseMultiShardWrites MultiShardWrites = "refuse"
)

// TableKind says how a table's rows are placed.
type TableKind string

// Table kinds.
const (
	// Sharded rows live on the shard of their sharding column's hash.
	Sharded TableKind = "sharded"
	// Reference tables are small and copied whole to every shard: reads go to
	// one shard, writes to all.
	Reference TableKind = "reference"
)

// ColumnType is the SQL type of a sharding column; it decides which Postgres
// hash function computes the keyspace id.
type ColumnType string

// Sharding column types.
const (
	Int  ColumnType = "int"  // smallint, integer, bigint: hashint8extended
	Text ColumnType = "text" // text, varchar: hashtextextended
	UUID ColumnType = "uuid" // uuid: uuid_hash_extended
)

// columnTypeAliases maps the SQL spellings an operator may write to a ColumnType.
var columnTypeAliases = map[string]ColumnType{
	"int": Int, "int2": Int, "int4": Int, "int8": Int, "smallint": Int,
	"integer": Int, "bigint": Int,
	"text": Text, "varchar": Text, "character varying": Text,
	"uuid": UUID,
}

// VindexHash is the only sharding function so far: Postgres's own extended
// hash with seed 0, so the database can compute a row's keyspace id too.
const VindexHash = "hash"

// Table is one table of a keyspace.
type Table struct {
	Name string `json:"-"`
	// Kind defaults to sharded in a sharded keyspace.
	Kind TableKind `json:"kind,omitempty"`
	// Column is the sharding column of a sharded table.
	Column string `json:"column,omitempty"`
	// Type is the SQL type of Column.
	Type ColumnType `json:"type,omitempty"`
	// Vindex is the sharding function; defaults to "hash".
	Vindex string `json:"vindex,omitempty"`
	// Learned is set for a reference table the gateway learned from the
	// CREATE TABLE that made it (see WithReference), not listed.
	Learned bool `json:"-"`
}

// GetKind returns t's kind, "" for nil.
func (t *Table) GetKind() TableKind {
	if t == nil {
		return ""
	}
	return t.Kind
}

// Table returns the table named name, or nil.
func (k *Keyspace) Table(name string) *Table {
	if k == nil {
		return nil
	}
	return k.Tables[name]
}

// WithReference returns k with the tables of names it does not list added
// as reference tables (tables the gateway learned from CREATE TABLE under
// unlisted_tables: reference); k itself when it lists them all. k is not
// changed: snapshots share it.
func (k *Keyspace) WithReference(names ...string) *Keyspace {
	var missing []string
	for _, n := range names {
		if k.Table(n) == nil && !slices.Contains(missing, n) {
			missing = append(missing, n)
		}
	}
	if len(missing) == 0 {
		return k
	}
	out := *k
	out.Tables = make(map[string]*Table, len(k.Tables)+len(missing))
	for n, t := range k.Tables {
		out.Tables[n] = t
	}
	for _, n := range missing {
		out.Tables[n] = &Table{Name: n, Kind: Reference, Learned: true}
	}
	return &out
}

// TableName is how the vschema names table rel of schema: rel alone for
// schema public (or none given), schema.rel otherwise.
func TableName(schema, rel string) string {
	if schema == "" || schema == "public" {
		return rel
	}
	return schema + "." + rel
}

// HashSQL is the SQL expression that computes, on a shard, the keyspace id
// of column (an identifier the caller quoted): the value KeyspaceID gives
// for the column's text. Text hashes its bytes whatever the column's
// collation, as the gateway does.
func (t *Table) HashSQL(column string) string {
	switch t.Type {
	case Text:
		return "hashtextextended(" + column + "::text COLLATE \"C\", 0)"
	case UUID:
		return "uuid_hash_extended(" + column + ", 0)"
	}
	return "hashint8extended(" + column + "::int8, 0)"
}

// KeyspaceID computes the keyspace id of a sharding column value given as the
// text Postgres would parse for the column's type. ok is false when the text
// is not a valid value of that type (Postgres would reject it, so the caller
// must not route on it).
func (t *Table) KeyspaceID(text string) (id int64, ok bool) {
	switch t.Type {
	case Int:
		v, err := parseInt(text)
		if err != nil {
			return 0, false
		}
		return HashInt64(v), true
	case Text:
		return HashText(text), true
	case UUID:
		u, err := ParseUUID(text)
		if err != nil {
			return 0, false
		}
		return HashUUID(u), true
	}
	return 0, false
}

// CoLocated reports whether rows of t and o with equal sharding column values
// always live on the same shard, so a join on those columns runs inside each
// shard.
func (t *Table) CoLocated(o *Table) bool {
	return t.Kind == Sharded && o.Kind == Sharded && t.Type == o.Type && t.Vindex == o.Vindex
}

// Parse reads a vschema file (YAML or JSON), fills in defaults and validates
// it. Every problem found is reported, one per line, so an operator can fix
// the file in one pass.
func Parse(data []byte) (*File, error) {
	var f File
	if err := yaml.UnmarshalStrict(data, &f); err != nil {
		// The YAML library reports several problems on several lines.
		msg := strings.Join(strings.Fields(err.Error()), " ")
		return nil, fmt.Errorf("invalid vschema: %s", strings.TrimPrefix(msg, "error converting YAML to JSON: "))
	}
	if err := f.normalize(); err != nil {
		return nil, err
	}
	return &f, nil
}

// ParseKeyspace reads one keyspace as stored in etcd (JSON) and validates it.
func ParseKeyspace(name string, data []byte) (*Keyspace, error) {
	var k Keyspace
	if err := json.Unmarshal(data, &k); err != nil {
		return nil, fmt.Errorf("vschema of keyspace %q: %w", name, err)
	}
	f := File{Keyspaces: map[string]*Keyspace{name: &k}}
	if err := f.normalize(); err != nil {
		return nil, err
	}
	return &k, nil
}

// JSON returns the keyspace in the form stored in etcd.
func (k *Keyspace) JSON() []byte {
	b, err := json.Marshal(k)
	if err != nil {
		panic(err) // plain structs of strings and maps always marshal
	}
	return b
}

// identifier is what shardgate accepts as a keyspace, table or column name:
// a plain lower-case SQL identifier, the form Postgres folds unquoted names to.
var identifier = regexp.MustCompile(`^[a-z_][a-z0-9_$]{0,62}$`)

// ValidName reports an error when name cannot be a keyspace, table or column name.
func ValidName(what, name string) error {
	if !identifier.MatchString(name) {
		return fmt.Errorf("%s name %q must be a lower-case SQL identifier (letters, digits, _; at most 63 bytes)", what, name)
	}
	return nil
}

// ValidTableName reports an error when name cannot name a table: an
// identifier, or schema.table for a table outside schema public.
func ValidTableName(name string) error {
	schema, table, qualified := strings.Cut(name, ".")
	if !qualified {
		return ValidName("table", name)
	}
	if schema == "public" {
		return fmt.Errorf("table name %q: tables of schema public are named without it (%s)", name, table)
	}
	if !identifier.MatchString(schema) || !identifier.MatchString(table) {
		return fmt.Errorf("table name %q must be a lower-case SQL identifier, or two joined by a dot (schema.table)", name)
	}
	return nil
}

func (f *File) normalize() error {
	var problems []string
	bad := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	if len(f.Keyspaces) == 0 {
		bad("no keyspaces: the file needs a top-level \"keyspaces:\" map")
	}
	for _, ksName := range sortedKeys(f.Keyspaces) {
		ks := f.Keyspaces[ksName]
		if err := ValidName("keyspace", ksName); err != nil {
			bad("%v", err)
		}
		if ks == nil {
			bad("keyspace %s: empty definition", ksName)
			continue
		}
		ks.Name = ksName
		switch ks.Pooling {
		case "":
			ks.Pooling = PoolTransaction
		case PoolTransaction, PoolSession:
		default:
			bad("keyspace %s: unknown pooling %q (want transaction or session)", ksName, ks.Pooling)
		}
		if ks.MaxPinnedSessions < 0 {
			bad("keyspace %s: max_pinned_sessions %d is negative (0: no cap)", ksName, ks.MaxPinnedSessions)
		}
		switch ks.MultiShardWrites {
		case "":
			ks.MultiShardWrites = TwoPhaseCommit
		case TwoPhaseCommit, RefuseMultiShardWrites:
		default:
			bad("keyspace %s: unknown multi_shard_writes %q (want two_phase_commit or refuse)", ksName, ks.MultiShardWrites)
		}
		switch ks.UnlistedTables {
		case "":
			ks.UnlistedTables = RefuseUnlisted
		case RefuseUnlisted:
		case ReferenceUnlisted:
			if !ks.Sharded {
				bad("keyspace %s: unlisted_tables applies to sharded keyspaces; an unsharded one takes any table", ksName)
			}
		default:
			bad("keyspace %s: unknown unlisted_tables %q (want refuse or reference)", ksName, ks.UnlistedTables)
		}
		switch {
		case ks.SequenceBlock == 0:
			ks.SequenceBlock = DefaultSequenceBlock
		case ks.SequenceBlock < 0 || ks.SequenceBlock > MaxSequenceBlock:
			bad("keyspace %s: sequence_block %d must be between 1 and %d", ksName, ks.SequenceBlock, MaxSequenceBlock)
		}
		switch ks.SequenceIDs {
		case "":
			ks.SequenceIDs = BlockIDs
		case BlockIDs, SnowflakeIDs:
		default:
			bad("keyspace %s: unknown sequence_ids %q (want blocks or snowflake)", ksName, ks.SequenceIDs)
		}
		for _, tName := range sortedKeys(ks.Tables) {
			t := ks.Tables[tName]
			where := fmt.Sprintf("keyspace %s, table %s", ksName, tName)
			if err := ValidTableName(tName); err != nil {
				bad("%s: %v", where, err)
			}
			if t == nil {
				t = &Table{}
				ks.Tables[tName] = t
			}
			t.Name = tName
			if !ks.Sharded {
				if t.Kind != "" || t.Column != "" || t.Type != "" || t.Vindex != "" {
					bad("%s: an unsharded keyspace lives on one shard; its tables take no kind, column, type or vindex", where)
				}
				continue
			}
			if t.Kind == "" {
				t.Kind = Sharded
			}
			switch t.Kind {
			case Reference:
				if t.Column != "" || t.Type != "" || t.Vindex != "" {
					bad("%s: a reference table is copied to every shard and takes no column, type or vindex", where)
				}
			case Sharded:
				if t.Column == "" {
					bad("%s: missing sharding column (column: NAME)", where)
				} else if err := ValidName("column", t.Column); err != nil {
					bad("%s: %v", where, err)
				}
				if t.Type == "" {
					bad("%s: missing type of column %q (type: int, text or uuid)", where, t.Column)
				} else if ct, ok := columnTypeAliases[strings.ToLower(string(t.Type))]; ok {
					t.Type = ct
				} else {
					bad("%s: unknown column type %q (want one of int, smallint, integer, bigint, text, varchar, uuid)", where, t.Type)
				}
				if t.Vindex == "" {
					t.Vindex = VindexHash
				}
				if t.Vindex != VindexHash {
					bad("%s: unknown vindex %q (supported: hash)", where, t.Vindex)
				}
			default:
				bad("%s: unknown kind %q (want sharded or reference)", where, t.Kind)
			}
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("invalid vschema: %s", strings.Join(problems, "; "))
	}
	return nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// TableNames returns the keyspace's table names in order.
func (k *Keyspace) TableNames() []string {
	return sortedKeys(k.Tables)
}

// parseInt parses an integer the way Postgres's int8 input does: surrounding
// white space and a sign are allowed.
func parseInt(text string) (int64, error) {
	return strconv.ParseInt(strings.TrimSpace(text), 10, 64)
}
