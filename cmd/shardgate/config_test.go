package main

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestConfigPrecedence(t *testing.T) {
	file := filepath.Join(t.TempDir(), "gw.yaml")
	os.WriteFile(file, []byte("listen: 127.0.0.1:1111\nlisten_admin: 127.0.0.1:2222\ncluster: fromfile\npool_max_conns: 7\netcd: [a:1, b:2]\nshutdown_timeout: 3s\n"), 0o644)
	env := map[string]string{"SHARDGATE_CLUSTER": "fromenv", "SHARDGATE_LISTEN_ADMIN": "127.0.0.1:3333"}
	cfg, err := loadConfig([]string{"--config", file, "--listen-admin", "127.0.0.1:4444"}, func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Listen != "127.0.0.1:1111" || cfg.Cluster != "fromenv" || cfg.ListenAdmin != "127.0.0.1:4444" ||
		cfg.Pool.MaxConns != 7 || strings.Join(cfg.Etcd, ",") != "a:1,b:2" || cfg.ShutdownTimeout != 3*time.Second {
		t.Fatalf("got %+v", cfg)
	}
	// Defaults fill what nobody set.
	if cfg.Pool.AcquireTimeout != defaultConfig().Pool.AcquireTimeout || cfg.DataDir != "shardgate-data" {
		t.Fatalf("defaults lost: %+v", cfg)
	}
	// The config file may come from the environment too.
	env = map[string]string{"SHARDGATE_CONFIG": file}
	if cfg, err := loadConfig(nil, func(k string) string { return env[k] }); err != nil || cfg.Cluster != "fromfile" {
		t.Fatalf("SHARDGATE_CONFIG: %+v %v", cfg, err)
	}
}

func TestConfigErrors(t *testing.T) {
	none := func(string) string { return "" }
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(bad, []byte("listen: [unclosed\n"), 0o644)
	cases := []struct {
		args []string
		env  map[string]string
		want string
	}{
		{[]string{"--pool-max-conns", "lots"}, nil, `--pool-max-conns: "lots" is not a non-negative integer`},
		{[]string{"--shutdown-timeout", "5"}, nil, "not a duration"},
		{[]string{"--pool-max-conns", "0"}, nil, "at least 1"},
		{[]string{"--log-format", "xml"}, nil, "log_format"},
		{[]string{"extra"}, nil, `unexpected argument "extra"`},
		{[]string{"--config", "/nonexistent.yaml"}, nil, "config file"},
		{[]string{"--config", bad}, nil, bad},
		{nil, map[string]string{"SHARDGATE_POOL_IDLE_TIMEOUT": "soon"}, "SHARDGATE_POOL_IDLE_TIMEOUT"},
	}
	for _, c := range cases {
		getenv := none
		if c.env != nil {
			getenv = func(k string) string { return c.env[k] }
		}
		_, err := loadConfig(c.args, getenv)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v %v: got %v, want %q", c.args, c.env, err, c.want)
		}
	}
}

func TestSampleConfigLoads(t *testing.T) {
	cfg, err := loadConfig([]string{"--config", filepath.Join("..", "..", "deploy", "shardgate.yaml")}, func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	// The sample shows the defaults.
	if !reflect.DeepEqual(cfg, defaultConfig()) {
		t.Fatalf("the sample config is not the defaults it claims:\n%+v\n%+v", cfg, defaultConfig())
	}
}
