package main

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/spf13/pflag"
	"github.com/spf13/viper"

	"github.com/lineaged/lineaged/lineage"
	"github.com/lineaged/lineaged/lineage/binid"
	"github.com/lineaged/lineaged/lineage/event"
	"github.com/lineaged/lineaged/lineage/policy"
	"github.com/lineaged/lineaged/lineage/policy/redact"
	"github.com/lineaged/lineaged/sensor/posture"
	"github.com/lineaged/lineaged/sink/kafka"
)

// DefaultConfigPath is where the packaged service reads its configuration.
const DefaultConfigPath = "/etc/lineaged/lineaged.yaml"

// Config is the whole configuration of the sensor: one YAML file, LINEAGED_*
// environment variables and command-line flags, in increasing precedence.
// Every key is documented in deploy/lineaged.yaml and the README.
//
// A section that configures one package is that package's own Config: its
// mapstructure tags are the keys, and its fields tagged "-" (funcs, clocks,
// test knobs) are filled in by the pipeline. A new setting is one field and
// tag there, plus its default below and its documentation. Trust's embedded
// binid.Config (hashing limits) is Hashing, joined in start; File and Sensor
// keep small types of their own (see FileConfig, SensorConfig).
type Config struct {
	// Scope is which processes are reported: agents (agent sessions
	// only) or all.
	Scope string `mapstructure:"scope"`
	// Output is the events file (rotated, 0600), or - for stdout; Kafka,
	// when kafka.brokers is set, takes its place.
	Output string `mapstructure:"output"`
	// Format is native (lineaged/v2) or ocsf (OCSF 1.8.0).
	Format string `mapstructure:"format"`
	// StateDir keeps the sensor's own state (the sequence file, the Kafka
	// dead-letter file); empty means the parent of kafka.spool.dir.
	StateDir string `mapstructure:"state_dir"`

	Events  EventsConfig     `mapstructure:"events"`
	File    FileConfig       `mapstructure:"file"`
	Kafka   kafka.Config     `mapstructure:"kafka"`
	Sensor  SensorConfig     `mapstructure:"sensor"`
	Kernel  KernelConfig     `mapstructure:"kernel"`
	Lineage lineage.Config   `mapstructure:"lineage"`
	Hashing binid.Config     `mapstructure:"hashing"`
	Trust   binid.LiveConfig `mapstructure:"trust"`
	// Humans maps login users to the people behind them (name, email),
	// reported with each event of their sessions.
	Humans  map[string]HumanConfig `mapstructure:"humans"`
	Redact  redact.Config          `mapstructure:"redact"`
	Posture posture.Config         `mapstructure:"posture"`
	Policy  PolicyConfig           `mapstructure:"policy"`
	Metrics MetricsConfig          `mapstructure:"metrics"`
	Hook    HookConfig             `mapstructure:"hook"`
	Control ControlConfig          `mapstructure:"control"`
	Log     LogConfig              `mapstructure:"log"`
	Audit   AuditConfig            `mapstructure:"audit"`
	Agents  AgentsConfig           `mapstructure:"agents"`

	// load reads the configuration again from the same file, environment
	// and flags, for a SIGHUP reload (config_reload.go); nil when the
	// configuration was not loaded from them.
	load func() (*Config, error)
}

// EventsConfig shapes the events written, in either format.
type EventsConfig struct {
	// Ancestry is compact (each ancestor's identity, bounded argv and
	// binary verdict), full (whole process objects) or session (compact,
	// and an agent session's events end their ancestry at the session's
	// root, whose own ancestors are on its agent.session_start).
	Ancestry string `mapstructure:"ancestry"`
	// Schema is v2 (lineaged/v2) or v1, the previous contract, kept for
	// one release: whole ancestors (ancestry must be full) and every
	// posture check on every event.
	Schema string `mapstructure:"schema"`
}

// FileConfig controls the file sink. It is not sink.FileConfig because the
// key is in MiB (max_size_mb) where the sink counts bytes; sinkConfig
// converts.
type FileConfig struct {
	// MaxSizeMB is the size in MiB at which the file is rotated.
	MaxSizeMB int `mapstructure:"max_size_mb"`
	// Retain is how many rotated files are kept.
	Retain int `mapstructure:"retain"`
}

