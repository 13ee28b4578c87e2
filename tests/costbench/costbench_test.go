//go:build linux

package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestStatTicks(t *testing.T) {
	// comm with a space and a parenthesis: fields count from the last ')'.
	line := "4242 (line aged) S 1 4242 4242 0 -1 4194560 100 0 0 0 123 45 0 0 20 0 9 0 1000 0 0"
	got, err := statTicks(line)
	if err != nil || got != 168 {
		t.Fatalf("statTicks = %d, %v; want 168", got, err)
	}
	if _, err := statTicks("4242 (x) S 1"); err == nil {
		t.Fatal("a short stat line parsed")
	}
}

func TestReadStorm(t *testing.T) {
	dir := t.TempDir()
	write := func(name, s string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("wall", "1700000000.250000 1700000003.500000\n")
	write("times", "0m0.010s 0m0.020s\n1m1.500s 0m2.250s\n")
	write("cpu0", "7 (lineaged) S 1 7 7 0 -1 0 0 0 0 0 300 200 0 0\n")
	r, err := readStorm(storm{n: 3, dir: dir, sensor: 7})
	if err != nil {
		t.Fatal(err)
	}
	if r.wall != 3250*time.Millisecond || r.cpu != 63750*time.Millisecond || r.sensorCPU0 != 500 {
		t.Fatalf("readStorm = %+v", r)
	}
}

func TestScriptHidesMarker(t *testing.T) {
	s := storm{n: 5, dir: "/d", nonce: "123", sensor: 9}
	sc := s.script()
	// Every storm exec carries the command in its ancestry: the marker
	// must appear only in the output of the exec that ends the storm.
	if strings.Contains(sc, s.marker()) {
		t.Fatalf("script %q holds the marker %q", sc, s.marker())
	}
	for _, want := range []string{"/proc/9/stat", "-lt 5", "/d/gate", `"costbench-end-""123"`} {
		if !strings.Contains(sc, want) {
			t.Errorf("script %q lacks %q", sc, want)
		}
	}
}

func TestTally(t *testing.T) {
	var tl tally
	exec := `{"kind":"process.exec","process":{"exe":"/usr/bin/true","argv":["/bin/true"]},"agent":{"root_exec_id":"r1","role":"tool"},` +
		`"ancestry":[{"exec_id":"sh"},{"exec_id":"r1"},{"exec_id":"go","argv":["go","run"]},{"exec_id":"init"}]}`
	for _, l := range []string{
		`{"kind":"process.exec","process":{"exec_id":"r1","pid":42,"exe":"/c/claude.exe","argv":["claude"]},"agent":{"root_exec_id":"r1","role":"root"}}`,
		exec,
		`{"kind":"process.exec","process":{"exe":"/usr/bin/true","argv":["/bin/true","costbench-end-1"]},"agent":{"root_exec_id":"r1","role":"tool"}}`,
		`{"kind":"file.open","process":{"exe":"/usr/bin/true","argv":["/bin/true"]},"agent":{"root_exec_id":"r1","role":"tool"},"partial":["ancestry"]}`,
		// Another session on the host: not counted as the storm's.
		`{"kind":"process.exec","process":{"exec_id":"r2","pid":43,"exe":"/c/claude.exe","argv":["claude"]},"agent":{"root_exec_id":"r2","role":"root"}}`,
		`{"kind":"process.exec","process":{"exe":"/usr/bin/true","argv":["/bin/true"]},"agent":{"root_exec_id":"r2","role":"tool"},"partial":["ancestry"]}`,
		`{"kind":"sensor.loss","loss":{"where":"ringbuf","count":7}}`,
		`not json`,
		``,
	} {
		tl.add([]byte(l))
	}
	tl.summarize([]stormResult{{pid: 42}})
	if tl.events != 7 || tl.stormExecs != 1 || tl.partialAncestr != 1 || tl.lossEvents != 1 || tl.lossCount != 7 ||
		tl.undecodable != 1 || tl.otherSessions != 1 || tl.otherEvents != 2 {
		t.Fatalf("tally = %+v", tl)
	}
	if len(tl.execSizes) != 1 || tl.execSizes[0] != len(exec) {
		t.Fatalf("exec sizes %v", tl.execSizes)
	}
	// Above the root r1: the two last entries, each with its comma.
	want := ancestorsAbove{n: 2, bytes: len(`{"exec_id":"go","argv":["go","run"]}`) + len(`{"exec_id":"init"}`) + 2}
	if len(tl.aboveRoot) != 1 || tl.aboveRoot[0] != want {
		t.Fatalf("above the root %+v, want %+v", tl.aboveRoot, want)
	}
}

func TestAboveRoot(t *testing.T) {
	raw := func(s ...string) []json.RawMessage {
		var r []json.RawMessage
		for _, e := range s {
			r = append(r, json.RawMessage(e))
		}
		return r
	}
	// The root last (events.ancestry: session), or not in the ancestry.
	for _, a := range [][]json.RawMessage{raw(`{"exec_id":"sh"}`, `{"exec_id":"r"}`), raw(`{"exec_id":"sh"}`), nil} {
		if got := above(a, "r"); got != (ancestorsAbove{}) {
			t.Errorf("above(%s) = %+v, want none", a, got)
		}
	}
}

func TestPercentile(t *testing.T) {
	v := make([]int, 100)
	for i := range v {
		v[i] = 100 - i
	}
	if p := percentile(v, 50); p != 50 {
		t.Errorf("median %d", p)
	}
	if p := percentile(v, 99); p != 99 {
		t.Errorf("p99 %d", p)
	}
	if p := percentile(nil, 99); p != 0 {
		t.Errorf("empty p99 %d", p)
	}
}

func TestLossMetric(t *testing.T) {
	for line, want := range map[string]string{
		"lineaged_sensor_kernel_lost_total 3":          "lineaged_sensor_kernel_lost_total",
		"lineaged_sensor_queue_drops_total 0":          "lineaged_sensor_queue_drops_total",
		`lineaged_sink_dropped_total{sink="kafka"} 2`:  "lineaged_sink_dropped_total",
		"lineaged_lineage_emitted_total 100":           "",
		"# HELP lineaged_sensor_kernel_lost_total x y": "",
	} {
		g := lossMetric.FindStringSubmatch(line)
		got := ""
		if g != nil {
			got = g[1]
		}
		if got != want {
			t.Errorf("%q: matched %q, want %q", line, got, want)
		}
	}
}

func TestTallyWindow(t *testing.T) {
	var tl tally
	for _, l := range []string{
		`{"kind":"process.exec","time":"2026-01-01T00:00:00Z","process":{"exec_id":"r1","pid":42,"exe":"/c/claude.exe"},"agent":{"root_exec_id":"r1","role":"root"}}`,
		`{"kind":"process.exec","time":"2026-01-01T00:00:05Z","process":{"exe":"/usr/bin/true","argv":["/bin/true"]},"agent":{"root_exec_id":"r1","role":"tool"}}`,
		`{"kind":"file.open","time":"2026-01-01T00:00:06Z","process":{"exe":"/x"},"agent":{"root_exec_id":"r2","role":"tool"}}`,
		`{"kind":"file.open","time":"2026-01-01T00:00:20Z","process":{"exe":"/x"},"agent":{"root_exec_id":"r2","role":"tool"}}`,
	} {
		tl.add([]byte(l))
	}
	start := time.Date(2026, 1, 1, 0, 0, 1, 0, time.UTC)
	tl.summarize([]stormResult{{pid: 42, start: start, end: start.Add(9 * time.Second)}})
	if tl.inWindow != 1 || tl.otherInWindow != 1 || tl.otherEvents != 2 || tl.stormExecs != 1 {
		t.Fatalf("tally = %+v", tl)
	}
}
