package kafka

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/lineaged/lineaged/lineage/event"
	kgo "github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/sasl"
	"github.com/segmentio/kafka-go/sasl/plain"
	"github.com/segmentio/kafka-go/sasl/scram"
)

// Config configures the Kafka sink and its spool. It is also the kafka
// section of lineaged's configuration: the mapstructure tags are the keys,
// and fields tagged "-" are set by the program, not configured.
type Config struct {
	// Brokers are the bootstrap brokers, HOST:PORT.
	Brokers []string `mapstructure:"brokers"`
	// Topic receives the events; it must exist.
	Topic string `mapstructure:"topic"`
	// Compression is none, zstd (default, at its fastest level), lz4, snappy
	// or gzip.
	Compression string `mapstructure:"compression"`
	// BatchSize is the most messages sent in one produce call; 0 means 100.
	BatchSize int `mapstructure:"batch_size"`
	// BatchTimeout is how long kafka-go holds a partial partition batch for
	// more messages; 0 means 100 µs. The sender already hands the writer
	// everything the spool holds in one call, so waiting longer only adds
	// latency: at high rates batches fill to BatchSize and go at once.
	BatchTimeout time.Duration `mapstructure:"batch_timeout"`
	// Linger is how long the sender waits for more events when the spool
	// holds fewer than BatchSize, before it produces them in one request
	// (Kafka's linger.ms); it ends early once BatchSize events (or
	// MaxMessageBytes of them) are in, or when the sensor stops. 0 means
	// 5 ms, a negative value produces at once. At event rates one produce request, compressed batch and
	// broker round trip for a burst costs far less than one for each few
	// events, for a few milliseconds more of delivery latency.
	Linger time.Duration `mapstructure:"linger"`
	// MaxMessageBytes is the largest message the topic takes (the broker's
	// message.max.bytes / the topic's max.message.bytes); 0 means 1 MiB.
	// The writer's BatchBytes is set to it, and encoders keep every event
	// within EncodedBudget(MaxMessageBytes), trimming what is over
	// (docs/reliability.md). The same budget bounds a file or stdout line.
	MaxMessageBytes int `mapstructure:"max_message_bytes"`
	// DeadLetterDir receives the records the brokers refuse for good (too
	// large, invalid, not authorised), in dead-letter.jsonl (0600); empty
	// means the spool directory.
	DeadLetterDir string `mapstructure:"-"`
	// WriteTimeout bounds one produce attempt; 0 means 10 s.
	WriteTimeout time.Duration `mapstructure:"-"`
	TLS          TLSConfig     `mapstructure:"tls"`
	SASL         SASLConfig    `mapstructure:"sasl"`
	Spool        SpoolConfig   `mapstructure:"spool"`
	// AllowStartOffline lets the sink start when no broker answers: events
	// go to the spool until one does. By default an unreachable cluster is
	// an error at start, so a wrong address is found at once.
	AllowStartOffline bool `mapstructure:"allow_start_offline"`
	// DrainTimeout is how long Close waits for the spool to empty into
	// Kafka before leaving the rest on disk for the next start; 0 means 5 s.
	DrainTimeout time.Duration `mapstructure:"-"`
	// DialTimeout bounds the connection check at start; 0 means 10 s.
	DialTimeout time.Duration `mapstructure:"-"`
	// SensorVersion goes into the sensor-version header.
	SensorVersion string `mapstructure:"-"`
	// Now is the clock for loss events; time.Now when nil.
	Now func() time.Time `mapstructure:"-"`
	// Stamp numbers the sink's own events (its sensor.loss reports) in the
	// pipeline's one sequence (lineage/policy Sequencer.Stamp), so they
	// get a seq and event_id of their own. Called from the sender
	// goroutine and from Close: it must be safe for concurrent use.
	// Required.
	Stamp func(*event.Event) `mapstructure:"-"`
	// OnDurable, when set, is called with the highest seq (and its event
	// time) of the events written to the spool file so far: a kill of the
	// sensor can no longer lose them. Called from the spool's writer.
	OnDurable func(seq uint64, t time.Time) `mapstructure:"-"`
	// ObserveAck, when set, is called with the Write-to-acknowledgement
	// latency of every delivered event (benchmarks, tests).
	ObserveAck func(time.Duration) `mapstructure:"-"`
}

