package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"strings"
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
	stderr io.Writer // for the logs of long-running commands

	etcd    string
	cluster string
	timeout time.Duration

	etcdCA, etcdCert, etcdKey      string
	etcdUsername, etcdPasswordFile string

	cli   *clientv3.Client
	store *topology.Store
}

// endpoints splits --etcd into its endpoints.
func (a *app) endpoints() []string { return splitList(a.etcd) }

// open connects to etcd on first use. The gRPC connection itself is made
// lazily by the first request, which --timeout bounds (see call); with
// --etcd-username, though, the client authenticates here, within --timeout.
func (a *app) open(ctx context.Context) (*topology.Store, error) {
	if a.store != nil {
		return a.store, nil
	}
	tlsCfg, err := a.etcdTLS()
	if err != nil {
		return nil, err
	}
	var password string
	if a.etcdPasswordFile != "" {
		if password, err = topology.ReadSecretFile(a.etcdPasswordFile); err != nil {
			return nil, fmt.Errorf("--etcd-password-file: %w", err)
		}
	}
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   a.endpoints(),
		DialTimeout: a.timeout,
		Context:     ctx,
		TLS:         tlsCfg,
		Username:    a.etcdUsername,
		Password:    password,
		// The client's own logger would write warnings to stderr, where
		// only the one error line belongs.
		Logger: zap.NewNop(),
	})
	switch {
	case err == nil:
	case ctx.Err() != nil:
		return nil, fmt.Errorf("interrupted: %w", err)
	case errors.Is(err, context.DeadlineExceeded):
		return nil, fmt.Errorf("connecting to etcd: %w %s", err, a.noAnswerHint())
	default:
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
		return fmt.Errorf("%w %s", err, a.noAnswerHint())
	}
	return err
}

// noAnswerHint explains a request that ran out of time. A failed TLS
// handshake (an untrusted server or client certificate) looks to the client
// just like an etcd that is down: it retries until the deadline, and the
// handshake's own error is lost.
func (a *app) noAnswerHint() string {
	if a.usesTLS() {
		return fmt.Sprintf("(no answer from etcd at %s within %s; is it running, does --etcd-ca verify its certificate, and does it accept --etcd-cert? see --etcd, --etcd-ca, --etcd-cert, --timeout)", a.etcd, a.timeout)
	}
	return fmt.Sprintf("(no answer from etcd at %s within %s; is it running? see --etcd, --timeout)", a.etcd, a.timeout)
}

// usesTLS reports whether shardctl talks TLS to etcd: it does with a TLS
// flag or an https:// endpoint.
func (a *app) usesTLS() bool {
	if a.etcdCA != "" || a.etcdCert != "" {
		return true
	}
	for _, ep := range a.endpoints() {
		if strings.HasPrefix(strings.ToLower(ep), "https://") {
			return true
		}
	}
	return false
}

// checkEtcdSecurityFlags rejects combinations of the etcd TLS and
// authentication flags that could not work, before anything is read.
func (a *app) checkEtcdSecurityFlags() error {
	if (a.etcdCert == "") != (a.etcdKey == "") {
		return usageErrorf("--etcd-cert and --etcd-key go together")
	}
	if (a.etcdUsername == "") != (a.etcdPasswordFile == "") {
		return usageErrorf("--etcd-username and --etcd-password-file go together")
	}
	if a.etcdCA != "" || a.etcdCert != "" {
		// The etcd client silently drops TLS for an http:// endpoint.
		for _, ep := range a.endpoints() {
			if strings.HasPrefix(strings.ToLower(ep), "http://") {
				return usageErrorf("--etcd %s is plain http; with --etcd-ca or --etcd-cert use https://", ep)
			}
		}
	}
	return nil
}

// etcdTLS builds the TLS configuration for etcd from --etcd-ca, --etcd-cert
// and --etcd-key, or returns nil without them (an https:// endpoint then
// verifies etcd against the system's CAs).
func (a *app) etcdTLS() (*tls.Config, error) {
	t, err := topology.ClientTLS(a.etcdCA, a.etcdCert, a.etcdKey)
	var fe *topology.TLSFileError
	if errors.As(err, &fe) && fe.CA {
		return nil, fmt.Errorf("--etcd-ca: %w", err)
	} else if err != nil {
		return nil, fmt.Errorf("--etcd-cert/--etcd-key: %w", err)
	}
	return t, nil
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
