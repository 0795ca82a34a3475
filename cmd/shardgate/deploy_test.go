package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/shardgate/shardgate/vschema"
)

// The deploy files (deploy/) are checked here by parsing them: Docker is not
// needed. Every shardgate setting they pass, as a flag, an environment
// variable or a key of a config file, goes through loadConfig, so a setting
// that was renamed or never existed fails the test.

// deployPath returns a path under the repository's deploy/.
func deployPath(rel string) string { return repoPath(filepath.Join("deploy", rel)) }

// gatewaySettings feeds a deploy file's settings for a gateway to
// loadConfig: args (flags), env (only the SHARDGATE_ variables count) and,
// when configYAML is not nil, a --config file with that content (args must
// not name one then). Every SHARDGATE_ variable must be one the gateway
// reads; loadConfig alone would ignore an unknown one.
func gatewaySettings(t *testing.T, where string, args []string, env map[string]string, configYAML []byte) config {
	t.Helper()
	known := map[string]bool{"SHARDGATE_CONFIG": true}
	for _, s := range settings() {
		known[envName(s.name)] = true
	}
	for k := range env {
		if strings.HasPrefix(k, "SHARDGATE_") && !known[k] {
			t.Errorf("%s: environment variable %s is no shardgate setting", where, k)
		}
	}
	if configYAML != nil {
		file := filepath.Join(t.TempDir(), "shardgate.yaml")
		if err := os.WriteFile(file, configYAML, 0o644); err != nil {
			t.Fatal(err)
		}
		args = append([]string{"--config", file}, args...)
	}
	cfg, err := loadConfig(args, func(k string) string { return env[k] })
	if err != nil {
		t.Fatalf("%s: shardgate does not accept its settings: %v", where, err)
	}
	// loadSecurity refuses an admin address off loopback without a token;
	// it reads the token file, which exists only where the gateway runs.
	if !isLoopback(cfg.ListenAdmin) && cfg.AdminToken == "" && cfg.AdminTokenFile == "" {
		t.Errorf("%s: listen_admin %s is off loopback but no admin_token or admin_token_file is set: the gateway would refuse to start", where, cfg.ListenAdmin)
	}
	return cfg
}

func port(t *testing.T, addr string) string {
	t.Helper()
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("address %q: %v", addr, err)
	}
	return p
}

// --- docker compose ---

// composeFile is the part of a compose file the tests read.
type composeFile struct {
	Services map[string]composeService `json:"services"`
	Volumes  map[string]any            `json:"volumes"`
}

type composeService struct {
	Image           string         `json:"image"`
	Build           map[string]any `json:"build"`
	Entrypoint      words          `json:"entrypoint"`
	Command         words          `json:"command"`
	Environment     envVars        `json:"environment"`
	Volumes         []string       `json:"volumes"`
	StopGracePeriod string         `json:"stop_grace_period"`
}

// words is a compose command: a list, or a string split at blanks.
type words []string

func (w *words) UnmarshalJSON(b []byte) error {
	var s string
	if json.Unmarshal(b, &s) == nil {
		*w = strings.Fields(s)
		return nil
	}
	return json.Unmarshal(b, (*[]string)(w))
}

// envVars is a compose environment: a map, or a list of NAME=value.
type envVars map[string]string

func (e *envVars) UnmarshalJSON(b []byte) error {
	*e = envVars{}
	var list []string
	if json.Unmarshal(b, &list) == nil {
		for _, kv := range list {
			k, v, _ := strings.Cut(kv, "=")
			(*e)[k] = v
		}
		return nil
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		return err
	}
	for k, v := range m {
		if v != nil {
			(*e)[k] = fmt.Sprint(v)
		}
	}
	return nil
}

var composeVar = regexp.MustCompile(`\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(:?-([^}]*))?\}`)

// interpolate does what compose does to a value with the variables unset:
// ${VAR:-default} becomes default, $$ a literal $.
func interpolate(s string) string {
	return composeVar.ReplaceAllStringFunc(s, func(m string) string {
		if m == "$$" {
			return "$"
		}
		return composeVar.FindStringSubmatch(m)[3]
	})
}

func (s composeService) command() []string {
	var out []string
	for _, w := range append(slices.Clone(s.Entrypoint), s.Command...) {
		out = append(out, interpolate(w))
	}
	return out
}

func (s composeService) env() map[string]string {
	out := map[string]string{}
	for k, v := range s.Environment {
		out[k] = interpolate(v)
	}
	return out
}

// mount finds what s mounts at or above the path p: a named volume or a
// host path (relative to deploy/), and the rest of p below the mount.
func (s composeService) mount(p string) (source, rest string, ok bool) {
	for _, v := range s.Volumes {
		parts := strings.Split(v, ":")
		if len(parts) < 2 {
			continue
		}
		src, dst := parts[0], parts[1]
		if p == dst {
			return src, "", true
		}
		if strings.HasPrefix(p, dst+"/") {
			return src, strings.TrimPrefix(p, dst+"/"), true
		}
	}
	return "", "", false
}

