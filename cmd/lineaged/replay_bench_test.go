package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/lineaged/lineaged/capture"
	"github.com/lineaged/lineaged/lineage"
	"github.com/lineaged/lineaged/lineage/event"
	"github.com/lineaged/lineaged/sensor"
)

// stormRecords is the records of a storm capture of n execs of /bin/true
// in an agent session, as `run --capture` writes them (docs/performance.md:
// about six records per event): per exec its exec, two opens and exit, six
// env lookups, three agent attributions and their completions, cwd, user,
// cgroup and binary lookups and the clock readings.
func stormRecords(tb testing.TB, n int) []capture.Record {
	tb.Helper()
	var recs []capture.Record
	add := func(typ capture.Type, v any) {
		b, err := json.Marshal(v)
		if err != nil {
			tb.Fatal(err)
		}
		recs = append(recs, capture.Record{Type: typ, Payload: b})
	}
	t0 := time.Date(2026, 12, 3, 19, 3, 57, 146109166, time.UTC)
	root := sensor.ProcKey{PID: 3856, StartNs: 10392490000000}
	sess := sensor.SessionRef{Root: root, Agent: sensor.AgentClaudeCode}
	ag := func(role string) *event.Agent {
		return &event.Agent{Name: "claude-code", Version: "2.1.332", RootExecID: "a3ec9f6d835b8325f53f3e98b87597f6", Role: role}
	}
	obs := uint64(0)
	for i := range n {
		pid := uint32(4000 + i)
		key := sensor.ProcKey{PID: pid, StartNs: 10392500000000 + uint64(i)*1000}
		kt := key.StartNs + 100
		hdr := func(k sensor.Kind) sensor.Header {
			kt += 1000
			return sensor.Header{Kind: k, KtimeNs: kt, Proc: key, TID: pid, CPU: uint32(i % 2), Session: sess}
		}
		add(capture.TypeEvent, sensor.Event{Header: hdr(sensor.KindExec), Exec: &sensor.Exec{Parent: root, LoginUID: 4294967295,
			AuditSessionID: 4294967295, CgroupID: 1, Comm: "true", Filename: "/bin/true", Exe: "/usr/bin/true", Argv: []string{"/bin/true"},
			Binary:        sensor.FileStat{Dev: 65024, Inode: 247849, Size: 35664, MtimeNs: 1663687647000000000, CtimeNs: 1796314283389490603},
			ParentSession: sess}})
		for _, v := range []string{"CLAUDE_CODE_SESSION_ID", "CLAUDECODE", "CLAUDE_CODE_ENTRYPOINT", "SSH_CONNECTION", "SUDO_USER", "LOGNAME"} {
			add(capture.TypeFact, lineage.Fact{Kind: lineage.FactEnv, Key: fmt.Sprintf("%d/%s", pid, v),
				Err: fmt.Sprintf("procfs: pid %d: process gone", pid), Gone: true})
		}
		add(capture.TypeFact, lineage.Fact{Kind: lineage.FactCwd, Key: fmt.Sprint(pid), Err: fmt.Sprintf("readlink /proc/%d/cwd: no such file or directory", pid)})
		add(capture.TypeFact, lineage.Fact{Kind: lineage.FactCgroup, Key: "1", Str: "/", OK: true})
		add(capture.TypeFact, lineage.Fact{Kind: lineage.FactUser, Key: "0", Str: "root", OK: true})
		add(capture.TypeFact, lineage.Fact{Kind: lineage.FactCached, Key: "/usr/bin/true|65024:247849:35664:1663687647000000000:1796314283389490603"})
		obs++
		add(capture.TypeFact, lineage.Fact{Kind: lineage.FactObsExec, N: obs, Agent: ag("descendant")})
		add(capture.TypeFact, lineage.Fact{Kind: lineage.FactResolved, N: obs, Agent: ag("descendant")})
		for _, p := range []string{"/etc/ld.so.cache", "/lib/x86_64-linux-gnu/libc.so.6"} {
			add(capture.TypeEvent, sensor.Event{Header: hdr(sensor.KindOpen), File: &sensor.File{Op: sensor.FileOpen, Path: p, Flags: 0o2000000, Result: 3}})
			obs++
			add(capture.TypeFact, lineage.Fact{Kind: lineage.FactObsFile, N: obs, Agent: ag("descendant"), Resolve: true})
			add(capture.TypeFact, lineage.Fact{Kind: lineage.FactResolved, N: obs, Agent: ag("descendant")})
		}
		add(capture.TypeEvent, sensor.Event{Header: hdr(sensor.KindExit), Exit: &sensor.Exit{}})
		for range 4 {
			add(capture.TypeFact, lineage.Fact{Kind: lineage.FactClock, Time: t0.Add(time.Duration(kt))})
		}
	}
	return recs
}

// BenchmarkReplayDecode measures decoding a storm capture's records (the
// fast paths: raw events and facts) on one goroutine, per record.
func BenchmarkReplayDecode(b *testing.B) {
	recs := stormRecords(b, 1000)
	var size int64
	for _, r := range recs {
		size += int64(len(r.Payload))
	}
	b.SetBytes(size / int64(len(recs)))
	b.ReportAllocs()
	d := newRecordDecoder()
	var it item
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		it = item{}
		d.decode(recs[i%len(recs)], &it)
		if it.err != nil {
			b.Fatal(it.err)
		}
	}
}

// BenchmarkReplayLoad measures loading a storm capture of 2500 execs
// (10k events, 60k records) from its file: reading, decompressing,
// decoding on every CPU and filing the facts; per event.
func BenchmarkReplayLoad(b *testing.B) {
	const execs = 2500
	var buf bytes.Buffer
	w, err := capture.NewWriter(&buf, capture.Header{SensorVersion: "test", Host: "h", Kernel: "k", Meta: map[string]string{
		metaInstance: "00112233445566778899aabbccddeeff", metaSeqAfter: "0"}}, capture.WriterConfig{Interval: time.Hour})
	if err != nil {
		b.Fatal(err)
	}
	for _, r := range stormRecords(b, execs) {
		if err := w.Add(r.Type, r.Payload); err != nil {
			b.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		b.Fatal(err)
	}
	path := filepath.Join(b.TempDir(), "storm.lcap")
	if err := os.WriteFile(path, buf.Bytes(), 0o600); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		l, err := loadCapture(path, false)
		if err != nil {
			b.Fatal(err)
		}
		if len(l.steps) != 4*execs {
			b.Fatalf("%d steps", len(l.steps))
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*4*execs), "ns/event")
}
