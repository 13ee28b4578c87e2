// Package sink writes enriched events out: it picks an encoder (native
// lineaged/v2 or OCSF 1.8.0) and a destination (stdout, a rotated file, or
// Kafka behind a durable disk spool) from a Config.
package sink

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/lineaged/lineaged/lineage/event"
	"github.com/lineaged/lineaged/sink/kafka"
	"github.com/lineaged/lineaged/sink/native"
	"github.com/lineaged/lineaged/sink/ocsf"
)

// Sink receives enriched events. Write must not block on a slow or absent
// downstream for long: the caller is the pipeline.
type Sink interface {
	Write(ctx context.Context, ev *event.Event) error
	Close() error
}

// Encoder turns one event into one self-contained message.
type Encoder interface {
	// Append appends the encoded event to dst.
	Append(dst []byte, ev *event.Event) ([]byte, error)
	// ContentType is the media type of one message.
	ContentType() string
	// Schema names the format, e.g. lineaged/v2 or ocsf/1.8.0.
	Schema() string
}

// Formats accepted in Config.Format.
const (
	FormatNative = "native"
	FormatOCSF   = "ocsf"
)

// Config selects and configures the output. The zero value writes native
// events to stdout.
type Config struct {
	// Format is native (default) or ocsf.
	Format string
	// Output is "-" or "" for stdout, or a file path. Ignored when
	// Kafka.Brokers is set. Both are buffered: see FlushAfter.
	Output string
	// File rotates the output file.
	File FileConfig
	// Kafka, when Brokers is non-empty, sends events to Kafka through the
	// disk spool instead of Output.
	Kafka kafka.Config
	// SensorVersion is carried in the Kafka sensor-version header and the
	// OCSF metadata.product.version.
	SensorVersion string
	// Native bounds argv in the native format and shapes the output of
	// both formats: compact or full ancestry, lineaged/v2 or v1.
	Native native.Encoder
	// Stdout replaces os.Stdout (tests).
	Stdout io.Writer
	// Now is the clock for events the sink itself emits (spool loss
	// reports); time.Now when nil.
	Now func() time.Time
	// Wrap, when set, wraps the encoder: every line the sink writes, its
	// own loss reports included, passes through it (the audit chain,
	// docs/audit.md).
	Wrap func(Encoder) Encoder
}

// NewEncoder returns the encoder for format.
func NewEncoder(format string, nat native.Encoder, sensorVersion string) (Encoder, error) {
	switch format {
	case "", FormatNative:
		if nat.Shared == nil {
			// One per encoder: the bytes kept depend on its settings.
			nat.Shared = native.NewSharedAncestry()
		}
		return nat, nil
	case FormatOCSF:
		// Its own shared ancestries: the bytes kept depend on its settings.
		return ocsf.Encoder{ProductVersion: sensorVersion, Ancestry: nat.Ancestry, V1: nat.V1, MaxBytes: nat.MaxBytes,
			Shared: native.NewSharedAncestry()}, nil
	default:
		return nil, fmt.Errorf("sink: format %q is not one of %s, %s", format, FormatNative, FormatOCSF)
	}
}

// New builds the sink described by cfg. Metrics are registered with reg
// (nil: not registered). A Kafka sink checks its configuration and reaches
// the brokers once before returning, so a wrong address, TLS file or SASL
// mechanism fails here with an error naming it.
func New(cfg Config, reg prometheus.Registerer, log *slog.Logger) (Sink, error) {
	if log == nil {
		return nil, errors.New("sink: nil logger")
	}
	enc, err := NewEncoder(cfg.Format, cfg.Native, cfg.SensorVersion)
	if err != nil {
		return nil, err
	}
	if cfg.Wrap != nil {
		enc = cfg.Wrap(enc)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if len(cfg.Kafka.Brokers) > 0 {
		kc := cfg.Kafka
		kc.SensorVersion = cfg.SensorVersion
		kc.Now = cfg.Now
		ks, err := kafka.New(kc, enc, reg, log.With("component", "sink.kafka"))
		if err != nil {
			return nil, err // not a typed nil inside the interface
		}
		return ks, nil
	}
	m := newWriterMetrics(reg)
	if cfg.Output == "" || cfg.Output == "-" {
		w := cfg.Stdout
		if w == nil {
			w = os.Stdout
		}
		return newWriterSink(enc, nopCloser{w}, m, "stdout", writerOptions{}), nil
	}
	f, err := OpenRotating(cfg.Output, cfg.File)
	if err != nil {
		return nil, err
	}
	return newWriterSink(enc, f, m, "file", writerOptions{}), nil
}

type nopCloser struct{ io.Writer }

func (nopCloser) Close() error { return nil }