// SensorConfig sizes the kernel side. It is not kernel.Config: the kernel
// takes uint32 sizes, and decoding a negative or oversized value into one
// would fail with a decoder error instead of validate's message naming the
// key; kernel.Config also carries what sensorConfig computes (scope,
// recognisers, deny keys).
type SensorConfig struct {
	// RingBufferBytes is the kernel ring buffer's size: a power of two,
	// at least 4096.
	RingBufferBytes int `mapstructure:"ring_buffer_bytes"`
	// QueueSize is the decoded events waiting for enrichment; beyond it
	// the reader counts drops rather than block the ring.
	QueueSize int `mapstructure:"queue_size"`
	// SessionMapSize bounds the kernel's map of agent-session members.
	SessionMapSize int `mapstructure:"session_map_size"`
}

// KernelConfig is the kernel state's place on the host.
type KernelConfig struct {
	// PinPath is the bpffs directory where the programs, links, maps
	// and ring buffer are pinned so that they outlive the sensor (a
	// restart reads what happened meanwhile); locked, one sensor per
	// path. Empty: nothing is pinned.
	PinPath string `mapstructure:"pin_path"`
}

// HumanConfig maps a login user to the person behind it.
type HumanConfig struct {
	Name  string `mapstructure:"name"`
	Email string `mapstructure:"email"`
}

// PolicyConfig is what the sensor enforces in agent sessions.
type PolicyConfig struct {
	// DenyExec lists executables agent-session members must not run.
	DenyExec []string `mapstructure:"deny_exec"`
	// DenyIOURing makes the kernel kill an agent-session member that
	// sets up an io_uring (docs/threat-model.md).
	DenyIOURing bool `mapstructure:"deny_io_uring"`
	// Rules is the rule file or directory (docs/rules.md); "" for none.
	// The default, DefaultRulesPath, may be missing: then there are none.
	Rules string `mapstructure:"rules"`
}

// MetricsConfig controls the Prometheus endpoint.
type MetricsConfig struct {
	// Listen is the ADDR:PORT of the Prometheus endpoint; off when empty.
	Listen string `mapstructure:"listen"`
}

// LogConfig controls the sensor's own log (stderr).
type LogConfig struct {
	// Level is debug, info, warn or error. The log is JSON when stderr
	// is not a terminal, text on one.
	Level string `mapstructure:"level"`
}