func loadCompose(t *testing.T) composeFile {
	t.Helper()
	data, err := os.ReadFile(deployPath("docker-compose.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var f composeFile
	if err := yaml.Unmarshal(data, &f); err != nil {
		t.Fatalf("docker-compose.yaml: %v", err)
	}
	return f
}

// TestDeployCompose checks deploy/docker-compose.yaml: the services it must
// have, the gateways' settings, the shardctl commands of the init service,
// the files it mounts, and that haproxy and Prometheus reach the gateways
// where they listen.
func TestDeployCompose(t *testing.T) {
	f := loadCompose(t)
	svc := func(name string) composeService {
		t.Helper()
		s, ok := f.Services[name]
		if !ok {
			t.Fatalf("docker-compose.yaml has no service %s", name)
		}
		return s
	}
	images := map[string]string{
		"etcd1": "etcd", "etcd2": "etcd", "etcd3": "etcd",
		"shard0": "postgres:15", "shard1": "postgres:15",
		"init": "shardgate", "gateway1": "shardgate", "gateway2": "shardgate",
		"lb": "haproxy", "prometheus": "prom/prometheus", "grafana": "grafana/grafana",
	}
	for name, image := range images {
		if got := svc(name).Image; !strings.Contains(got, image) {
			t.Errorf("service %s runs image %q, want %s", name, got, image)
		}
	}

	// Every file a service mounts from the repository exists.
	for name, s := range f.Services {
		for _, v := range s.Volumes {
			src, _, _ := strings.Cut(v, ":")
			if strings.HasPrefix(src, ".") {
				if _, err := os.Stat(deployPath(src)); err != nil {
					t.Errorf("service %s mounts %s: %v", name, src, err)
				}
			} else if _, ok := f.Volumes[src]; !ok {
				t.Errorf("service %s mounts volume %s, which is not declared", name, src)
			}
		}
		if s.Build != nil {
			df, _ := s.Build["dockerfile"].(string)
			ctx, _ := s.Build["context"].(string)
			if _, err := os.Stat(filepath.Join(deployPath(ctx), df)); err != nil {
				t.Errorf("service %s builds %s in %s: %v", name, df, ctx, err)
			}
		}
	}

	// Three etcd members that know each other.
	var etcdServices []string
	for _, name := range []string{"etcd1", "etcd2", "etcd3"} {
		members := svc(name).env()["ETCD_INITIAL_CLUSTER"]
		for _, other := range []string{"etcd1", "etcd2", "etcd3"} {
			if !strings.Contains(members, other+"=http://"+other+":2380") {
				t.Errorf("%s: ETCD_INITIAL_CLUSTER %q lacks %s", name, members, other)
			}
		}
		if svc(name).env()["ETCD_NAME"] != name {
			t.Errorf("%s: ETCD_NAME is %q", name, svc(name).env()["ETCD_NAME"])
		}
		etcdServices = append(etcdServices, name)
	}

	// Shards allow two-phase commit.
	for _, name := range []string{"shard0", "shard1"} {
		cmd := svc(name).command()
		n := -1
		for i, w := range cmd {
			if v, ok := strings.CutPrefix(w, "max_prepared_transactions="); ok && i > 0 && cmd[i-1] == "-c" {
				n, _ = strconv.Atoi(v)
			}
		}
		if n <= 0 {
			t.Errorf("%s: command %q does not set max_prepared_transactions above 0", name, cmd)
		}
	}

	// The gateways: settings shardgate accepts, an external etcd made of
	// the etcd services, and time to drain on stop.
	gateways := map[string]config{}
	for _, name := range []string{"gateway1", "gateway2"} {
		s := svc(name)
		cfg := gatewaySettings(t, name, s.command(), s.env(), nil)
		gateways[name] = cfg
		if len(cfg.Etcd) != len(etcdServices) {
			t.Errorf("%s: etcd endpoints %v, want the %d etcd services", name, cfg.Etcd, len(etcdServices))
		}
		for _, ep := range cfg.Etcd {
			host, _, err := net.SplitHostPort(strings.TrimPrefix(ep, "http://"))
			if err != nil || !slices.Contains(etcdServices, host) {
				t.Errorf("%s: etcd endpoint %s is none of the etcd services", name, ep)
			}
		}
		grace, err := time.ParseDuration(s.StopGracePeriod)
		if err != nil || grace <= cfg.ShutdownTimeout {
			t.Errorf("%s: stop_grace_period %q must be longer than shutdown_timeout %s, or Docker kills a draining gateway", name, s.StopGracePeriod, cfg.ShutdownTimeout)
		}
		if cfg.AdminTokenFile != "" {
			if _, _, ok := s.mount(cfg.AdminTokenFile); !ok {
				t.Errorf("%s: admin_token_file %s is on no mounted volume", name, cfg.AdminTokenFile)
			}
		}
	}
	gw := gateways["gateway1"]

	// The init service names real shardctl commands and flags, and sets only
	// environment variables shardctl reads.
	initSvc := svc("init")
	script := strings.Join(initSvc.command(), "\n")
	calls := shardctlCalls(script)
	if len(calls) == 0 {
		t.Fatal("the init service runs no shardctl command")
	}
	for _, call := range calls {
		checkShardctlCall(t, call)
	}
	var did []string
	for _, call := range calls {
		did = append(did, strings.Join(shardctlPath(call), " "))
	}
	for _, want := range []string{"shard add", "keyspace create", "vschema apply", "user add"} {
		if !slices.Contains(did, want) {
			t.Errorf("the init service never runs shardctl %s (it runs %q)", want, did)
		}
	}
	shardctlEnv := shardctlEnvVars(t)
	for k := range initSvc.env() {
		if strings.HasPrefix(k, "SHARDGATE_") && !shardctlEnv[k] {
			t.Errorf("init: shardctl reads no environment variable %s", k)
		}
	}
	// The vschema it applies is valid.
	for _, call := range calls {
		if p := shardctlPath(call); strings.Join(p, " ") == "vschema apply" {
			file := call[len(p)]
			src, rest, ok := initSvc.mount(file)
			if !ok || rest != "" {
				t.Errorf("init: vschema apply %s: the file is not mounted", file)
				continue
			}
			data, err := os.ReadFile(deployPath(src))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := vschema.Parse(data); err != nil {
				t.Errorf("init: vschema %s: %v", src, err)
			}
		}
	}
	// The admin token the init service writes is the file the gateways read.
	if gw.AdminTokenFile != "" {
		vol, rest, _ := svc("gateway1").mount(gw.AdminTokenFile)
		dir := path.Dir(gw.AdminTokenFile)
		if !strings.Contains(script, dir) || !strings.Contains(script, path.Base(gw.AdminTokenFile)) {
			t.Errorf("init: the script does not write the admin token %s", gw.AdminTokenFile)
		}
		if v, r, ok := initSvc.mount(gw.AdminTokenFile); !ok || v != vol || r != rest {
			t.Errorf("init: %s is not on the gateways' volume %s", gw.AdminTokenFile, vol)
		}
	}

	t.Run("haproxy", func(t *testing.T) { checkHAProxy(t, svc("lb"), gateways) })
	t.Run("prometheus", func(t *testing.T) { checkPrometheus(t, svc("prometheus"), svc("gateway1"), gateways) })
	t.Run("grafana", func(t *testing.T) { checkGrafana(t, svc("grafana")) })
}

// checkHAProxy: the load balancer's servers are the gateways' Postgres ports,
// and it checks their readiness on the admin port.
func checkHAProxy(t *testing.T, lb composeService, gateways map[string]config) {
	src, _, ok := lb.mount("/usr/local/etc/haproxy/haproxy.cfg")
	if !ok {
		t.Fatal("lb: no haproxy.cfg mounted at /usr/local/etc/haproxy/haproxy.cfg")
	}
	data, err := os.ReadFile(deployPath(src))
	if err != nil {
		t.Fatal(err)
	}
	servers := map[string]bool{}
	var checkPort, checkURI string
	var tcpFrontend bool
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || strings.HasPrefix(f[0], "#") {
			continue
		}
		switch {
		case f[0] == "mode" && len(f) > 1 && f[1] == "tcp":
			tcpFrontend = true
		case f[0] == "server" && len(f) >= 3:
			host, p, err := net.SplitHostPort(f[2])
			cfg, ok := gateways[host]
			if err != nil || !ok || p != port(t, cfg.Listen) {
				t.Errorf("haproxy: server %s is no gateway's Postgres address", f[2])
			}
			servers[host] = true
		case f[0] == "http-check" && len(f) >= 5 && f[1] == "send":
			for i := 2; i+1 < len(f); i++ {
				if f[i] == "uri" {
					checkURI = f[i+1]
				}
			}
		}
		if i := slices.Index(f, "port"); i >= 0 && i+1 < len(f) && (f[0] == "server" || f[0] == "default-server") {
			checkPort = f[i+1]
		}
	}
	if !tcpFrontend {
		t.Error("haproxy: no mode tcp")
	}
	for name, cfg := range gateways {
		if !servers[name] {
			t.Errorf("haproxy: no server for %s", name)
		}
		if checkPort != port(t, cfg.ListenAdmin) {
			t.Errorf("haproxy: health checks go to port %q, not %s's admin port %s", checkPort, name, port(t, cfg.ListenAdmin))
		}
	}
	if checkURI != "/readyz" {
		t.Errorf("haproxy: health check uri %q, want /readyz", checkURI)
	}
}

// prometheusConfig is the part of prometheus.yml the tests read.
type prometheusConfig struct {
	ScrapeConfigs []struct {
		JobName       string `json:"job_name"`
		MetricsPath   string `json:"metrics_path"`
		Authorization *struct {
			Type            string `json:"type"`
			CredentialsFile string `json:"credentials_file"`
		} `json:"authorization"`
		StaticConfigs []struct {
			Targets []string `json:"targets"`
		} `json:"static_configs"`
	} `json:"scrape_configs"`
}

// checkPrometheus: Prometheus scrapes every gateway's admin port with the
// admin token the gateways read.
func checkPrometheus(t *testing.T, prom, gatewaySvc composeService, gateways map[string]config) {
	src, _, ok := prom.mount("/etc/prometheus/prometheus.yml")
	if !ok {
		t.Fatal("prometheus: no prometheus.yml mounted at /etc/prometheus/prometheus.yml")
	}
	data, err := os.ReadFile(deployPath(src))
	if err != nil {
		t.Fatal(err)
	}
	var pc prometheusConfig
	if err := yaml.Unmarshal(data, &pc); err != nil {
		t.Fatalf("%s: %v", src, err)
	}
	scraped := map[string]bool{}
	for _, sc := range pc.ScrapeConfigs {
		for _, st := range sc.StaticConfigs {
			for _, target := range st.Targets {
				host, p, err := net.SplitHostPort(target)
				cfg, ok := gateways[host]
				if err != nil || !ok {
					continue
				}
				scraped[host] = true
				if p != port(t, cfg.ListenAdmin) {
					t.Errorf("prometheus: target %s is not %s's admin port %s", target, host, port(t, cfg.ListenAdmin))
				}
				if sc.MetricsPath != "" && sc.MetricsPath != "/metrics" {
					t.Errorf("prometheus: job %s scrapes %s, not /metrics", sc.JobName, sc.MetricsPath)
				}
				if sc.Authorization == nil || sc.Authorization.CredentialsFile == "" {
					t.Errorf("prometheus: job %s sends no admin token, and /metrics needs it", sc.JobName)
					continue
				}
				if typ := sc.Authorization.Type; typ != "" && typ != "Bearer" {
					t.Errorf("prometheus: job %s authorization type %s, want Bearer", sc.JobName, typ)
				}
				// The token file is the gateways' admin_token_file, on the
				// same volume.
				pv, pr, ok1 := prom.mount(sc.Authorization.CredentialsFile)
				gv, gr, ok2 := gatewaySvc.mount(cfg.AdminTokenFile)
				if !ok1 || !ok2 || pv != gv || pr != gr {
					t.Errorf("prometheus: credentials_file %s is not the gateways' admin_token_file %s", sc.Authorization.CredentialsFile, cfg.AdminTokenFile)
				}
			}
		}
	}
	for name := range gateways {
		if !scraped[name] {
			t.Errorf("prometheus: %s is not scraped", name)
		}
	}
}

// checkGrafana: the provisioning files parse, the dashboard provider reads
// the folder the dashboard is mounted in, and the data source is Prometheus.
func checkGrafana(t *testing.T, g composeService) {
	var dashboardDir string
	for _, v := range g.Volumes {
		parts := strings.Split(v, ":")
		if strings.HasSuffix(parts[0], "shardgate-dashboard.json") {
			dashboardDir = path.Dir(parts[1])
		}
	}
	if dashboardDir == "" {
		t.Fatal("grafana: the dashboard is not mounted")
	}
	src, _, ok := g.mount("/etc/grafana/provisioning")
	if !ok {
		t.Fatal("grafana: no provisioning folder mounted at /etc/grafana/provisioning")
	}
	var providers struct {
		Providers []struct {
			Options struct {
				Path string `json:"path"`
			} `json:"options"`
		} `json:"providers"`
	}
	readYAML(t, filepath.Join(deployPath(src), "dashboards", "shardgate.yaml"), &providers)
	if len(providers.Providers) == 0 || providers.Providers[0].Options.Path != dashboardDir {
		t.Errorf("grafana: the dashboard provider does not read %s: %+v", dashboardDir, providers)
	}
	var sources struct {
		Datasources []struct {
			Type string `json:"type"`
			URL  string `json:"url"`
		} `json:"datasources"`
	}
	readYAML(t, filepath.Join(deployPath(src), "datasources", "prometheus.yaml"), &sources)
	if len(sources.Datasources) == 0 || sources.Datasources[0].Type != "prometheus" || !strings.Contains(sources.Datasources[0].URL, "prometheus:9090") {
		t.Errorf("grafana: data source %+v is not the compose Prometheus", sources)
	}
}

func readYAML(t *testing.T, file string, v any) {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(data, v); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
}

// --- shardctl ---

var shellWord = regexp.MustCompile(`'[^']*'|"(?:[^"\\]|\\.)*"|[^\s'"|;&<>()]+|[|;&<>()]+`)

// shardctlCalls finds the shardctl command lines of a shell script: the
// words after "shardctl" up to the end of the line or a shell operator,
// quotes removed.
func shardctlCalls(script string) [][]string {
	var calls [][]string
	for _, line := range strings.Split(script, "\n") {
		words := shellWord.FindAllString(line, -1)
		for i, w := range words {
			if w != "shardctl" && !strings.HasSuffix(w, "/shardctl") {
				continue
			}
			var call []string
			for _, a := range words[i+1:] {
				if strings.ContainsAny(a[:1], "|;&<>()") {
					break
				}
				if len(a) >= 2 && (a[0] == '\'' || a[0] == '"') {
					a = a[1 : len(a)-1]
				}
				call = append(call, a)
			}
			calls = append(calls, call)
		}
	}
	return calls
}

// shardctlPath returns the command words of a shardctl call: those before
// the first flag, without the positional arguments' (a call's path is at
// most two words: "vschema apply").
func shardctlPath(call []string) []string {
	var p []string
	for _, w := range call {
		if strings.HasPrefix(w, "-") || len(p) == 2 {
			break
		}
		p = append(p, w)
	}
	return p
}

// shardctlHelp runs the built shardctl with --help after args.
func shardctlHelp(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command(filepath.Join(binDir, "shardctl"), slices.Concat(args, []string{"--help"})...).CombinedOutput()
	if err != nil {
		t.Fatalf("shardctl %s --help: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// helpCommands lists the "Available Commands" of a cobra help text.
func helpCommands(help string) []string {
	var names []string
	in := false
	sc := bufio.NewScanner(strings.NewReader(help))
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "Available Commands:"):
			in = true
		case in && strings.HasPrefix(line, "  "):
			names = append(names, strings.Fields(line)[0])
		case in:
			in = false
		}
	}
	return names
}

// checkShardctlCall checks that call's command exists in the built shardctl
// (by its help), and that every flag it passes is one that command has.
func checkShardctlCall(t *testing.T, call []string) {
	t.Helper()
	p := shardctlPath(call)
	if len(p) == 0 {
		t.Errorf("shardctl %q names no command", call)
		return
	}
	for i := range p {
		parent := shardctlHelp(t, p[:i]...)
		if !slices.Contains(helpCommands(parent), p[i]) {
			t.Errorf("shardctl %s: %q is no command of shardctl %s", strings.Join(call, " "), p[i], strings.Join(p[:i], " "))
			return
		}
	}
	if len(p) < 2 {
		t.Errorf("shardctl %s: a group, not a command", strings.Join(call, " "))
		return
	}
	help := shardctlHelp(t, p...)
	for _, w := range call[len(p):] {
		if !strings.HasPrefix(w, "--") {
			continue
		}
		name, _, _ := strings.Cut(w, "=")
		if !regexp.MustCompile(`(?m)^\s+(-\w, )?` + regexp.QuoteMeta(name) + `(\s|$)`).MatchString(help) {
			t.Errorf("shardctl %s: no flag %s", strings.Join(p, " "), name)
		}
	}
}

// shardctlEnvVars returns the environment variables shardctl's help names.
func shardctlEnvVars(t *testing.T) map[string]bool {
	vars := map[string]bool{}
	for _, m := range regexp.MustCompile(`env (SHARDGATE_[A-Z_]+)`).FindAllStringSubmatch(shardctlHelp(t), -1) {
		vars[m[1]] = true
	}
	if len(vars) == 0 {
		t.Fatal("shardctl --help names no environment variables")
	}
	return vars
}

// --- Kubernetes ---

// k8sObject is the part of a Kubernetes object the tests read.
type k8sObject struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name   string            `json:"name"`
		Labels map[string]string `json:"labels"`
	} `json:"metadata"`
	Data map[string]string `json:"data"`
	Spec json.RawMessage   `json:"spec"`
	// Kustomization
	Resources []string `json:"resources"`
}

