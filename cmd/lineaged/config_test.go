package main

import (
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lineaged/lineaged/lineage/agent"
	"github.com/lineaged/lineaged/lineage/event"
	"github.com/lineaged/lineaged/sensor/posture"
	"github.com/spf13/pflag"
)

func parse(t *testing.T, args []string, env map[string]string) (*Config, error) {
	t.Helper()
	fs := pflag.NewFlagSet("run", pflag.ContinueOnError)
	addRunFlags(fs)
	if err := fs.Parse(args); err != nil {
		t.Fatalf("parse flags: %v", err)
	}
	for k, v := range env {
		t.Setenv(k, v)
	}
	return loadConfig(fs, os.Getenv)
}

func writeFile(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "lineaged.yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestConfigDefaults(t *testing.T) {
	cfg, err := parse(t, []string{"--config", writeFile(t, "{}\n")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Scope != "agents" || cfg.Output != "-" || cfg.Format != "native" {
		t.Fatalf("defaults: scope=%q output=%q format=%q", cfg.Scope, cfg.Output, cfg.Format)
	}
	if cfg.Lineage.ExitGrace != 30*time.Second {
		t.Fatalf("exit_grace default = %v", cfg.Lineage.ExitGrace)
	}
}

// Precedence is file < environment < flags.
func TestConfigPrecedence(t *testing.T) {
	path := writeFile(t, "scope: all\nformat: ocsf\noutput: /tmp/from-file\nkafka:\n  compression: lz4\n")
	cfg, err := parse(t, []string{"--config", path, "--output", "/tmp/from-flag"},
		map[string]string{"LINEAGED_FORMAT": "native", "LINEAGED_KAFKA_COMPRESSION": "gzip"})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Scope != "all" {
		t.Errorf("scope from file: got %q", cfg.Scope)
	}
	if cfg.Format != "native" {
		t.Errorf("env must override file: format %q", cfg.Format)
	}
	if cfg.Kafka.Compression != "gzip" {
		t.Errorf("env must override nested file key: compression %q", cfg.Kafka.Compression)
	}
	if cfg.Output != "/tmp/from-flag" {
		t.Errorf("flag must override file: output %q", cfg.Output)
	}
}

func TestConfigKafkaFromEnvAndFlags(t *testing.T) {
	cfg, err := parse(t, []string{"--config", writeFile(t, "{}\n"), "--kafka-brokers", "127.0.0.1:9092,127.0.0.2:9092"},
		map[string]string{"LINEAGED_KAFKA_TOPIC": "events"})
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Kafka.Brokers) != 2 || cfg.Kafka.Brokers[1] != "127.0.0.2:9092" || cfg.Kafka.Topic != "events" {
		t.Fatalf("kafka: %+v", cfg.Kafka)
	}
}

func TestConfigHumans(t *testing.T) {
	path := writeFile(t, "humans:\n  alice:\n    name: Alice Example\n    email: alice@example.com\n")
	cfg, err := parse(t, []string{"--config", path}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if h := cfg.Humans["alice"]; h.Name != "Alice Example" || h.Email != "alice@example.com" {
		t.Fatalf("humans: %+v", cfg.Humans)
	}
}

func TestConfigErrorsNameTheProblem(t *testing.T) {
	cases := []struct {
		name string
		file string
		args []string
		want string
	}{
		{"unknown key", "scoop: all\n", nil, "scoop"},
		{"bad scope", "scope: some\n", nil, `scope: "some"`},
		{"bad format", "", []string{"--format", "xml"}, `format: "xml"`},
		{"topic missing", "", []string{"--kafka-brokers", "127.0.0.1:9092"}, "kafka.topic"},
		{"broker not host:port", "kafka:\n  topic: t\n", []string{"--kafka-brokers", "localhost"}, `"localhost" is not HOST:PORT`},
		{"bad sasl", "kafka:\n  topic: t\n  brokers: [127.0.0.1:1]\n  sasl:\n    mechanism: GSSAPI\n", nil, "kafka.sasl.mechanism"},
		{"ring not power of two", "sensor:\n  ring_buffer_bytes: 5000\n", nil, "sensor.ring_buffer_bytes"},
		{"bad duration", "lineage:\n  exit_grace: soon\n", nil, "exit_grace"},
		{"bad regexp", "redact:\n  patterns: ['(']\n", nil, "redact.patterns"},
		{"bad yaml", "scope: [\n", nil, "lineaged.yaml"},
		{"bad ancestry", "events:\n  ancestry: short\n", nil, `events.ancestry: "short"`},
		{"bad schema", "events:\n  schema: v3\n", nil, `events.schema: "v3"`},
		{"v1 with compact ancestry", "events:\n  schema: v1\n", nil, "events.ancestry: full"},
		{"bad hold value", "hashing:\n  hold_exec: [memfd, tmpfs]\n", nil, `hashing.hold_exec: "tmpfs" is not one of memfd, deleted, unseen`},
		{"zero hold timeout", "hashing:\n  hold_timeout: 0s\n", nil, "hashing.hold_timeout: 0s must be more than 0"},
		{"long hold timeout", "hashing:\n  hold_timeout: 2m\n", nil, "hashing.hold_timeout: 2m0s must be more than 0 and at most 1m0s"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			args := append([]string{"--config", writeFile(t, c.file)}, c.args...)
			_, err := parse(t, args, nil)
			if err == nil {
				t.Fatalf("want error containing %q, got none", c.want)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %q does not name %q", err, c.want)
			}
		})
	}
}

// The event shape reaches the encoder: compact lineaged/v2 by default,
// events.schema v1 with full ancestry for the previous contract, from the
// file or the environment.
func TestConfigEventShape(t *testing.T) {
	cfg, err := parse(t, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	nat := sinkConfig(cfg, nil, nil, nil).Native
	if nat.V1 || nat.Ancestry != event.AncestryCompact || nat.Schema() != event.Schema {
		t.Errorf("default encoder %+v writes %s, want compact %s", nat, nat.Schema(), event.Schema)
	}
	cfg, err = parse(t, []string{"--config", writeFile(t, "events:\n  ancestry: full\n")},
		map[string]string{"LINEAGED_EVENTS_SCHEMA": "v1"})
	if err != nil {
		t.Fatal(err)
	}
	nat = sinkConfig(cfg, nil, nil, nil).Native
	if !nat.V1 || nat.Ancestry != event.AncestryFull || nat.Schema() != event.SchemaV1 {
		t.Errorf("v1 encoder %+v writes %s, want full %s", nat, nat.Schema(), event.SchemaV1)
	}
}

// The scope was spelled sessions and session in places; both still mean
// agents, from the file, the environment or the flag.
func TestConfigScopeAliases(t *testing.T) {
	for _, c := range []struct {
		name string
		file string
		args []string
		env  map[string]string
	}{
		{"file sessions", "scope: sessions\n", nil, nil},
		{"file session", "scope: session\n", nil, nil},
		{"flag sessions", "", []string{"--scope", "sessions"}, nil},
		{"env session", "", nil, map[string]string{"LINEAGED_SCOPE": "session"}},
		{"agents", "scope: agents\n", nil, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg, err := parse(t, append([]string{"--config", writeFile(t, c.file)}, c.args...), c.env)
			if err != nil {
				t.Fatal(err)
			}
			if cfg.Scope != "agents" {
				t.Fatalf("scope %q, want agents", cfg.Scope)
			}
		})
	}
}

func TestConfigMissingFile(t *testing.T) {
	_, err := parse(t, []string{"--config", "/nonexistent/lineaged.yaml"}, nil)
	if err == nil || !strings.Contains(err.Error(), "/nonexistent/lineaged.yaml") {
		t.Fatalf("missing file error must name the file, got %v", err)
	}
}

// The shipped default configuration must load as it is.
func TestShippedConfigLoads(t *testing.T) {
	cfg, err := parse(t, []string{"--config", "../../deploy/lineaged.yaml"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Output != "/var/log/lineaged/events.jsonl" || cfg.Kafka.BatchTimeout != 100*time.Microsecond {
		t.Fatalf("shipped config: output=%q batch_timeout=%v", cfg.Output, cfg.Kafka.BatchTimeout)
	}
}

func TestConfigPosture(t *testing.T) {
	cfg, err := parse(t, []string{"--config", writeFile(t, "posture:\n  interval: 30s\n  checks: [aslr, firewall]\n")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Posture.Interval != 30*time.Second || len(cfg.Posture.Checks) != 2 {
		t.Fatalf("posture: %+v", cfg.Posture)
	}
	_, err = parse(t, []string{"--config", writeFile(t, "posture:\n  checks: [aslr, nope]\n")}, nil)
	if err == nil || !strings.Contains(err.Error(), `"nope"`) {
		t.Fatalf("unknown posture check must be named, got %v", err)
	}
}

func TestConfigPostureDecides(t *testing.T) {
	cfg, err := parse(t, []string{"--config", writeFile(t, `posture:
  checks: [aslr, endpoint_protection, os_updates_fresh]
  required: [endpoint_protection]
  endpoint_protection: [osqueryd, /opt/CrowdStrike/falcon-sensor]
  root: /
  updates:
    max_index_age: 48h
    max_upgrade_age: 336h
`)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	pc := cfg.Posture
	if !slices.Equal(pc.Required, []string{"endpoint_protection"}) || len(pc.EndpointProtection) != 2 || pc.Root != "/" ||
		pc.Updates.MaxIndexAge != 48*time.Hour || pc.Updates.MaxUpgradeAge != 14*24*time.Hour {
		t.Fatalf("posture: %+v", pc)
	}
	// Unset, the keys carry the sampler's defaults.
	cfg, err = parse(t, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if pc := cfg.Posture; len(pc.Required) != 0 || !slices.Equal(pc.EndpointProtection, posture.DefaultEndpointProtection()) ||
		pc.Updates.MaxIndexAge != posture.DefaultMaxIndexAge || pc.Interval != posture.DefaultInterval {
		t.Fatalf("posture defaults: %+v", pc)
	}
	t.Run("environment", func(t *testing.T) {
		// Lists are comma-separated.
		cfg, err := parse(t, nil, map[string]string{"LINEAGED_POSTURE_REQUIRED": "aslr,firewall"})
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(cfg.Posture.Required, []string{"aslr", "firewall"}) {
			t.Fatalf("posture.required from the environment: %v", cfg.Posture.Required)
		}
	})
	for _, tc := range []struct{ yaml, err string }{
		{"posture:\n  required: [aslr, nope]\n", `posture.required: unknown check "nope"`},
		{"posture:\n  checks: [aslr]\n  required: [firewall]\n", `posture.required: check "firewall" is not enabled in posture.checks`},
		{"posture:\n  endpoint_protection: [opt/edr]\n", `posture.endpoint_protection: "opt/edr"`},
		{"posture:\n  updates:\n    max_index_age: -1h\n", "posture.updates.max_index_age: -1h0m0s is negative"},
		{"posture:\n  updates:\n    max_upgrade_age: -2h\n", "posture.updates.max_upgrade_age: -2h0m0s is negative"},
		{"posture:\n  updates:\n    max_age: 1h\n", "max_age"},
		{"posture:\n  root: host\n", `posture.root: "host" is not an absolute path`},
	} {
		_, err := parse(t, []string{"--config", writeFile(t, tc.yaml)}, nil)
		if err == nil || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("%q: got %v, want an error containing %q", tc.yaml, err, tc.err)
		}
	}
}

func TestConfigDenyExec(t *testing.T) {
	cfg, err := parse(t, []string{"--config", writeFile(t, "policy:\n  deny_exec: [/usr/bin/nc, /opt/tools/]\n")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Policy.DenyExec) != 2 || sensorConfig(cfg, agent.DefaultTable()).DenyKeys["/opt/tools/"] != 1 {
		t.Fatalf("deny_exec: %+v", cfg.Policy)
	}
	_, err = parse(t, []string{"--config", writeFile(t, "policy:\n  deny_exec: [relative/nc]\n")}, nil)
	if err == nil || !strings.Contains(err.Error(), "policy.deny_exec") || !strings.Contains(err.Error(), "relative/nc") {
		t.Fatalf("a relative deny_exec entry must be named, got %v", err)
	}
}

// TestShippedConfigStatesTheDefaults: deploy/lineaged.yaml documents every
// key with its value; a value there that differs from the built-in default
// means one of them is wrong (a service from the package and a bare
// `lineaged run` would behave differently without anyone choosing it).
// Only the keys listed here differ on purpose.
func TestShippedConfigStatesTheDefaults(t *testing.T) {
	shipped, err := parse(t, []string{"--config", "../../deploy/lineaged.yaml"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	builtin, err := parse(t, []string{"--config", writeFile(t, "{}\n")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	onPurpose := map[string]bool{
		"Output": true, // the service writes a file; `lineaged run` prints
	}
	var walk func(path string, a, b reflect.Value)
	walk = func(path string, a, b reflect.Value) {
		switch a.Kind() {
		case reflect.Struct:
			for i := range a.NumField() {
				f := a.Type().Field(i)
				if !f.IsExported() || f.Tag.Get("mapstructure") == "-" {
					continue
				}
				walk(strings.TrimPrefix(path+"."+f.Name, "."), a.Field(i), b.Field(i))
			}
		case reflect.Func:
		default:
			if onPurpose[path] {
				return
			}
			bothEmpty := (a.Kind() == reflect.Slice || a.Kind() == reflect.Map) && a.Len() == 0 && b.Len() == 0
			if !bothEmpty && !reflect.DeepEqual(a.Interface(), b.Interface()) {
				t.Errorf("%s: deploy/lineaged.yaml says %v, the built-in default is %v", path, a.Interface(), b.Interface())
			}
		}
	}
	walk("", reflect.ValueOf(*shipped), reflect.ValueOf(*builtin))
}