// defaults are every key with its default value: viper only binds LINEAGED_*
// variables for keys it knows, so every key must appear here.
var defaults = map[string]any{
	"scope":                    "agents",
	"output":                   "-",
	"format":                   "native",
	"state_dir":                "",
	"events.ancestry":          event.AncestryCompact,
	"events.schema":            "v2",
	"file.max_size_mb":         100,
	"file.retain":              5,
	"kafka.brokers":            []string{},
	"kafka.topic":              "",
	"kafka.compression":        "zstd",
	"kafka.batch_size":         100,
	"kafka.batch_timeout":      100 * time.Microsecond,
	"kafka.linger":             5 * time.Millisecond,
	"kafka.max_message_bytes":  1 << 20,
	"kafka.tls.enabled":        false,
	"kafka.tls.ca_file":        "",
	"kafka.tls.cert_file":      "",
	"kafka.tls.key_file":       "",
	"kafka.tls.server_name":    "",
	"kafka.sasl.mechanism":     "",
	"kafka.sasl.username":      "",
	"kafka.sasl.password":      "",
	"kafka.sasl.password_file": "",
	"kafka.spool.dir":          "/var/lib/lineaged/spool",
	"kafka.spool.max_bytes":    int64(256 << 20),
	"sensor.ring_buffer_bytes": 8 << 20,
	"sensor.queue_size":        16384,
	"sensor.session_map_size":  65536,
	"kernel.pin_path":          "",
	"lineage.max_processes":    65536,
	"lineage.exit_grace":       30 * time.Second,
	"lineage.max_pending":      4096,
	"lineage.enrich_wait":      2 * time.Second,
	"hashing.workers":          2,
	"hashing.max_bytes":        int64(1 << 30),
	"hashing.timeout":          10 * time.Second,
	"hashing.max_bytes_user":   int64(128 << 20),
	"hashing.queue":            256,
	"hashing.queue_per_user":   32,
	"hashing.cache_dir":        "/var/lib/lineaged/binid",
	"hashing.hold_exec":        []string{},
	"hashing.hold_timeout":     3 * time.Second,
	"trust.keys":               []string{},
	"trust.signature_dir":      "",
	"humans":                   map[string]any{},
	"redact.patterns":          []string{},
	"redact.export_prompt":     false,
	"metrics.listen":           defaultMetricsListen,
	"log.level":                "info",

	"posture.interval":                posture.DefaultInterval,
	"posture.checks":                  []string{},
	"posture.required":                []string{},
	"posture.root":                    "/",
	"posture.managed_settings":        posture.DefaultManagedSettings,
	"posture.endpoint_protection":     posture.DefaultEndpointProtection(),
	"posture.updates.max_index_age":   posture.DefaultMaxIndexAge,
	"posture.updates.max_upgrade_age": posture.DefaultMaxUpgradeAge,

	"kafka.allow_start_offline": false,
	"policy.deny_exec":          []string{},
	"policy.deny_io_uring":      false,
	"policy.rules":              DefaultRulesPath,
	"hook.socket":               DefaultHookSocket,
	"hook.group":                "",
	"hook.fail_closed":          false,
	"hook.timeout":              DefaultHookTimeout,

	"control.socket":    DefaultControlSocket,
	"control.tee_queue": defaultTeeQueue,

	"audit.enabled":             true,
	"audit.state_dir":           "",
	"audit.checkpoint_interval": DefaultCheckpointInterval,
	"audit.algorithm":           "ed25519",
	"audit.checkpoint_copy":     "",
	"audit.checkpoint_topic":    "",

	"agents.known_releases": []string{},
}

// flagKeys maps command-line flags to configuration keys.
var flagKeys = map[string]string{
	"scope":          "scope",
	"output":         "output",
	"format":         "format",
	"kafka-brokers":  "kafka.brokers",
	"kafka-topic":    "kafka.topic",
	"metrics-listen": "metrics.listen",
	"log-level":      "log.level",
}

// addRunFlags declares the flags shared by run (and doctor, which reads the
// same sizes to probe what run would load).
func addRunFlags(fs *pflag.FlagSet) {
	fs.String("config", "", "configuration file (YAML); default "+DefaultConfigPath+" when it exists")
	fs.String("scope", "agents", "which processes to report: agents (agent sessions only) or all")
	fs.StringP("output", "o", "-", "write events to FILE (rotated, 0600) or - for stdout")
	fs.String("format", "native", "event format: native (lineaged/v2) or ocsf (OCSF 1.8.0)")
	fs.StringSlice("kafka-brokers", nil, "publish to Kafka: HOST:PORT[,HOST:PORT...] (overrides --output)")
	fs.String("kafka-topic", "", "Kafka topic (required with --kafka-brokers)")
	fs.String("metrics-listen", "", "serve Prometheus metrics on ADDR:PORT (default 127.0.0.1:9464, loopback; off when empty)")
	fs.String("log-level", "info", "log level: debug, info, warn, error")
}

// loadConfig merges defaults, the config file, LINEAGED_* variables and the
// flags that were set, and validates the result. Every problem is reported
// at once (config_validate.go): unknown keys in the file or the
// environment, values of the wrong type, bad values and keys that do not
// fit together, each naming the key and where its value came from.
func loadConfig(fs *pflag.FlagSet, getenv func(string) string) (*Config, error) {
	cfg, _, err := loadConfigSources(fs, getenv)
	return cfg, err
}