type k8sProbe struct {
	HTTPGet *struct {
		Path string `json:"path"`
		Port any    `json:"port"`
	} `json:"httpGet"`
}

type k8sPort struct {
	Name          string `json:"name"`
	ContainerPort int    `json:"containerPort"`
}

type k8sContainer struct {
	Name    string   `json:"name"`
	Image   string   `json:"image"`
	Command []string `json:"command"`
	Args    []string `json:"args"`
	Env     []struct {
		Name      string `json:"name"`
		Value     string `json:"value"`
		ValueFrom any    `json:"valueFrom"`
	} `json:"env"`
	Ports          []k8sPort `json:"ports"`
	ReadinessProbe *k8sProbe `json:"readinessProbe"`
	LivenessProbe  *k8sProbe `json:"livenessProbe"`
	Lifecycle      *struct {
		PreStop *struct {
			Exec *struct {
				Command []string `json:"command"`
			} `json:"exec"`
		} `json:"preStop"`
	} `json:"lifecycle"`
	Resources struct {
		Requests map[string]string `json:"requests"`
	} `json:"resources"`
	VolumeMounts []struct {
		Name      string `json:"name"`
		MountPath string `json:"mountPath"`
		SubPath   string `json:"subPath"`
	} `json:"volumeMounts"`
}

