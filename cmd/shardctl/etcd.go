package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/shardgate/shardgate/topology"
)

// app is what every command of one shardctl run shares: the I/O streams, the
// global flags and, once a command needs it, the etcd connection.
type app struct {
	stdin  io.Reader
	stdout io.Writer

	etcd    string
	cluster string
	timeout time.Duration

	cli   *clientv3.Client
	store *topology.Store
}

// endpoints splits --etcd into its endpoints.
func (a *app) endpoints() []string { return splitList(a.etcd) }

// open connects to etcd on first use. The gRPC connection itself is made
// lazily by the first request, which --timeout bounds (see call).
func (a *app) open(ctx context.Context) (*topology.Store, error) {
	if a.store != nil {
		return a.store, nil
	}
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   a.endpoints(),
		DialTimeout: a.timeout,
		Context:     ctx,
		// The client's own logger would write warnings to stderr, where
		// only the one error line belongs.
		Logger: zap.NewNop(),
	})
	if err != nil {
		return nil, fmt.Errorf("connecting to etcd at %s: %w", a.etcd, err)
	}
	a.cli = cli
	a.store = topology.NewStore(cli, a.cluster)
	return a.store, nil
}

// close releases the etcd connection, if one was opened.
func (a *app) close() {
	if a.cli != nil {
		a.cli.Close()
	}
}

// call runs one request against the Store with --timeout as its time limit.
// A request that runs out of time is reported as etcd not answering, which
// is by far the likeliest cause.
func (a *app) call(ctx context.Context, f func(context.Context, *topology.Store) error) error {
	store, err := a.open(ctx)
	if err != nil {
		return err
	}
	cctx, cancel := context.WithTimeout(ctx, a.timeout)
	defer cancel()
	err = f(cctx, store)
	switch {
	case err == nil:
		return nil
	case ctx.Err() != nil:
		return fmt.Errorf("interrupted: %w", err)
	case errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("%w (no answer from etcd at %s within %s; is it running? see --etcd, --timeout)", err, a.etcd, a.timeout)
	}
	return err
}

// load reads the whole topology of the cluster.
func (a *app) load(ctx context.Context) (*topology.Snapshot, error) {
	var snap *topology.Snapshot
	err := a.call(ctx, func(ctx context.Context, s *topology.Store) error {
		var err error
		snap, err = s.Load(ctx)
		return err
	})
	return snap, err
}

// table returns a writer that aligns tab-separated columns; Flush it.
func table(w io.Writer) *tabwriter.Writer {
	return tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
}
