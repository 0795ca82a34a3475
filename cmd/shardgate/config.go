package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/shardgate/shardgate/proxy"
	"github.com/shardgate/shardgate/topology"
)

// config is everything the gateway can be told. Each setting has one name,
// spelled as a YAML key in the config file (listen_admin), an environment
// variable (SHARDGATE_LISTEN_ADMIN) and a flag (--listen-admin). Later
// sources win: defaults, then the file, then the environment, then flags.
type config struct {
	Listen          string
	ListenAdmin     string
	DataDir         string
	Etcd            []string
	EtcdListen      string
	Cluster         string
	LogLevel        string
	LogFormat       string
	ShutdownTimeout time.Duration
	TopologyTimeout time.Duration
	GatewayTTL      time.Duration
	ResolveInterval time.Duration
	MaxClientConns  int32
	MaxConnsPerUser int32
	Pool            proxy.PoolConfig

	Auth           string
	SSL            string
	TLSCert        string
	TLSKey         string
	StartupTimeout time.Duration
	ClientWrite    time.Duration
	MaxMessageSize int32
	MaxStatement   int32

	AdminToken     string
	AdminTokenFile string
	AdminTLSCert   string
	AdminTLSKey    string

	EtcdCA           string
	EtcdCert         string
	EtcdKey          string
	EtcdUsername     string
	EtcdPasswordFile string
}

func defaultConfig() config {
	return config{
		Listen:          "127.0.0.1:6432",
		ListenAdmin:     "127.0.0.1:9090",
		DataDir:         "shardgate-data",
		EtcdListen:      "127.0.0.1:2379",
		Cluster:         "local",
		LogLevel:        "info",
		LogFormat:       "json",
		ShutdownTimeout: 30 * time.Second,
		TopologyTimeout: 30 * time.Second,
		GatewayTTL:      10 * time.Second,
		MaxClientConns:  1000,
		Auth:            "scram-sha-256",
		SSL:             "allow",
		StartupTimeout:  10 * time.Second,
		ClientWrite:     time.Minute,
		MaxMessageSize:  64 << 20,
		MaxStatement:    16 << 20,
		ResolveInterval: 10 * time.Second,
		Pool:            proxy.DefaultPoolConfig,
	}
}

// setting is one configurable value.
type setting struct {
	name  string // snake_case, as in the YAML file
	usage string
	value func(c *config) accessor
}

// accessor reads and writes one config field as text.
type accessor struct {
	set func(v string) error
	get func() string
}

func str(f func(c *config) *string) func(*config) accessor {
	return func(c *config) accessor {
		p := f(c)
		return accessor{func(v string) error { *p = v; return nil }, func() string { return *p }}
	}
}

func dur(f func(c *config) *time.Duration) func(*config) accessor {
	return func(c *config) accessor {
		p := f(c)
		return accessor{func(v string) error {
			d, err := time.ParseDuration(v)
			if err != nil || d < 0 {
				return fmt.Errorf("%q is not a duration such as 5s or 1m", v)
			}
			*p = d
			return nil
		}, func() string { return p.String() }}
	}
}

func i32(f func(c *config) *int32) func(*config) accessor {
	return func(c *config) accessor {
		p := f(c)
		return accessor{func(v string) error {
			n, err := strconv.ParseInt(v, 10, 32)
			if err != nil || n < 0 {
				return fmt.Errorf("%q is not a non-negative integer", v)
			}
			*p = int32(n)
			return nil
		}, func() string { return strconv.Itoa(int(*p)) }}
	}
}

func list(f func(c *config) *[]string) func(*config) accessor {
	return func(c *config) accessor {
		p := f(c)
		return accessor{func(v string) error {
			*p = nil
			for _, e := range strings.Split(v, ",") {
				if e = strings.TrimSpace(e); e != "" {
					*p = append(*p, e)
				}
			}
			return nil
		}, func() string { return strings.Join(*p, ",") }}
	}
}

