package proxy

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// TestListenNotify: on an unsharded and on a sharded keyspace (where
// LISTEN and NOTIFY meet on the anchor shard), in either pooling mode, a
// listening client gets notifications while it waits (from another
// session) and with a statement's answer (its own), as from Postgres; under
// transaction pooling it stays pinned while it listens.
func TestListenNotify(t *testing.T) {
	g := startGateway(t, DefaultPoolConfig)
	ctx := context.Background()
	for _, ks := range []string{"solo", "solotx", "pinned", "app"} {
		t.Run(ks, func(t *testing.T) {
			got := make(chan string, 10)
			cfg, err := pgconn.ParseConfig(g.dsn(ks, ""))
			if err != nil {
				t.Fatal(err)
			}
			cfg.OnNotification = func(_ *pgconn.PgConn, n *pgconn.Notification) { got <- n.Channel + ":" + n.Payload }
			a, err := pgconn.ConnectConfig(ctx, cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer a.Close(ctx)
			b := g.connect(t, ks, "")
			exec(t, a, "listen events")
			exec(t, a, "select count(*) from users") // a holds every shard's connection now
			exec(t, b, "select 1")                   // b takes a connection of its own

			// While a is idle.
			exec(t, b, "notify events, 'from b'")
			wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			err = a.WaitForNotification(wctx)
			cancel()
			if err != nil {
				t.Fatalf("waiting for a notification: %v", err)
			}
			if n := <-got; n != "events:from b" {
				t.Fatalf("notification %q", n)
			}
			// With a's own statement's answer.
			exec(t, a, "notify events, 'from a'")
			select {
			case n := <-got:
				if n != "events:from a" {
					t.Fatalf("notification %q", n)
				}
			default:
				t.Fatal("no notification came with the NOTIFY's answer")
			}
			// a goes on working after the watch handed its connection back.
			if got := one(t, a, "select 41 + 1"); got != "42" {
				t.Fatalf("after notifications: %q", got)
			}
			if (ks == "solotx" || ks == "app") && g.srv.pinnedSessions.Load() != 1 {
				t.Fatalf("a listening session is not pinned: %d", g.srv.pinnedSessions.Load())
			}
			exec(t, a, "unlisten *")
			if g.srv.pinnedSessions.Load() != 0 {
				t.Fatalf("%d sessions pinned after UNLISTEN *", g.srv.pinnedSessions.Load())
			}
		})
	}
}
