package vschema

import (
	"slices"
	"strings"
)

// Catalog is what the shards' own catalog says about a keyspace's
// relations, as far as planning needs it: each table's columns in order
// with their defaults, and which sequence a column's values come from. The
// gateway reads it from one shard (every shard has the same schema) and
// attaches it to the keyspace it plans by (WithCatalog).
type Catalog struct {
	// Relations by TableName: tables, views, materialized views.
	Relations map[string]*Relation
}

// Relation is one table or view of a Catalog.
type Relation struct {
	// Kind is pg_class.relkind: 'r' table, 'p' partitioned table, 'v'
	// view, 'm' materialized view, 'f' foreign table, 'S' sequence (whose
	// columns are not kept).
	Kind    byte
	Columns []Column
	// View is a view's query (pg_get_viewdef), "" for other kinds.
	View string
}

// Column is one column of a Relation, in the relation's order.
type Column struct {
	Name string
	// Type is the column's type as format_type prints it.
	Type string
	// Identity is pg_attribute.attidentity: 'a' (ALWAYS), 'd' (BY
	// DEFAULT) or 0.
	Identity byte
	// Generated is set for a generated column, whose value Postgres
	// computes: an INSERT may only give it DEFAULT.
	Generated bool
	// Sequence names the sequence an identity column, or a default of
	// nextval(), draws the column's values from, as schema.name; "" for
	// none.
	Sequence string
	// OwnsSequence is set when the column owns Sequence (serial,
	// identity): it goes with the column's table.
	OwnsSequence bool
	// Default is the column's default expression as Postgres prints it,
	// "" for none.
	Default string
}

// Relation returns the relation the catalog knows by name, or nil.
func (c *Catalog) Relation(name string) *Relation {
	if c == nil {
		return nil
	}
	return c.Relations[name]
}

// SequencesIn names the sequences of schema, in order.
func (c *Catalog) SequencesIn(schema string) []string {
	if c == nil {
		return nil
	}
	var out []string
	for name, r := range c.Relations {
		if r.Kind != 'S' {
			continue
		}
		s, _, qualified := strings.Cut(name, ".")
		if qualified && s == schema || !qualified && schema == "public" {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}

// GetColumns returns r's columns, none for nil.
func (r *Relation) GetColumns() []Column {
	if r == nil {
		return nil
	}
	return r.Columns
}

// WithCatalog returns k with c attached: a copy, for k is shared.
func (k *Keyspace) WithCatalog(c *Catalog) *Keyspace {
	out := *k
	out.Catalog = c
	return &out
}