func settings() []setting {
	return []setting{
		{"listen", "address for Postgres clients", str(func(c *config) *string { return &c.Listen })},
		{"listen_admin", "address for the admin HTTP endpoint", str(func(c *config) *string { return &c.ListenAdmin })},
		{"data_dir", "directory for the embedded etcd's data", str(func(c *config) *string { return &c.DataDir })},
		{"etcd", "comma-separated etcd endpoints; empty runs an embedded single-node etcd", list(func(c *config) *[]string { return &c.Etcd })},
		{"etcd_listen", "client address of the embedded etcd", str(func(c *config) *string { return &c.EtcdListen })},
		{"cluster", "cluster name: the topology lives under /shardgate/<cluster>/ in etcd", str(func(c *config) *string { return &c.Cluster })},
		{"log_level", "debug, info, warn or error", str(func(c *config) *string { return &c.LogLevel })},
		{"log_format", "json or console", str(func(c *config) *string { return &c.LogFormat })},
		{"shutdown_timeout", "how long SIGTERM waits for running statements", dur(func(c *config) *time.Duration { return &c.ShutdownTimeout })},
		{"topology_timeout", "how long startup waits for the topology in etcd", dur(func(c *config) *time.Duration { return &c.TopologyTimeout })},
		{"gateway_ttl", "how long etcd keeps this gateway registered after it stops answering; its two-phase commits are finished by others after that", dur(func(c *config) *time.Duration { return &c.GatewayTTL })},
		{"resolve_interval", "how often to finish two-phase commits of gateways that died", dur(func(c *config) *time.Duration { return &c.ResolveInterval })},
		{"max_client_conns", "most clients connected at once; one more gets 53300 (0: no limit)", i32(func(c *config) *int32 { return &c.MaxClientConns })},
		{"max_client_conns_per_user", "most clients of one user at once; one more gets 53300 (0: no limit)", i32(func(c *config) *int32 { return &c.MaxConnsPerUser })},
		{"auth", "client authentication: scram-sha-256, or trust (no password; only with a loopback listen address)", str(func(c *config) *string { return &c.Auth })},
		{"ssl", "TLS for clients: disable, allow or require (needs tls_cert and tls_key)", str(func(c *config) *string { return &c.SSL })},
		{"tls_cert", "certificate file (PEM) served to clients; reloaded on SIGHUP or when it changes", str(func(c *config) *string { return &c.TLSCert })},
		{"tls_key", "private key file (PEM) of tls_cert", str(func(c *config) *string { return &c.TLSKey })},
		{"startup_timeout", "drop a connection that has not authenticated within this time", dur(func(c *config) *time.Duration { return &c.StartupTimeout })},
		{"client_write_timeout", "end a session whose client takes nothing of its answer for this long, freeing its backends (0: never)", dur(func(c *config) *time.Duration { return &c.ClientWrite })},
		{"max_message_size", "close the connection of a client sending a longer message (bytes)", i32(func(c *config) *int32 { return &c.MaxMessageSize })},
		{"max_statement_size", "refuse a statement text longer than this with 54000 (bytes; 0: no limit; COPY data is not statement text)", i32(func(c *config) *int32 { return &c.MaxStatement })},
		{"admin_token", "bearer token every admin endpoint but /healthz and /readyz requires", str(func(c *config) *string { return &c.AdminToken })},
		{"admin_token_file", "file holding admin_token", str(func(c *config) *string { return &c.AdminTokenFile })},
		{"admin_tls_cert", "certificate file for HTTPS on the admin endpoint", str(func(c *config) *string { return &c.AdminTLSCert })},
		{"admin_tls_key", "private key file of admin_tls_cert", str(func(c *config) *string { return &c.AdminTLSKey })},
		{"etcd_ca", "CA file to verify etcd's certificate (TLS to etcd)", str(func(c *config) *string { return &c.EtcdCA })},
		{"etcd_cert", "client certificate file for etcd", str(func(c *config) *string { return &c.EtcdCert })},
		{"etcd_key", "private key file of etcd_cert", str(func(c *config) *string { return &c.EtcdKey })},
		{"etcd_username", "etcd user name (etcd authentication)", str(func(c *config) *string { return &c.EtcdUsername })},
		{"etcd_password_file", "file holding the etcd user's password", str(func(c *config) *string { return &c.EtcdPasswordFile })},
		{"pool_max_conns", "most backend connections per shard", i32(func(c *config) *int32 { return &c.Pool.MaxConns })},
		{"pool_min_idle_conns", "idle backend connections kept per shard", i32(func(c *config) *int32 { return &c.Pool.MinIdleConns })},
		{"pool_idle_timeout", "close backend connections idle this long", dur(func(c *config) *time.Duration { return &c.Pool.IdleTimeout })},
		{"pool_acquire_timeout", "wait this long for a free backend connection, then fail with 53300", dur(func(c *config) *time.Duration { return &c.Pool.AcquireTimeout })},
		{"pool_connect_timeout", "timeout for connecting to a shard", dur(func(c *config) *time.Duration { return &c.Pool.ConnectTimeout })},
	}
}

func flagName(s string) string { return strings.ReplaceAll(s, "_", "-") }
func envName(s string) string  { return "SHARDGATE_" + strings.ToUpper(s) }