// TLSConfig is TLS to the brokers.
type TLSConfig struct {
	Enabled    bool   `mapstructure:"enabled"`     // TLS to the brokers
	CAFile     string `mapstructure:"ca_file"`     // PEM bundle; the system roots when empty
	CertFile   string `mapstructure:"cert_file"`   // client certificate (PEM), with KeyFile
	KeyFile    string `mapstructure:"key_file"`    // the client certificate's private key (PEM)
	ServerName string `mapstructure:"server_name"` // overrides the name checked in the broker certificate
}

// SASLConfig is SASL authentication.
type SASLConfig struct {
	// Mechanism is empty (none), PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512.
	Mechanism    string `mapstructure:"mechanism"`
	Username     string `mapstructure:"username"`      // the SASL user
	Password     string `mapstructure:"password"`      // a secret: prefer password_file
	PasswordFile string `mapstructure:"password_file"` // read at start; trailing newline removed
}

// SpoolConfig is the disk spool in front of Kafka.
type SpoolConfig struct {
	Dir      string `mapstructure:"dir"`       // where events wait while the brokers are unreachable
	MaxBytes int64  `mapstructure:"max_bytes"` // 0 means 256 MiB
	// SegmentBytes overrides the segment size (tests).
	SegmentBytes int64 `mapstructure:"-"`
}