// loadConfigSources is loadConfig, also saying where each value came from.
func loadConfigSources(fs *pflag.FlagSet, getenv func(string) string) (*Config, *configSources, error) {
	v := viper.New()
	for k, d := range defaults {
		v.SetDefault(k, d)
	}
	v.SetEnvPrefix("LINEAGED")
	v.SetEnvKeyReplacer(strings.NewReplacer(".", "_"))
	v.AutomaticEnv()

	path, _ := fs.GetString("config")
	if path == "" {
		path = getenv("LINEAGED_CONFIG")
	}
	explicit := path != ""
	if !explicit {
		if _, err := os.Stat(DefaultConfigPath); err == nil {
			path = DefaultConfigPath
		}
	}
	src := &configSources{path: path, lines: map[string]int{}, fs: fs, env: os.LookupEnv}
	probs := &configProblems{where: "configuration"}
	if path != "" {
		probs.where = "config " + path
		if err := readConfigFile(v, src, probs); err != nil {
			return nil, src, err
		}
	}
	// LINEAGED_* variables: unknown names are errors, and the redaction
	// patterns have their own list syntax (config_env.go).
	probs.list = append(probs.list, envProblems(os.Environ())...)
	if err := envRedactPatterns(v); err != nil {
		probs.list = append(probs.list, err.Error())
	}
	for flag, key := range flagKeys {
		if f := fs.Lookup(flag); f != nil && f.Changed {
			if err := v.BindPFlag(key, f); err != nil {
				return nil, src, fmt.Errorf("flag --%s: %w", flag, err)
			}
		}
	}
	var cfg Config
	decodeKeys(v, &cfg, src, probs)
	if cfg.Audit.StateDir == "" {
		// Beside the rest of the sensor's state: an instance given its
		// own state_dir (a test, a second sensor) never shares the key.
		cfg.Audit.StateDir = filepath.Join(stateDir(&cfg), "audit")
	}
	annotate(cfg.validate(), src, probs)
	if len(probs.list) > 0 {
		sortProblems(src.path, probs.list)
		return nil, src, probs
	}
	cfg.load = func() (*Config, error) { return loadConfig(fs, getenv) }
	return &cfg, src, nil
}

var humanNameRE = regexp.MustCompile(`^[a-z_][a-z0-9_.-]*\$?$`)

// validate checks what can be checked without touching the network; each
// error names the key and the bad value. It also rewrites an old spelling of
// a value (scope: sessions) to the one the rest of the program uses.
func (c *Config) validate() error {
	var p problems
	c.validateOutput(&p)
	if len(c.Kafka.Brokers) > 0 {
		c.validateKafka(&p)
	}
	c.validateBounds(&p)
	for user := range c.Humans {
		if !humanNameRE.MatchString(user) {
			p.bad("humans", "%q is not a user name", user)
		}
	}
	for _, re := range c.Redact.Patterns {
		if _, err := regexp.Compile(re); err != nil {
			p.bad("redact.patterns", "%q: %v", re, err)
		}
	}
	// Validate fills the sampler's defaults: on a copy, so the
	// configuration stays as loaded.
	pc := c.Posture
	if err := pc.Validate(); err != nil {
		p.errs = append(p.errs, err)
	}
	if err := policy.ValidateDenyExec(c.Policy.DenyExec); err != nil {
		p.bad("policy.deny_exec", "%v", err)
	}
	c.Hook.validate(&p)
	c.Control.validate(&p)
	if c.Control.Socket != "" && c.Hook.Socket != "" && filepath.Dir(c.Control.Socket) == filepath.Dir(c.Hook.Socket) {
		p.bad("control.socket", "%q is in the hook socket's directory, which agents of every user reach; give it a directory of its own", c.Control.Socket)
	}
	c.Audit.validate(&p)
	c.Agents.validate(&p)
	c.validateCheckpointTopic(&p)
	return errors.Join(p.errs...)
}

// problems collects every configuration error, each naming its key.
type problems struct{ errs []error }

func (p *problems) bad(key string, format string, a ...any) {
	p.errs = append(p.errs, fmt.Errorf("%s: %s", key, fmt.Sprintf(format, a...)))
}