// loadConfig builds the configuration from defaults, the --config file, the
// environment and the command line.
func loadConfig(args []string, getenv func(string) string) (config, error) {
	cfg := defaultConfig()
	fs := flag.NewFlagSet("shardgate", flag.ContinueOnError)
	fs.SetOutput(os.Stderr)
	configFile := fs.String("config", getenv("SHARDGATE_CONFIG"), "YAML config file (env SHARDGATE_CONFIG)")
	flagValues := map[string]*string{}
	all := settings()
	for _, s := range all {
		flagValues[s.name] = fs.String(flagName(s.name), s.value(&cfg).get(), fmt.Sprintf("%s (env %s)", s.usage, envName(s.name)))
	}
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	if fs.NArg() > 0 {
		return cfg, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	byName := map[string]setting{}
	for _, s := range all {
		byName[s.name] = s
	}
	if *configFile != "" {
		if err := applyFile(&cfg, *configFile, byName); err != nil {
			return cfg, err
		}
	}
	for _, s := range all {
		if v, ok := lookupEnv(getenv, envName(s.name)); ok {
			if err := s.value(&cfg).set(v); err != nil {
				return cfg, fmt.Errorf("%s: %w", envName(s.name), err)
			}
		}
	}
	var err error
	fs.Visit(func(f *flag.Flag) {
		s, ok := byName[strings.ReplaceAll(f.Name, "-", "_")]
		if ok && err == nil {
			if e := s.value(&cfg).set(*flagValues[s.name]); e != nil {
				err = fmt.Errorf("--%s: %w", f.Name, e)
			}
		}
	})
	if err != nil {
		return cfg, err
	}
	return cfg, cfg.validate()
}

func lookupEnv(getenv func(string) string, name string) (string, bool) {
	v := getenv(name)
	return v, v != ""
}

// applyFile reads a flat YAML file of settings; an unknown key is an error.
func applyFile(cfg *config, path string, byName map[string]setting) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("config file: %w", err)
	}
	var raw map[string]any
	if err := yaml.Unmarshal(data, &raw); err != nil {
		return fmt.Errorf("config file %s: %w", path, err)
	}
	keys := make([]string, 0, len(raw))
	for k := range raw {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		s, ok := byName[k]
		if !ok {
			return fmt.Errorf("config file %s: unknown setting %q", path, k)
		}
		var v string
		switch x := raw[k].(type) {
		case []any:
			parts := make([]string, len(x))
			for i, p := range x {
				parts[i] = fmt.Sprint(p)
			}
			v = strings.Join(parts, ",")
		case nil:
		case float64:
			// YAML numbers arrive as floats; 67108864 must not read 6.7e+07.
			v = strconv.FormatFloat(x, 'f', -1, 64)
		default:
			v = fmt.Sprint(x)
		}
		if err := s.value(cfg).set(v); err != nil {
			return fmt.Errorf("config file %s: %s: %w", path, k, err)
		}
	}
	return nil
}

func (c *config) validate() error {
	if c.Listen == "" || c.ListenAdmin == "" {
		return errors.New("listen and listen_admin must be set")
	}
	if err := topology.ValidCluster(c.Cluster); err != nil {
		return err
	}
	switch c.Auth {
	case "scram-sha-256", "trust":
	default:
		return fmt.Errorf("auth %q: want scram-sha-256 or trust", c.Auth)
	}
	switch c.SSL {
	case "disable", "allow", "require":
	default:
		return fmt.Errorf("ssl %q: want disable, allow or require", c.SSL)
	}
	if (c.TLSCert == "") != (c.TLSKey == "") || (c.AdminTLSCert == "") != (c.AdminTLSKey == "") || (c.EtcdCert == "") != (c.EtcdKey == "") {
		return errors.New("a TLS certificate needs its key and a key its certificate (tls_cert/tls_key, admin_tls_cert/admin_tls_key, etcd_cert/etcd_key)")
	}
	if c.EtcdCA != "" || c.EtcdCert != "" {
		for _, e := range c.Etcd {
			if strings.HasPrefix(e, "http://") {
				return fmt.Errorf("etcd endpoint %s is http:// but etcd_ca/etcd_cert ask for TLS: use https://", e)
			}
		}
	}
	if c.SSL == "require" && c.TLSCert == "" {
		return errors.New("ssl: require needs tls_cert and tls_key")
	}
	if c.GatewayTTL < time.Second || c.ResolveInterval <= 0 {
		return errors.New("gateway_ttl must be at least 1s and resolve_interval positive")
	}
	if c.Pool.MaxConns < 1 {
		return errors.New("pool_max_conns must be at least 1")
	}
	switch c.LogFormat {
	case "json", "console":
	default:
		return fmt.Errorf("log_format %q: want json or console", c.LogFormat)
	}
	return nil
}