type k8sDeploymentSpec struct {
	Replicas *int `json:"replicas"`
	Selector struct {
		MatchLabels map[string]string `json:"matchLabels"`
	} `json:"selector"`
	Template struct {
		Metadata struct {
			Labels map[string]string `json:"labels"`
		} `json:"metadata"`
		Spec struct {
			TerminationGracePeriodSeconds *int           `json:"terminationGracePeriodSeconds"`
			EnableServiceLinks            *bool          `json:"enableServiceLinks"`
			Containers                    []k8sContainer `json:"containers"`
			Volumes                       []struct {
				Name      string `json:"name"`
				ConfigMap *struct {
					Name string `json:"name"`
				} `json:"configMap"`
				Secret *struct {
					SecretName string `json:"secretName"`
				} `json:"secret"`
			} `json:"volumes"`
		} `json:"spec"`
	} `json:"template"`
}

type k8sServiceSpec struct {
	Selector map[string]string `json:"selector"`
	Ports    []struct {
		Name       string `json:"name"`
		Port       int    `json:"port"`
		TargetPort any    `json:"targetPort"`
	} `json:"ports"`
}

var yamlDocSeparator = regexp.MustCompile(`(?m)^---[ \t]*$`)

// loadK8s parses every YAML file in deploy/k8s, each possibly of several
// documents.
func loadK8s(t *testing.T) []k8sObject {
	t.Helper()
	files, err := filepath.Glob(deployPath("k8s/*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no manifests in deploy/k8s: %v", err)
	}
	var objs []k8sObject
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		for i, doc := range yamlDocSeparator.Split(string(data), -1) {
			var probe map[string]any
			if err := yaml.Unmarshal([]byte(doc), &probe); err != nil {
				t.Fatalf("%s, document %d: %v", file, i+1, err)
			}
			if len(probe) == 0 {
				continue // only comments
			}
			var o k8sObject
			if err := yaml.Unmarshal([]byte(doc), &o); err != nil {
				t.Fatalf("%s, document %d: %v", file, i+1, err)
			}
			if o.APIVersion == "" || o.Kind == "" || o.Metadata.Name == "" {
				t.Errorf("%s, document %d: apiVersion %q, kind %q, metadata.name %q: all three are needed", file, i+1, o.APIVersion, o.Kind, o.Metadata.Name)
			}
			objs = append(objs, o)
		}
	}
	return objs
}

