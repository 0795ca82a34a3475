package planner

import (
	"slices"
	"strings"

	pg_query "github.com/pganalyze/pg_query_go/v6"
	"google.golang.org/protobuf/proto"

	"github.com/shardgate/shardgate/planner/engine"
	"github.com/shardgate/shardgate/vschema"
)

// Copy is a planned COPY ... FROM STDIN or COPY ... TO STDOUT, which the
// session runs itself: it streams rows between the client and the shards.
type Copy struct {
	// From is set for COPY FROM STDIN.
	From bool
	// Table is the vschema table copied into or out of; nil for
	// COPY (query) TO and in an unsharded keyspace.
	Table *vschema.Table
	// Columns are the columns the statement names, if any.
	Columns []string
	// Target is where the COPY runs: every shard holding rows of the
	// table, or the shards a query reads, or one shard, for a reference
	// table or a catalog.
	Target engine.Target
	// Refusal, when set, is why the COPY cannot run on several shards.
	Refusal *Error
	// ShardSQL is the statement each shard runs. For COPY FROM it lacks
	// the HEADER option: the gateway takes the header line off the stream.
	ShardSQL string
	// Format options, as the statement gave them ("" for the default).
	Format    string // text, csv or binary
	Delimiter string
	Null      *string // nil: the format's default
	Quote     string
	Escape    string
	Header    bool
	// ForceNull and ForceNotNull list the columns of those CSV options.
	ForceNull, ForceNotNull []string
}

