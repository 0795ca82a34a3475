package planner

import (
	"strings"

	pg_query "github.com/pganalyze/pg_query_go/v6"
	"google.golang.org/protobuf/proto"
)

// funcName returns a function call's unqualified name.
func funcName(f *pg_query.FuncCall) string {
	if len(f.Funcname) == 0 {
		return ""
	}
	return f.Funcname[len(f.Funcname)-1].GetString_().GetSval()
}

// aggregates are Postgres's built-in aggregate functions. User-defined
// aggregates cannot appear: CREATE AGGREGATE is refused on sharded keyspaces.
var aggregates = setOf(
	"array_agg", "avg", "bit_and", "bit_or", "bit_xor", "bool_and", "bool_or",
	"count", "every", "json_agg", "json_agg_strict", "json_object_agg",
	"json_object_agg_strict", "json_object_agg_unique", "json_object_agg_unique_strict",
	"jsonb_agg", "jsonb_agg_strict", "jsonb_object_agg", "jsonb_object_agg_strict",
	"jsonb_object_agg_unique", "jsonb_object_agg_unique_strict", "max", "min",
	"range_agg", "range_intersect_agg", "string_agg", "sum", "xmlagg", "any_value",
	"corr", "covar_pop", "covar_samp", "regr_avgx", "regr_avgy", "regr_count",
	"regr_intercept", "regr_r2", "regr_slope", "regr_sxx", "regr_sxy", "regr_syy",
	"stddev", "stddev_pop", "stddev_samp", "variance", "var_pop", "var_samp",
	"mode", "percentile_cont", "percentile_disc", "rank", "dense_rank",
	"percent_rank", "cume_dist", "grouping",
)

func isAggregate(f *pg_query.FuncCall) bool {
	return f.AggStar || f.AggDistinct || f.AggWithinGroup || f.AggFilter != nil ||
		len(f.AggOrder) > 0 || aggregates[strings.ToLower(funcName(f))]
}

// sequenceFuncs read or advance a sequence, which exists once per shard.
var sequenceFuncs = setOf("nextval", "currval", "setval", "lastval")

// deterministic are functions whose result depends only on their arguments,
// so a write that runs on several shards stores the same value on each. Any
// other function (now(), random(), gen_random_uuid(), ...) could store a
// different value per shard and is refused in multi-shard writes.
var deterministic = setOf(
	"abs", "ceil", "ceiling", "floor", "round", "trunc", "sign", "mod", "power",
	"sqrt", "exp", "ln", "log", "div",
	"lower", "upper", "initcap", "length", "char_length", "character_length",
	"octet_length", "substr", "substring", "left", "right", "trim", "btrim",
	"ltrim", "rtrim", "lpad", "rpad", "replace", "concat", "concat_ws",
	"reverse", "repeat", "split_part", "strpos", "position", "md5", "sha256",
	"encode", "decode", "format", "to_hex", "translate", "starts_with",
	"jsonb_build_object", "jsonb_build_array", "json_build_object",
	"json_build_array", "to_jsonb", "to_json", "jsonb_set", "array_append",
	"array_prepend", "array_cat", "array_remove", "array_length", "cardinality",
	"make_date", "make_timestamp", "date_trunc", "date_part", "extract",
	"coalesce", "nullif", "greatest", "least",
)

func setOf(names ...string) map[string]bool {
	m := make(map[string]bool, len(names))
	for _, n := range names {
		m[n] = true
	}
	return m
}

// checkFunctions refuses sequence functions anywhere (a sequence exists once
// per shard, so ids would repeat across shards) and, in a write that runs on
// several shards, any function whose value could differ between shards.
func checkFunctions(stmt proto.Message, multiShardWrite bool) *Error {
	var err *Error
	walk(stmt, func(m proto.Message) bool {
		if err != nil {
			return false
		}
		switch n := m.(type) {
		case *pg_query.FuncCall:
			name := strings.ToLower(funcName(n))
			if anchorFuncs[name] {
				err = anchorRefusal(name)
			} else if sequenceFuncs[name] {
				err = unsupported("%s() is not supported here on a sharded keyspace: the gateway hands out a sequence's values for every shard where Postgres evaluates the call once (a VALUES row, a SELECT without FROM), not per row", name)
			} else if multiShardWrite && !deterministic[name] {
				err = unsupported("%s() in a write that runs on several shards is not supported: each shard could store a different value", name)
			}
		case *pg_query.SQLValueFunction:
			if multiShardWrite {
				err = unsupported("CURRENT_TIMESTAMP and similar values in a write that runs on several shards are not supported: each shard could store a different value")
			}
		}
		return err == nil
	})
	return err
}