func subset(sel, labels map[string]string) bool {
	if len(sel) == 0 {
		return false
	}
	for k, v := range sel {
		if labels[k] != v {
			return false
		}
	}
	return true
}

// TestDeployKubernetes checks deploy/k8s: every document is an object, the
// gateway's settings (the ConfigMap's shardgate.yaml, args and env) are ones
// shardgate accepts, and probes, ports, selectors, secrets and the drain
// time fit together.
func TestDeployKubernetes(t *testing.T) {
	objs := loadK8s(t)
	byKind := map[string][]k8sObject{}
	for _, o := range objs {
		byKind[o.Kind] = append(byKind[o.Kind], o)
	}
	for _, kind := range []string{"ConfigMap", "Deployment", "Service", "PodDisruptionBudget", "ServiceMonitor"} {
		if len(byKind[kind]) == 0 {
			t.Errorf("deploy/k8s has no %s", kind)
		}
	}
	for _, k := range byKind["Kustomization"] {
		for _, r := range k.Resources {
			if _, err := os.Stat(deployPath(filepath.Join("k8s", r))); err != nil {
				t.Errorf("kustomization: resource %s: %v", r, err)
			}
		}
	}
	if len(byKind["Deployment"]) != 1 {
		t.Fatalf("want one Deployment, have %d", len(byKind["Deployment"]))
	}
	var dep k8sDeploymentSpec
	if err := json.Unmarshal(byKind["Deployment"][0].Spec, &dep); err != nil {
		t.Fatal(err)
	}
	pod := dep.Template.Spec
	podLabels := dep.Template.Metadata.Labels
	if !subset(dep.Selector.MatchLabels, podLabels) {
		t.Errorf("Deployment: selector %v does not match its pods' labels %v", dep.Selector.MatchLabels, podLabels)
	}
	if dep.Replicas == nil || *dep.Replicas < 2 {
		t.Error("Deployment: run at least 2 replicas")
	}
	i := slices.IndexFunc(pod.Containers, func(c k8sContainer) bool { return c.Name == "shardgate" })
	if i < 0 {
		t.Fatal("Deployment: no container named shardgate")
	}
	c := pod.Containers[i]
	if len(c.Command) > 0 {
		t.Errorf("Deployment: the container overrides the image's entrypoint with %q; give shardgate's flags as args", c.Command)
	}

	// The config file: the ConfigMap key that --config names through the
	// volume mounted there.
	args := slices.Clone(c.Args)
	var configYAML []byte
	for j := 0; j < len(args); j++ {
		file, ok := strings.CutPrefix(args[j], "--config=")
		if !ok && args[j] == "--config" && j+1 < len(args) {
			file = args[j+1]
			args = slices.Delete(args, j+1, j+2)
			ok = true
		}
		if !ok {
			continue
		}
		args = slices.Delete(args, j, j+1)
		j--
		for _, m := range c.VolumeMounts {
			if path.Dir(file) != m.MountPath {
				continue
			}
			for _, v := range pod.Volumes {
				if v.Name != m.Name || v.ConfigMap == nil {
					continue
				}
				for _, cm := range byKind["ConfigMap"] {
					if cm.Metadata.Name == v.ConfigMap.Name {
						if data, ok := cm.Data[path.Base(file)]; ok {
							configYAML = []byte(data)
						}
					}
				}
			}
		}
		if configYAML == nil {
			t.Fatalf("Deployment: --config %s is no key of a ConfigMap mounted there", file)
		}
	}
	env := map[string]string{}
	for _, e := range c.Env {
		if e.ValueFrom != nil && strings.HasPrefix(e.Name, "SHARDGATE_") {
			// The value is not in the manifest; check the name only.
			gatewaySettings(t, "Deployment env", nil, map[string]string{e.Name: ""}, nil)
			continue
		}
		env[e.Name] = e.Value
	}
	cfg := gatewaySettings(t, "Deployment", args, env, configYAML)

	ports := map[string]int{}
	for _, p := range c.Ports {
		ports[p.Name] = p.ContainerPort
	}
	portOf := func(v any) string {
		switch v := v.(type) {
		case string:
			if n, ok := ports[v]; ok {
				return strconv.Itoa(n)
			}
			return v
		case float64:
			return strconv.Itoa(int(v))
		}
		return fmt.Sprint(v)
	}
	adminPort, pgPort := port(t, cfg.ListenAdmin), port(t, cfg.Listen)
	if !slices.ContainsFunc(c.Ports, func(p k8sPort) bool { return strconv.Itoa(p.ContainerPort) == pgPort }) {
		t.Errorf("Deployment: no container port %s (listen)", pgPort)
	}
	for _, pr := range []struct {
		what  string
		probe *k8sProbe
		path  string
	}{{"readinessProbe", c.ReadinessProbe, "/readyz"}, {"livenessProbe", c.LivenessProbe, "/healthz"}} {
		if pr.probe == nil || pr.probe.HTTPGet == nil {
			t.Errorf("Deployment: no HTTP %s", pr.what)
			continue
		}
		if pr.probe.HTTPGet.Path != pr.path || portOf(pr.probe.HTTPGet.Port) != adminPort {
			t.Errorf("Deployment: %s gets %s on port %v, want %s on the admin port %s", pr.what, pr.probe.HTTPGet.Path, pr.probe.HTTPGet.Port, pr.path, adminPort)
		}
	}
	// Draining needs shutdown_timeout after the preStop pause.
	need := cfg.ShutdownTimeout
	if c.Lifecycle != nil && c.Lifecycle.PreStop != nil && c.Lifecycle.PreStop.Exec != nil {
		if cmd := c.Lifecycle.PreStop.Exec.Command; len(cmd) == 2 && cmd[0] == "sleep" {
			n, _ := strconv.Atoi(cmd[1])
			need += time.Duration(n) * time.Second
		}
	}
	if g := pod.TerminationGracePeriodSeconds; g == nil || time.Duration(*g)*time.Second <= need {
		grace := "unset"
		if g != nil {
			grace = strconv.Itoa(*g)
		}
		t.Errorf("Deployment: terminationGracePeriodSeconds %s must exceed shutdown_timeout plus the preStop pause (%s), or the kubelet kills a draining gateway", grace, need)
	}
	if c.Resources.Requests["cpu"] == "" || c.Resources.Requests["memory"] == "" {
		t.Errorf("Deployment: resource requests %v lack cpu or memory", c.Resources.Requests)
	}
	// Every file the configuration names is in a mounted Secret.
	secretVolumes := map[string]string{}
	for _, v := range pod.Volumes {
		if v.Secret != nil {
			secretVolumes[v.Name] = v.Secret.SecretName
		}
	}
	secretOf := func(file string) string {
		for _, m := range c.VolumeMounts {
			if path.Dir(file) == m.MountPath {
				return secretVolumes[m.Name]
			}
		}
		return ""
	}
	for key, file := range map[string]string{"admin_token_file": cfg.AdminTokenFile, "etcd_password_file": cfg.EtcdPasswordFile,
		"etcd_ca": cfg.EtcdCA, "etcd_cert": cfg.EtcdCert, "etcd_key": cfg.EtcdKey, "tls_cert": cfg.TLSCert, "tls_key": cfg.TLSKey,
		"admin_tls_cert": cfg.AdminTLSCert, "admin_tls_key": cfg.AdminTLSKey} {
		if file != "" && secretOf(file) == "" {
			t.Errorf("Deployment: %s %s is in no mounted Secret", key, file)
		}
	}
	if cfg.AdminTokenFile == "" {
		t.Error("Deployment: no admin_token_file: the admin token should come from a Secret")
	}

	// Services and the disruption budget select the gateways' pods, and
	// there is one Service for Postgres clients and one for the admin port.
	var pgService, adminService *k8sObject
	for j, s := range byKind["Service"] {
		var spec k8sServiceSpec
		if err := json.Unmarshal(s.Spec, &spec); err != nil {
			t.Fatal(err)
		}
		if !subset(spec.Selector, podLabels) {
			t.Errorf("Service %s: selector %v does not match the gateways' pods %v", s.Metadata.Name, spec.Selector, podLabels)
		}
		for _, p := range spec.Ports {
			switch portOf(p.TargetPort) {
			case pgPort:
				pgService = &byKind["Service"][j]
			case adminPort:
				adminService = &byKind["Service"][j]
			default:
				t.Errorf("Service %s: port %s goes to %v, no port of the gateway", s.Metadata.Name, p.Name, p.TargetPort)
			}
		}
	}
	for _, s := range byKind["Service"] {
		// Kubernetes would set <NAME>_PORT, <NAME>_SERVICE_HOST, ... in the
		// gateway's environment, SHARDGATE_* for these names.
		prefix := strings.ToUpper(strings.ReplaceAll(s.Metadata.Name, "-", "_"))
		if strings.HasPrefix(prefix, "SHARDGATE") && (pod.EnableServiceLinks == nil || *pod.EnableServiceLinks) {
			t.Errorf("Deployment: Service %s would put %s_PORT and the like into the environment where the gateway reads SHARDGATE_* settings: set enableServiceLinks: false", s.Metadata.Name, prefix)
		}
	}
	if pgService == nil || adminService == nil || pgService == adminService {
		t.Errorf("want a Service for port %s and another for the admin port %s", pgPort, adminPort)
	}
	for _, pdb := range byKind["PodDisruptionBudget"] {
		var spec struct {
			Selector struct {
				MatchLabels map[string]string `json:"matchLabels"`
			} `json:"selector"`
			MinAvailable   any `json:"minAvailable"`
			MaxUnavailable any `json:"maxUnavailable"`
		}
		if err := json.Unmarshal(pdb.Spec, &spec); err != nil {
			t.Fatal(err)
		}
		if !subset(spec.Selector.MatchLabels, podLabels) || (spec.MinAvailable == nil && spec.MaxUnavailable == nil) {
			t.Errorf("PodDisruptionBudget %s: selector %v, minAvailable %v, maxUnavailable %v", pdb.Metadata.Name, spec.Selector.MatchLabels, spec.MinAvailable, spec.MaxUnavailable)
		}
	}
	// The ServiceMonitor scrapes the admin Service with the token from the
	// Secret the gateways read it from.
	for _, sm := range byKind["ServiceMonitor"] {
		var spec struct {
			Selector struct {
				MatchLabels map[string]string `json:"matchLabels"`
			} `json:"selector"`
			Endpoints []struct {
				Port          string `json:"port"`
				Path          string `json:"path"`
				Authorization struct {
					Credentials struct {
						Name string `json:"name"`
						Key  string `json:"key"`
					} `json:"credentials"`
				} `json:"authorization"`
			} `json:"endpoints"`
		}
		if err := json.Unmarshal(sm.Spec, &spec); err != nil {
			t.Fatal(err)
		}
		if adminService == nil || !subset(spec.Selector.MatchLabels, adminService.Metadata.Labels) {
			t.Errorf("ServiceMonitor %s: selector %v does not pick the admin Service", sm.Metadata.Name, spec.Selector.MatchLabels)
		}
		if pgService != nil && subset(spec.Selector.MatchLabels, pgService.Metadata.Labels) {
			t.Errorf("ServiceMonitor %s: selector %v picks the Postgres Service too", sm.Metadata.Name, spec.Selector.MatchLabels)
		}
		for _, ep := range spec.Endpoints {
			cred := ep.Authorization.Credentials
			if ep.Path != "/metrics" || cred.Name == "" || cred.Name != secretOf(cfg.AdminTokenFile) || cred.Key != path.Base(cfg.AdminTokenFile) {
				t.Errorf("ServiceMonitor %s: endpoint %+v: want /metrics with the admin token (Secret %s, key %s)", sm.Metadata.Name, ep, secretOf(cfg.AdminTokenFile), path.Base(cfg.AdminTokenFile))
			}
		}
	}
}

