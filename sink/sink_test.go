package sink

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/lineaged/lineaged/lineage/event"
	"github.com/lineaged/lineaged/sink/internal/kafkatest"
	"github.com/lineaged/lineaged/sink/internal/schematest"
	"github.com/lineaged/lineaged/sink/internal/testevents"
	"github.com/lineaged/lineaged/sink/kafka"
	"github.com/lineaged/lineaged/sink/native"
)

func discard() *slog.Logger { return slog.New(slog.DiscardHandler) }

func TestStdoutIsDefault(t *testing.T) {
	schema, err := schematest.Native()
	if err != nil {
		t.Fatal(err)
	}
	validLines(t, schema, writeAll(t, Config{}, prometheus.NewRegistry()))
}

// writeAll writes every test event through a sink built from cfg, to
// stdout (a buffer), and returns the lines, one per event.
func writeAll(t *testing.T, cfg Config, reg prometheus.Registerer) [][]byte {
	t.Helper()
	var out bytes.Buffer
	cfg.Stdout = &out
	s, err := New(cfg, reg, discard())
	if err != nil {
		t.Fatal(err)
	}
	evs := testevents.All()
	for _, ev := range evs {
		if err := s.Write(context.Background(), ev); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	lines := bytes.Split(bytes.TrimSuffix(out.Bytes(), []byte("\n")), []byte("\n"))
	if len(lines) != len(evs) {
		t.Fatalf("%d lines for %d events", len(lines), len(evs))
	}
	return lines
}

// validLines validates each line against schema.
func validLines(t *testing.T, schema *jsonschema.Schema, lines [][]byte) {
	t.Helper()
	for i, l := range lines {
		if err := schematest.Validate(schema, l); err != nil {
			t.Fatalf("line %d: %v", i, err)
		}
	}
}

// events.schema: v1 reaches both encoders through Config.Native: native
// events valid against the v1 JSON Schema, OCSF naming lineaged/v1.
func TestV1CompatibilityOutput(t *testing.T) {
	v1 := native.Encoder{V1: true, Ancestry: event.AncestryFull}
	schema, err := schematest.NativeV1()
	if err != nil {
		t.Fatal(err)
	}
	validLines(t, schema, writeAll(t, Config{Native: v1}, nil))
	var out bytes.Buffer
	s, err := New(Config{Format: FormatOCSF, Stdout: &out, Native: v1}, nil, discard())
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Write(context.Background(), testevents.New(event.KindProcessExec, 1, "s")); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), `"log_name":"lineaged/v1"`) {
		t.Errorf("OCSF with events.schema v1 does not name lineaged/v1: %.300s", out.String())
	}
}

func TestOCSFFormat(t *testing.T) {
	var out bytes.Buffer
	s, err := New(Config{Format: FormatOCSF, Output: "-", Stdout: &out, SensorVersion: "1.2.3"}, nil, discard())
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Write(context.Background(), testevents.New(event.KindProcessExec, 1, "s")); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	var m struct {
		ClassUID int `json:"class_uid"`
		Metadata struct {
			Version string `json:"version"`
			Product struct {
				Version string `json:"version"`
			} `json:"product"`
		} `json:"metadata"`
	}
	if err := json.Unmarshal(out.Bytes(), &m); err != nil {
		t.Fatal(err)
	}
	if m.ClassUID != 1007 || m.Metadata.Version != "1.8.0" || m.Metadata.Product.Version != "1.2.3" {
		t.Fatalf("%+v", m)
	}
}

func TestBadFormat(t *testing.T) {
	_, err := New(Config{Format: "cef"}, nil, discard())
	if err == nil || !strings.Contains(err.Error(), `"cef"`) {
		t.Fatalf("got %v", err)
	}
}

func TestFileSinkRotatesWithRetention(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "events.jsonl")
	// A pre-existing file keeps its mode (it is rotated out below); every
	// file the sink creates is 0600.
	if err := os.WriteFile(path, []byte{}, 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := New(Config{Output: path, File: FileConfig{MaxBytes: 32 << 10, Retain: 3}}, nil, discard())
	if err != nil {
		t.Fatal(err)
	}
	const n = 200 // ~3 KiB each: about 20 files' worth
	for i := 1; i <= n; i++ {
		if err := s.Write(context.Background(), testevents.New(event.KindProcessExec, uint64(i), "s")); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(path + "*")
	if len(files) != 4 {
		t.Fatalf("files %v, want the live one + 3 retained", files)
	}
	var seqs []uint64
	for _, f := range []string{path + ".3", path + ".2", path + ".1", path} {
		fi, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s mode %v, want 0600", f, fi.Mode().Perm())
		}
		if fi.Size() > 32<<10 {
			t.Errorf("%s is %d bytes, over the 32 KiB bound", f, fi.Size())
		}
		fh, _ := os.Open(f)
		sc := bufio.NewScanner(fh)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			var ev struct {
				Seq uint64 `json:"seq"`
			}
			if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
				t.Fatalf("%s: torn line: %v", f, err)
			}
			seqs = append(seqs, ev.Seq)
		}
		fh.Close()
	}
	// Oldest retained to newest: a contiguous run ending at n.
	for i, q := range seqs {
		if want := uint64(n - len(seqs) + 1 + i); q != want {
			t.Fatalf("position %d holds seq %d, want %d", i, q, want)
		}
	}
}

func TestFileSinkBadPath(t *testing.T) {
	_, err := New(Config{Output: "/nonexistent-dir/x.jsonl"}, nil, discard())
	if err == nil || !strings.Contains(err.Error(), "/nonexistent-dir/x.jsonl") {
		t.Fatalf("got %v", err)
	}
}

func TestKafkaFromConfig(t *testing.T) {
	c := kafkatest.Cluster(t)
	cfg := Config{
		Format:        FormatOCSF,
		SensorVersion: "9.9.9",
		Kafka: kafka.Config{
			Brokers: c.ListenAddrs(), Topic: kafkatest.Topic,
			Spool: kafka.SpoolConfig{Dir: filepath.Join(t.TempDir(), "spool"), MaxBytes: 8 << 20},
			// Loss reports numbered far above the test events.
			Stamp: func(ev *event.Event) {
				ev.Seq = 1 << 40
				ev.EventID = event.NewEventID(ev.Time, "sink-test", ev.Seq)
			},
		},
	}
	s, err := New(cfg, prometheus.NewRegistry(), discard())
	if err != nil {
		t.Fatal(err)
	}
	evs := kafkatest.Events(1, 20, 2)
	for _, ev := range evs {
		if err := s.Write(context.Background(), ev); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	msgs := kafkatest.Consume(t, c.ListenAddrs(), len(evs), 30*time.Second)
	kafkatest.CheckDelivery(t, msgs, evs)
	for _, m := range msgs {
		if m.Headers["schema"] != "ocsf/1.8.0" || m.Headers["sensor-version"] != "9.9.9" {
			t.Fatalf("headers %v", m.Headers)
		}
	}
}
