package proxy

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/shardgate/shardgate/planner"
	"github.com/shardgate/shardgate/topology"
	"github.com/shardgate/shardgate/vschema"
)

// planVSchema is the vschema the session plans by in keyspace ks: ks's,
// with the reference tables the session learned that ks may not list yet
// (a transaction keeps the topology it began with), and with the catalog.
func (s *session) planVSchema(ctx context.Context, ks *topology.Keyspace) *vschema.Keyspace {
	vs := ks.VSchema()
	if len(s.learned) > 0 {
		if s.learnedVS.base == vs {
			vs = s.learnedVS.ext
		} else if ext := vs.WithReference(s.learned...); ext == vs && s.txn == nil {
			s.learned = nil // the snapshot lists them now
		} else {
			s.learnedVS.base, s.learnedVS.ext = vs, ext
			vs = ext
		}
	}
	return s.withCatalog(ctx, ks, vs)
}

// learnTables records the tables sts create as reference tables (see
// planner.Statement.Learns) before they run: a table listed that then
// failed to be created answers as it would on one Postgres (42P01), one
// created and not listed could not be reached.
func (s *session) learnTables(ctx context.Context, sts []*planner.Statement) error {
	var names []string
	for _, st := range sts {
		names = append(names, st.Learns...)
	}
	if len(names) == 0 {
		return nil
	}
	if s.srv.schema == nil {
		return &planner.Error{Code: codeFeatureNotSupp, Message: "this gateway keeps no topology store to record new reference tables in"}
	}
	lctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := s.srv.schema.LearnReferenceTables(lctx, s.keyspace, names); err != nil {
		return &planner.Error{Code: codeSystemError, Message: fmt.Sprintf("recording %s as reference tables of keyspace %s: %v", strings.Join(names, ", "), s.keyspace, err)}
	}
	s.learned = append(s.learned, names...)
	s.learnedVS.base = nil
	return nil
}