// TestDeployDockerfile checks that the image builds both binaries with cgo
// and runs as a non-root user.
func TestDeployDockerfile(t *testing.T) {
	data, err := os.ReadFile(deployPath("Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	var user, entrypoint string
	var builds bool
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		switch f[0] {
		case "USER":
			user = f[1]
		case "ENTRYPOINT":
			entrypoint = strings.Join(f[1:], " ")
		case "ENV":
			for _, kv := range f[1:] {
				if k, v, ok := strings.Cut(kv, "="); ok && strings.HasPrefix(k, "SHARDGATE_") {
					gatewaySettings(t, "Dockerfile ENV", nil, map[string]string{k: v}, nil)
				}
			}
		}
		if strings.Contains(line, "CGO_ENABLED=1") && strings.Contains(line, "go build") {
			builds = strings.Contains(line, "./cmd/shardgate") && strings.Contains(line, "./cmd/shardctl")
		}
	}
	if !builds {
		t.Error("Dockerfile: no 'CGO_ENABLED=1 go build' of ./cmd/shardgate and ./cmd/shardctl")
	}
	if uid, _, _ := strings.Cut(user, ":"); uid == "" || uid == "0" || uid == "root" {
		t.Errorf("Dockerfile: USER %q; the gateway must not run as root", user)
	}
	if !strings.Contains(entrypoint, "shardgate") {
		t.Errorf("Dockerfile: ENTRYPOINT %s is not shardgate", entrypoint)
	}
}

// --- the Grafana dashboard ---

// promQLMetrics returns the metric names an expression reads: identifiers
// that are not functions, keywords, label names or Grafana variables.
func promQLMetrics(expr string) []string {
	var (
		grafanaVar  = regexp.MustCompile(`\$\{[^}]*\}|\$[A-Za-z_]+`)
		str         = regexp.MustCompile(`"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|` + "`[^`]*`")
		matchers    = regexp.MustCompile(`\{[^}]*\}`)
		ranges      = regexp.MustCompile(`\[[^\]]*\]`)
		labelLists  = regexp.MustCompile(`\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)`)
		ident       = regexp.MustCompile(`[A-Za-z_:][A-Za-z0-9_:]*(\s*\()?`)
		notMetric   = map[string]bool{"and": true, "or": true, "unless": true, "bool": true, "offset": true, "inf": true, "nan": true}
		durationNum = regexp.MustCompile(`\b\d+(\.\d+)?([eE][+-]?\d+)?[a-z]*\b`)
	)
	e := grafanaVar.ReplaceAllString(expr, "")
	e = str.ReplaceAllString(e, `""`)
	e = matchers.ReplaceAllString(e, "")
	e = ranges.ReplaceAllString(e, "")
	e = labelLists.ReplaceAllString(e, "")
	e = durationNum.ReplaceAllString(e, "0")
	var names []string
	for _, m := range ident.FindAllString(e, -1) {
		if strings.HasSuffix(m, "(") || notMetric[strings.ToLower(m)] {
			continue // a function call or a keyword
		}
		if !slices.Contains(names, m) {
			names = append(names, m)
		}
	}
	return names
}

func TestPromQLMetrics(t *testing.T) {
	for _, tc := range []struct {
		expr string
		want []string
	}{
		{`sum by (kind) (rate(shardgate_statements_total{instance=~"$instance"}[$__rate_interval]))`, []string{"shardgate_statements_total"}},
		{`histogram_quantile(0.99, sum by (kind, le) (rate(a_seconds_bucket{x="y"}[5m])))`, []string{"a_seconds_bucket"}},
		{`count(min by (shard) (up_x{a=~"b"}) == 0) or vector(0)`, []string{"up_x"}},
		{`a / on(instance) group_left(job) b offset 5m`, []string{"a", "b"}},
		{`rate(process_cpu_seconds_total{instance=~"${instance:regex}"}[1m]) * 100`, []string{"process_cpu_seconds_total"}},
	} {
		if got := promQLMetrics(tc.expr); !slices.Equal(got, tc.want) {
			t.Errorf("%s: got %q, want %q", tc.expr, got, tc.want)
		}
	}
}

var labelValues = regexp.MustCompile(`^\s*(label_values|query_result)\((.*)\)\s*$`)

// dashboardMetrics returns every metric name the dashboard's panels and
// template variables read.
func dashboardMetrics(t *testing.T) []string {
	t.Helper()
	data, err := os.ReadFile(deployPath("grafana/shardgate-dashboard.json"))
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		UID        string `json:"uid"`
		Title      string `json:"title"`
		Panels     []map[string]any
		Templating struct {
			List []struct {
				Type  string `json:"type"`
				Query any    `json:"query"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(data, &dash); err != nil {
		t.Fatalf("shardgate-dashboard.json: %v", err)
	}
	if dash.UID == "" || dash.Title == "" || len(dash.Panels) == 0 {
		t.Fatalf("shardgate-dashboard.json: uid %q, title %q, %d panels", dash.UID, dash.Title, len(dash.Panels))
	}
	var exprs []string
	var walk func(panels []any)
	walk = func(panels []any) {
		for _, p := range panels {
			pm, _ := p.(map[string]any)
			if targets, ok := pm["targets"].([]any); ok {
				for _, tg := range targets {
					if e, ok := tg.(map[string]any)["expr"].(string); ok && e != "" {
						exprs = append(exprs, e)
					}
				}
			} else if pm["type"] != "row" && pm["type"] != "text" {
				t.Errorf("panel %q has no queries", pm["title"])
			}
			if sub, ok := pm["panels"].([]any); ok {
				walk(sub)
			}
		}
	}
	var top []any
	for _, p := range dash.Panels {
		top = append(top, p)
	}
	walk(top)
	for _, v := range dash.Templating.List {
		if v.Type != "query" {
			continue
		}
		q, _ := v.Query.(string)
		if m, ok := v.Query.(map[string]any); ok {
			q, _ = m["query"].(string)
		}
		if m := labelValues.FindStringSubmatch(q); m != nil {
			q = m[2]
			if m[1] == "label_values" {
				if i := strings.LastIndex(q, ","); i >= 0 {
					q = q[:i]
				}
			}
		}
		exprs = append(exprs, q)
	}
	var names []string
	for _, e := range exprs {
		for _, n := range promQLMetrics(e) {
			if !slices.Contains(names, n) {
				names = append(names, n)
			}
		}
	}
	slices.Sort(names)
	return names
}

// exposition is what a /metrics page exports: the names on its sample
// lines, and the type of each family.
type exposition struct {
	samples  map[string]bool
	families map[string]string
}

func parseExposition(text string) exposition {
	x := exposition{samples: map[string]bool{}, families: map[string]string{}}
	for _, line := range strings.Split(text, "\n") {
		if f := strings.Fields(line); len(f) == 4 && f[0] == "#" && f[1] == "TYPE" {
			x.families[f[2]] = f[3]
			continue
		}
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name := line[:strings.IndexAny(line+" ", "{ ")]
		x.samples[name] = true
	}
	return x
}

// has reports whether name is exported with at least one sample; a
// histogram's _bucket, _sum and _count count as the histogram.
func (x exposition) has(name string) bool {
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		if base, ok := strings.CutSuffix(name, suffix); ok && (x.families[base] == "histogram" || x.families[base] == "summary") {
			return x.samples[base+"_count"]
		}
	}
	return x.samples[name]
}

// TestDeployDashboardMetrics runs a gateway with real shards, sends it the
// kinds of traffic the dashboard shows, and checks that every metric the
// dashboard's queries read is on the gateway's /metrics.
func TestDeployDashboardMetrics(t *testing.T) {
	names := dashboardMetrics(t)
	if len(names) == 0 {
		t.Fatal("the dashboard reads no metrics")
	}
	t.Logf("the dashboard reads %d metrics: %s", len(names), strings.Join(names, " "))

	e := newEnv(t)
	e.gw.stop()
	// With the admin token, as Prometheus scrapes (deploy/prometheus.yml).
	const token = "dashboard-test-token"
	gw := startGateway(t, e.etcd.Endpoints(), "--admin-token", token)
	c := gw.connect("app")
	mustQuery(t, c, "create table users (id bigint primary key, name text, email text, country text)") // broadcast DDL
	ks := e.loadTopology().Keyspace("app")
	a, b := int64(1), int64(2)
	for ks.ShardFor(vschema.HashInt64(b)) == ks.ShardFor(vschema.HashInt64(a)) {
		b++
	}
	mustQuery(t, c, fmt.Sprintf("insert into users (id, name) values (%d, 'a')", a))
	// A write on two shards: two-phase commit.
	mustQuery(t, c, "begin")
	mustQuery(t, c, fmt.Sprintf("insert into users (id, name) values (%d, 'b')", b))
	mustQuery(t, c, fmt.Sprintf("update users set name = 'a2' where id = %d", a))
	mustQuery(t, c, "commit")
	mustQuery(t, c, fmt.Sprintf("select name from users where id = %d", a))     // single shard
	if got := mustQuery(t, c, "select count(*) from users")[0][0]; got != "2" { // scatter
		t.Fatalf("count(*) = %s, want 2", got)
	}
	mustQuery(t, c, "select 1") // table-less
	if _, err := query(c, fmt.Sprintf("select 1 / (id - id) from users where id = %d", a)); pgCode(err) != "22012" {
		t.Fatalf("division by zero: %v", err)
	}
	if _, err := query(c, fmt.Sprintf("update users set id = 0 where id = %d", a)); err == nil { // refused
		t.Fatal("an UPDATE of the sharding column was not refused")
	}
	// Idle in a transaction while /metrics is read.
	idle := gw.connect("app")
	mustQuery(t, idle, "begin")
	mustQuery(t, idle, fmt.Sprintf("select name from users where id = %d", b))
	// A login to a keyspace that does not exist, and a client that does not
	// speak Postgres.
	if _, err := pgconnConnect(strings.Replace(gw.dsn("app"), "dbname=app", "dbname=nosuchkeyspace", 1)); err == nil {
		t.Fatal("a login to an unknown keyspace succeeded")
	}
	if conn, err := net.Dial("tcp", gw.addr); err == nil {
		conn.SetDeadline(time.Now().Add(10 * time.Second))
		conn.Write([]byte("GET / HTTP/1.1\r\nHost: shardgate\r\n\r\n"))
		io.Copy(io.Discard, conn)
		conn.Close()
	}
	// A shard error: the shard ends the gateway's connections under it.
	for i := range e.shards {
		mustQuery(t, e.backend(i), "select pg_terminate_backend(pid) from pg_stat_activity where pid <> pg_backend_pid() and backend_type = 'client backend' and datname = current_database()")
	}
	after := gw.connect("app")
	for _, id := range []int64{a, b, a, b} {
		query(after, fmt.Sprintf("select name from users where id = %d", id)) // may fail once per shard
	}

	var missing []string
	var page string
	deadline := time.Now().Add(30 * time.Second)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		page = scrapeMetrics(t, gw.admin, token)
		x := parseExposition(page)
		missing = missing[:0]
		for _, n := range names {
			if !x.has(n) {
				missing = append(missing, n)
			}
		}
		if len(missing) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the dashboard reads metrics that the gateway does not export after traffic:\n  %s\n/metrics:\n%s",
				strings.Join(missing, "\n  "), grepLines(page, "shardgate_"))
		}
		<-tick.C
	}
}

// scrapeMetrics reads a gateway's /metrics with the admin token.
func scrapeMetrics(t *testing.T, admin, token string) string {
	t.Helper()
	req, _ := http.NewRequest("GET", "http://"+admin+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	b.ReadFrom(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/metrics: %s\n%s", resp.Status, b.String())
	}
	return b.String()
}