func (c *Config) setDefaults() {
	if c.Compression == "" {
		c.Compression = "zstd"
	}
	if c.BatchSize == 0 {
		c.BatchSize = 100
	}
	if c.BatchTimeout == 0 {
		c.BatchTimeout = 100 * time.Microsecond
	}
	if c.Linger == 0 {
		c.Linger = 5 * time.Millisecond
	}
	if c.WriteTimeout == 0 {
		c.WriteTimeout = 10 * time.Second
	}
	if c.MaxMessageBytes == 0 {
		c.MaxMessageBytes = DefaultMaxMessageBytes
	}
	if c.DrainTimeout == 0 {
		c.DrainTimeout = 5 * time.Second
	}
	if c.DialTimeout == 0 {
		c.DialTimeout = 10 * time.Second
	}
	if c.Spool.MaxBytes == 0 {
		c.Spool.MaxBytes = 256 << 20
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// validate checks everything that can be checked without the network, and
// names the key at fault.
func (c *Config) validate() error {
	var errs []error
	bad := func(key, f string, a ...any) {
		errs = append(errs, fmt.Errorf("kafka.%s: %s", key, fmt.Sprintf(f, a...)))
	}
	if len(c.Brokers) == 0 {
		bad("brokers", "none given")
	}
	if c.Stamp == nil {
		errs = append(errs, errors.New("kafka: Config.Stamp is required: the sink's loss reports are numbered in the pipeline's sequence"))
	}
	for _, b := range c.Brokers {
		host, port, err := net.SplitHostPort(b)
		if err != nil || host == "" {
			bad("brokers", "%q is not HOST:PORT", b)
			continue
		}
		if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
			bad("brokers", "%q has an invalid port", b)
		}
	}
	if c.Topic == "" {
		bad("topic", "required")
	}
	if _, err := compression(c.Compression); err != nil {
		bad("compression", "%v", err)
	}
	if c.BatchSize < 1 {
		bad("batch_size", "%d is below 1", c.BatchSize)
	}
	if c.BatchTimeout < 0 || c.WriteTimeout < 0 {
		bad("batch_timeout", "negative duration")
	}
	if c.MaxMessageBytes < MinMaxMessageBytes {
		bad("max_message_bytes", "%d is below the %d minimum", c.MaxMessageBytes, MinMaxMessageBytes)
	}
	if c.Spool.Dir == "" {
		bad("spool.dir", "required: events wait there while the brokers are unreachable")
	}
	if c.Spool.MaxBytes < 1<<20 {
		bad("spool.max_bytes", "%d is below the 1 MiB minimum", c.Spool.MaxBytes)
	}
	if _, err := c.saslMechanism(); err != nil {
		errs = append(errs, err)
	}
	if _, err := c.tlsConfig(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// Message size bounds.
const (
	// DefaultMaxMessageBytes is Kafka's default message.max.bytes, rounded.
	DefaultMaxMessageBytes = 1 << 20
	// MinMaxMessageBytes is the smallest max_message_bytes accepted: the
	// most trimmed event, its key and headers fit in it.
	MinMaxMessageBytes = 64<<10 + messageOverhead
	// messageOverhead is kept out of the encoders' budget for the key,
	// the headers and the record framing.
	messageOverhead = 4 << 10
)

// EncodedBudget is the size budget of one encoded event for a message
// limit of maxMessage bytes (0: the default).
func EncodedBudget(maxMessage int) int {
	if maxMessage == 0 {
		maxMessage = DefaultMaxMessageBytes
	}
	return maxMessage - messageOverhead
}

func compression(name string) (kgo.Compression, error) {
	switch strings.ToLower(name) {
	case "none":
		return 0, nil
	case "zstd":
		return kgo.Zstd, nil
	case "lz4":
		return kgo.Lz4, nil
	case "snappy":
		return kgo.Snappy, nil
	case "gzip":
		return kgo.Gzip, nil
	}
	return 0, fmt.Errorf("%q is not one of none, zstd, lz4, snappy, gzip", name)
}

func (c *Config) saslMechanism() (sasl.Mechanism, error) {
	s := c.SASL
	if s.Mechanism == "" {
		if s.Username != "" {
			return nil, errors.New("kafka.sasl.mechanism: a username is set but no mechanism (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512)")
		}
		return nil, nil
	}
	if s.Username == "" {
		return nil, fmt.Errorf("kafka.sasl.username: required with mechanism %s", s.Mechanism)
	}
	pass := s.Password
	if s.PasswordFile != "" {
		b, err := os.ReadFile(s.PasswordFile)
		if err != nil {
			return nil, fmt.Errorf("kafka.sasl.password_file: %w", err)
		}
		pass = strings.TrimRight(string(b), "\r\n")
	}
	switch strings.ToUpper(s.Mechanism) {
	case "PLAIN":
		return plain.Mechanism{Username: s.Username, Password: pass}, nil
	case "SCRAM-SHA-256":
		return scram.Mechanism(scram.SHA256, s.Username, pass)
	case "SCRAM-SHA-512":
		return scram.Mechanism(scram.SHA512, s.Username, pass)
	}
	return nil, fmt.Errorf("kafka.sasl.mechanism: %q is not one of PLAIN, SCRAM-SHA-256, SCRAM-SHA-512", s.Mechanism)
}

func (c *Config) tlsConfig() (*tls.Config, error) {
	t := c.TLS
	if !t.Enabled {
		if t.CAFile != "" || t.CertFile != "" || t.KeyFile != "" {
			return nil, errors.New("kafka.tls.enabled: TLS files are set but TLS is not enabled")
		}
		return nil, nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: t.ServerName}
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("kafka.tls.ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("kafka.tls.ca_file: %s holds no PEM certificate", t.CAFile)
		}
		cfg.RootCAs = pool
	}
	if (t.CertFile == "") != (t.KeyFile == "") {
		return nil, errors.New("kafka.tls.cert_file and kafka.tls.key_file: set both or neither")
	}
	if t.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("kafka.tls.cert_file %s / key_file %s: %w", t.CertFile, t.KeyFile, err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}
