package kafka

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lineaged/lineaged/lineage/event"
	"github.com/lineaged/lineaged/sink/internal/kafkatest"
	"github.com/lineaged/lineaged/sink/internal/schematest"
	"github.com/lineaged/lineaged/sink/internal/testevents"
	"github.com/lineaged/lineaged/sink/native"
	"github.com/lineaged/lineaged/sink/ocsf"
)

// produce writes evs through a real sink to a fresh kfake broker and
// returns the broker address.
func produce(t *testing.T, enc Encoder, compression string, evs []*event.Event) string {
	t.Helper()
	c := kafkatest.Cluster(t)
	cfg := baseConfig(t, c.ListenAddrs())
	cfg.Compression = compression
	s, err := New(cfg, enc, nil, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range evs {
		if err := s.Write(context.Background(), ev); err != nil {
			t.Fatal(err)
		}
	}
	flush(t, s)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	return c.ListenAddrs()[0]
}

func mixedEvents() []*event.Event {
	evs := testevents.All()
	hostile := testevents.New(event.KindProcessExec, 100, "s")
	hostile.Process.Argv = []string{"sh", "-c", "echo \xff\xfe\x1b[0m"}
	hostile.Process.Exe = "/tmp/\x80x"
	return append(append(evs, hostile), kafkatest.Events(200, 100, 3)...)
}

// kcat (librdkafka) reads every message, all of them parse and validate.
func TestKcatConsumesEveryEvent(t *testing.T) {
	kcat, err := exec.LookPath("kcat")
	if err != nil {
		t.Fatalf("kcat is required (apt-get install kcat): %v", err)
	}
	schema, err := schematest.Native()
	if err != nil {
		t.Fatal(err)
	}
	for _, comp := range []string{"zstd", "lz4", "snappy", "gzip"} {
		t.Run(comp, func(t *testing.T) {
			evs := mixedEvents()
			addr := produce(t, native.Encoder{}, comp, evs)
			// -J: one JSON envelope per message (key, headers, payload);
			// -e: exit at the end of the topic, which is the marker here.
			cmd := exec.Command(kcat, "-C", "-b", addr, "-t", kafkatest.Topic, "-o", "beginning", "-e", "-J", "-q")
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			out, err := cmd.Output()
			if err != nil {
				t.Fatalf("kcat: %v\n%s", err, stderr.String())
			}
			ids := map[string]bool{}
			for _, line := range bytes.Split(bytes.TrimSpace(out), []byte("\n")) {
				var env struct {
					Key     string   `json:"key"`
					Payload string   `json:"payload"`
					Headers []string `json:"headers"`
				}
				if err := json.Unmarshal(line, &env); err != nil {
					t.Fatalf("kcat envelope: %v: %s", err, line)
				}
				if err := schematest.Validate(schema, []byte(env.Payload)); err != nil {
					t.Fatalf("payload from kcat: %v", err)
				}
				if !strings.Contains(strings.Join(env.Headers, ","), "schema,"+event.Schema) {
					t.Fatalf("headers %v", env.Headers)
				}
				var ev struct {
					EventID string `json:"event_id"`
				}
				json.Unmarshal([]byte(env.Payload), &ev)
				ids[ev.EventID] = true
			}
			for _, ev := range evs {
				if !ids[ev.EventID] {
					t.Fatalf("kcat did not see %s (%s); saw %d events", ev.EventID, ev.Kind, len(ids))
				}
			}
		})
	}
}

// kafka-python reads the topic through a consumer group, every value parses
// with json.loads as strict UTF-8, and the hostile bytes come back exactly
// from invalid_utf8_base64.
func TestPythonKafkaConsumesEveryEvent(t *testing.T) {
	py := "/usr/bin/python3" // Debian's interpreter, where python3-kafka is installed
	if err := exec.Command(py, "-c", "import kafka").Run(); err != nil {
		t.Fatalf("python3-kafka is required (apt-get install python3-kafka): %v", err)
	}
	for _, format := range []string{"native", "ocsf"} {
		t.Run(format, func(t *testing.T) {
			var enc Encoder = native.Encoder{}
			if format == "ocsf" {
				enc = ocsf.Encoder{ProductVersion: "0.1.0"}
			}
			evs := mixedEvents()
			// kafka-python has gzip built in; the other codecs need
			// modules Debian does not install with it.
			addr := produce(t, enc, "gzip", evs)
			const script = `
import json, sys, base64
from kafka import KafkaConsumer
addr, topic, want = sys.argv[1], sys.argv[2], int(sys.argv[3])
c = KafkaConsumer(topic, bootstrap_servers=[addr], group_id="py-test",
                  auto_offset_reset="earliest", consumer_timeout_ms=20000,
                  api_version=(2, 5, 0))
seen = {}
for msg in c:
    ev = json.loads(msg.value.decode("utf-8"))
    lin = ev.get("unmapped", {}).get("lineaged", ev)
    eid = lin["event_id"]
    exe = (ev.get("process") or {}).get("exe")
    if exe is None:
        exe = (ev.get("process") or {}).get("path")
    exact = {e["value"]: e["base64"] for e in lin.get("invalid_utf8_base64", [])}
    seen[eid] = (exact.get(exe) or base64.b64encode(exe.encode("utf-8")).decode()) if exe else ""
    if len(seen) >= want:
        break
c.close()
for k, v in seen.items():
    print(k, "b64:" + v)
`
			cmd := exec.Command(py, "-c", script, addr, kafkatest.Topic, strconv.Itoa(len(evs)))
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			done := make(chan struct{})
			var out []byte
			var err error
			go func() { out, err = cmd.Output(); close(done) }()
			select {
			case <-done:
			case <-time.After(60 * time.Second):
				cmd.Process.Kill()
				<-done
				t.Fatalf("python consumer hung:\n%s", stderr.String())
			}
			if err != nil {
				t.Fatalf("python: %v\n%s", err, stderr.String())
			}
			got := map[string]string{}
			for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
				f := strings.SplitN(l, " ", 2)
				if len(f) == 2 {
					got[f[0]] = strings.TrimPrefix(f[1], "b64:")
				}
			}
			for _, ev := range evs {
				exe, ok := got[ev.EventID]
				if !ok {
					t.Fatalf("python did not see %s (%s); saw %d of %d", ev.EventID, ev.Kind, len(got), len(evs))
				}
				if format == "native" && ev.Process != nil {
					raw, _ := base64.StdEncoding.DecodeString(exe)
					if string(raw) != ev.Process.Exe {
						t.Errorf("%s: python decoded exe %q, want %q", ev.EventID, raw, ev.Process.Exe)
					}
				}
			}
		})
	}
}
