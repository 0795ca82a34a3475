package engine

import "sync/atomic"

// A lean statement is a shards' statement whose probes — hidden columns
// that name the collation of another column, or say whether collations are
// deterministic — are computed as NULL. Shards that compute them for every
// row do several times the work of the statement itself, and they matter
// only for columns of types with collations. A primitive runs its lean
// statement once its KeyTypes saw, under the same schema version, that no
// probe's subject has such a type.

// Probe is a hidden column of the shards' answer (Column, counted among
// the hidden ones) about another column, its subject: the output column
// Ordinal (1-based), hidden column Hidden when Ordinal is 0, or every
// output column when Visible is set.
type Probe struct {
	Column, Ordinal, Hidden int
	Visible                 bool
}

// KeyTypes remembers, for every execution of a plan (and of the plans the
// plan cache makes from it for other literals), whether the shards'
// answer had its probes' subjects in types without collations, and under
// which schema version (see SchemaVersioned): a schema change may give a
// column another type.
type KeyTypes struct {
	plainUnder atomic.Pointer[string]
}

// SchemaVersioned is an Executor that names the version of the schema its
// statements see, which every schema change it knows of changes. ok is
// false when its statements may see a schema of their own (a transaction
// that changes it, temporary tables): nothing learnt then is kept.
type SchemaVersioned interface {
	SchemaVersion() (version string, ok bool)
}

func schemaVersion(x Executor) (string, bool) {
	if v, ok := x.(SchemaVersioned); ok {
		return v.SchemaVersion()
	}
	return "", true
}

// lean reports whether the shards may run the lean statement sql under x.
// A nil KeyTypes never allows it.
func (kt *KeyTypes) lean(x Executor, sql string) bool {
	if sql == "" || kt == nil {
		return false
	}
	v, ok := schemaVersion(x)
	return ok && kt.plainUnderVersion(v)
}

func (kt *KeyTypes) plainUnderVersion(version string) bool {
	v := kt.plainUnder.Load()
	return v != nil && *v == version
}

// learn records whether the subjects of probes, among the shards' columns
// fields (the first visible of them the output columns), have types
// without collations. A statement that ran lean although one now has one
// (its column changed type by a schema change the executor did not know
// of) fails: what the probe would have said is unknown. The next run asks
// again.
func (kt *KeyTypes) learn(x Executor, ranLean bool, probes []Probe, fields []Field, visible int) error {
	if kt == nil {
		return nil
	}
	plain := true
	subject := func(col int) {
		if col < 0 || col >= len(fields) || collatable(fields[col].DataTypeOID) {
			plain = false
		}
	}
	for _, p := range probes {
		switch {
		case p.Visible:
			for col := range visible {
				subject(col)
			}
		case p.Ordinal > 0:
			subject(p.Ordinal - 1)
		default:
			subject(visible + p.Hidden)
		}
	}
	if v, ok := schemaVersion(x); ok {
		switch {
		case !plain:
			kt.plainUnder.Store(nil)
		case !kt.plainUnderVersion(v):
			kt.plainUnder.Store(&v)
		}
	}
	if ranLean && !plain {
		return &Error{Code: CodeFeatureNotSupported,
			Message: "cached plan must not change result type: a column the shards compare changed its type since the statement last ran; run it again"}
	}
	return nil
}