// validateOutput checks what is emitted and where: scope, format, output,
// file rotation and the log level.
func (c *Config) validateOutput(p *problems) {
	switch c.Scope {
	case "agents", "all":
	case "sessions", "session":
		// Older spellings of agents, still accepted (README).
		c.Scope = "agents"
	default:
		p.bad("scope", "%q is not one of agents, all", c.Scope)
	}
	switch c.Format {
	case "native", "ocsf":
	default:
		p.bad("format", "%q is not one of native, ocsf", c.Format)
	}
	if c.Output == "" {
		p.bad("output", "empty: use - for stdout or a file path")
	}
	// Also the file and stdout line budget, so checked whatever the output.
	if m := c.Kafka.MaxMessageBytes; m != 0 && m < kafka.MinMaxMessageBytes {
		p.bad("kafka.max_message_bytes", "%d is below the %d minimum", m, kafka.MinMaxMessageBytes)
	}
	switch c.Events.Ancestry {
	case event.AncestryCompact, event.AncestryFull, event.AncestrySession:
	default:
		p.bad("events.ancestry", "%q is not one of %s, %s, %s", c.Events.Ancestry, event.AncestryCompact, event.AncestryFull, event.AncestrySession)
	}
	switch c.Events.Schema {
	case "v2":
	case "v1":
		if c.Events.Ancestry != event.AncestryFull {
			p.bad("events.schema", "v1 writes whole ancestors: set events.ancestry: full with it")
		}
	default:
		p.bad("events.schema", "%q is not one of v2, v1", c.Events.Schema)
	}
	if c.File.MaxSizeMB < 1 {
		p.bad("file.max_size_mb", "%d must be at least 1", c.File.MaxSizeMB)
	}
	if c.File.Retain < 1 {
		p.bad("file.retain", "%d must be at least 1", c.File.Retain)
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		p.bad("log.level", "%q is not one of debug, info, warn, error", c.Log.Level)
	}
}

// validateKafka checks the Kafka sink's settings when brokers are set.
func (c *Config) validateKafka(p *problems) {
	if c.Kafka.Topic == "" {
		p.bad("kafka.topic", "required when kafka.brokers is set")
	}
	for _, b := range c.Kafka.Brokers {
		if _, _, err := net.SplitHostPort(b); err != nil {
			p.bad("kafka.brokers", "%q is not HOST:PORT", b)
		}
	}
	switch c.Kafka.Compression {
	case "", "none", "zstd", "lz4", "snappy", "gzip":
	default:
		p.bad("kafka.compression", "%q is not one of none, zstd, lz4, snappy, gzip", c.Kafka.Compression)
	}
	switch strings.ToUpper(c.Kafka.SASL.Mechanism) {
	case "", "PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512":
	default:
		p.bad("kafka.sasl.mechanism", "%q is not one of PLAIN, SCRAM-SHA-256, SCRAM-SHA-512", c.Kafka.SASL.Mechanism)
	}
	if c.Kafka.Spool.Dir == "" {
		p.bad("kafka.spool.dir", "required with Kafka: events wait there while the brokers are unreachable")
	}
	if c.Kafka.Spool.MaxBytes < 1<<20 {
		p.bad("kafka.spool.max_bytes", "%d is below the 1 MiB minimum", c.Kafka.Spool.MaxBytes)
	}
}

// validateBounds checks the sizes of the kernel side, the process table and
// the hashing pool.
func (c *Config) validateBounds(p *problems) {
	if n := c.Sensor.RingBufferBytes; n < 4096 || n&(n-1) != 0 {
		p.bad("sensor.ring_buffer_bytes", "%d must be a power of two of at least 4096", n)
	}
	if c.Sensor.QueueSize < 1 {
		p.bad("sensor.queue_size", "%d must be at least 1", c.Sensor.QueueSize)
	}
	if c.Sensor.SessionMapSize < 1 {
		p.bad("sensor.session_map_size", "%d must be at least 1", c.Sensor.SessionMapSize)
	}
	if c.Lineage.MaxProcesses < 64 {
		p.bad("lineage.max_processes", "%d is below the minimum of 64", c.Lineage.MaxProcesses)
	}
	if c.Hashing.Workers < 1 {
		p.bad("hashing.workers", "%d must be at least 1", c.Hashing.Workers)
	}
	for _, h := range c.Hashing.HoldExec {
		if _, ok := holdFlags[h]; !ok && h != holdUnseen {
			p.bad("hashing.hold_exec", "%q is not one of memfd, deleted, unseen", h)
		}
	}
	if t := c.Hashing.HoldTimeout; t <= 0 || t > maxHoldTimeout {
		p.bad("hashing.hold_timeout", "%s must be more than 0 and at most %s", t, maxHoldTimeout)
	}
}
