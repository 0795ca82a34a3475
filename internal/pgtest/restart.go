package pgtest

import "context"

// Halt stops the server as Stop does but keeps its data, so that Resume can
// start it again: a shard that goes down and comes back.
func (c *Cluster) Halt() error { return c.stopServer("fast") }

// Resume starts a halted server again on its port and returns once it
// accepts connections.
func (c *Cluster) Resume(ctx context.Context) error { return c.start(ctx, c.Port) }