// planCopy plans COPY against the vschema. Only STDIN and STDOUT are
// allowed: files and programs on the shards' servers are out of reach.
func (p *planning) planCopy(c *pg_query.CopyStmt) (*Copy, error) {
	if c.Filename != "" || c.IsProgram {
		return nil, unsupported("COPY to or from a file or program on the server is not supported by shardgate; use COPY ... FROM STDIN or TO STDOUT (psql's \\copy)")
	}
	cp := &Copy{From: c.IsFrom, ShardSQL: p.sql}
	for _, a := range c.Attlist {
		cp.Columns = append(cp.Columns, a.GetString_().GetSval())
	}
	var kept []*pg_query.Node
	for _, o := range c.Options {
		d := o.GetDefElem()
		if d == nil {
			continue
		}
		switch d.Defname {
		case "format":
			cp.Format = strings.ToLower(defString(d))
		case "delimiter":
			cp.Delimiter = defString(d)
		case "null":
			null := defString(d)
			cp.Null = &null
		case "quote":
			cp.Quote = defString(d)
		case "escape":
			cp.Escape = defString(d)
		case "header":
			switch v := strings.ToLower(defString(d)); v {
			case "", "true", "on", "1":
				cp.Header = true
			case "match":
				return nil, unsupported("COPY ... HEADER MATCH is not supported by shardgate yet")
			}
			if c.IsFrom {
				continue // the gateway strips the header line
			}
		case "force_null":
			cp.ForceNull = defList(d)
		case "force_not_null":
			cp.ForceNotNull = defList(d)
		case "default":
			return nil, unsupported("COPY ... DEFAULT is not supported by shardgate yet")
		}
		kept = append(kept, o)
	}
	if c.IsFrom && cp.Header {
		stripped := proto.Clone(c).(*pg_query.CopyStmt)
		stripped.Options = kept
		sql, err := pg_query.Deparse(&pg_query.ParseResult{Version: p.version, Stmts: []*pg_query.RawStmt{{Stmt: &pg_query.Node{Node: &pg_query.Node_CopyStmt{CopyStmt: stripped}}}}})
		if err != nil {
			return nil, err
		}
		cp.ShardSQL = sql
	}
	if !p.vs.Sharded {
		cp.Target = engine.Target{Kind: engine.TargetAll}
		return cp, nil
	}
	if c.Query != nil {
		sel := c.Query.GetSelectStmt()
		if sel == nil {
			return nil, unsupported("COPY (statement) TO STDOUT is supported for SELECT only")
		}
		root, err := p.planSelect(sel)
		if err != nil {
			return nil, err
		}
		r := root.(*engine.Route)
		cp.Target, cp.Refusal = r.Target, r.Refusal
		if _, rowsConcatenate := r.Multi.(*engine.Scatter); r.Refusal == nil && !rowsConcatenate {
			// Each shard's COPY output is its own: only rows that
			// concatenate can be streamed from several.
			cp.Refusal = unsupported("COPY (query) TO STDOUT across shards is supported only for queries whose rows each live on one shard; this one combines rows of several shards")
		}
		p.checkCopyOut(cp)
		return cp, nil
	}
	t, catalog, err := p.resolve(c.Relation)
	if err != nil {
		return nil, err
	}
	if catalog {
		if c.IsFrom {
			return nil, unsupported("writing system catalogs through shardgate is not supported")
		}
		cp.Target = engine.Target{Kind: engine.TargetAny}
		return cp, nil
	}
	cp.Table = t
	if c.IsFrom && len(cp.Columns) > 0 {
		rel := p.vs.Catalog.Relation(vschema.TableName(c.Relation.Schemaname, c.Relation.Relname))
		for _, col := range rel.GetColumns() {
			switch {
			case col.Generated || slices.Contains(cp.Columns, col.Name):
			case col.Sequence != "":
				return nil, unsupported("COPY into %s must give column %s its values: they come from sequence %s, whose values the gateway hands out for every shard; name the column, or insert with INSERT", t.Name, col.Name, col.Sequence)
			case t.Kind == vschema.Reference && volatileDefault(col.Default) != nil:
				return nil, unsupported("COPY into reference table %s must give column %s its values: its default (%s) would differ between the copies; name the column, or insert with INSERT", t.Name, col.Name, col.Default)
			}
		}
	}
	switch {
	case t.Kind == vschema.Reference && !c.IsFrom:
		cp.Target = engine.Target{Kind: engine.TargetAny}
	default:
		cp.Target = engine.Target{Kind: engine.TargetAll}
	}
	if c.IsFrom && t.Kind == vschema.Sharded {
		if cp.Format == "binary" {
			return nil, unsupported("COPY FROM in binary format into sharded table %s is not supported yet; use text or csv", t.Name)
		}
		if len(cp.Columns) > 0 && !contains(cp.Columns, t.Column) {
			return nil, keyError("COPY into sharded table %s must include its sharding column %s", t.Name, t.Column)
		}
	}
	p.checkCopyOut(cp)
	return cp, nil
}

// checkCopyOut refuses binary COPY TO from several shards: each shard's
// output has its own header and trailer.
func (p *planning) checkCopyOut(cp *Copy) {
	if !cp.From && cp.Format == "binary" && cp.Refusal == nil {
		cp.Refusal = unsupported("COPY TO in binary format from several shards is not supported yet; use text or csv")
	}
}

// Shards resolves where the COPY runs against topo, or refuses it.
func (cp *Copy) Shards(topo engine.Topology) ([]string, error) {
	shards := cp.Target.Resolve(topo, nil)
	if len(shards) > 1 && cp.Refusal != nil {
		return nil, cp.Refusal
	}
	return shards, nil
}

func defString(d *pg_query.DefElem) string {
	switch {
	case d.Arg == nil:
		return ""
	case d.Arg.GetString_() != nil:
		return d.Arg.GetString_().GetSval()
	case d.Arg.GetBoolean() != nil:
		if d.Arg.GetBoolean().Boolval {
			return "true"
		}
		return "false"
	case d.Arg.GetInteger() != nil:
		if d.Arg.GetInteger().Ival != 0 {
			return "true"
		}
		return "false"
	}
	return ""
}

func defList(d *pg_query.DefElem) []string {
	var out []string
	for _, n := range d.Arg.GetList().GetItems() {
		out = append(out, n.GetString_().GetSval())
	}
	return out
}
