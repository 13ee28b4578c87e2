package main

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/lineaged/lineaged/lineage"
	"github.com/lineaged/lineaged/lineage/event"
	"github.com/lineaged/lineaged/sensor"
)

func decodeEventsSamples() []sensor.Event {
	sess := sensor.SessionRef{Root: sensor.ProcKey{PID: 10, StartNs: 1 << 40}, Agent: sensor.AgentClaudeCode}
	return []sensor.Event{
		{Header: sensor.Header{Kind: sensor.KindExec, KtimeNs: 1<<63 + 5, Proc: sensor.ProcKey{PID: 4294967295, StartNs: 7}, TID: 3, CPU: 1, Session: sess},
			Exec: &sensor.Exec{Parent: sensor.ProcKey{PID: 1}, UID: 1000, EUID: 0, LoginUID: 4294967295, CgroupID: 1<<64 - 1,
				Comm: "true", Filename: "/bin/true", Exe: "/usr/bin/true", Argv: []string{"/bin/true", "héllo wörld", "日本", ""},
				Binary:     sensor.FileStat{Dev: 65024, Inode: 9, Size: -1, MtimeNs: -9223372036854775808, CtimeNs: 9223372036854775807},
				Recognised: sensor.AgentGemini, ParentSession: sess, Flags: sensor.ExecExeDeleted | sensor.ExecArgvTruncated, ArgvTruncated: true}},
		{Header: sensor.Header{Kind: sensor.KindExec}, Exec: &sensor.Exec{Argv: []string{}}},
		{Header: sensor.Header{Kind: sensor.KindExec}, Exec: &sensor.Exec{}},
		{Header: sensor.Header{Kind: sensor.KindFork}, Fork: &sensor.Fork{Parent: sensor.ProcKey{PID: 2, StartNs: 3}}},
		{Header: sensor.Header{Kind: sensor.KindFork, Session: sess}, Fork: &sensor.Fork{Parent: sensor.ProcKey{PID: 2, StartNs: 3}, Untracked: true}},
		{Header: sensor.Header{Kind: sensor.KindExit}, Exit: &sensor.Exit{Code: -2147483648, Signal: 9, CoreDumped: true, RepeatedOpens: 4}},
		{Header: sensor.Header{Kind: sensor.KindRename}, File: &sensor.File{Op: sensor.FileRename, Path: "/a", NewPath: "/b", PathTruncated: true,
			PathUnresolved: true, Flags: 0o2000000, Mode: 0o644, Created: true, Result: -13, IA32: true, RawPath: "/proc/self/fd/3/a",
			NewRawPath: "/proc/self/cwd/b", PathAsGiven: true, NameChanged: true, NameUnreadable: true, AtEntry: true, ByHandle: true,
			Dev: 1, Ino: 2, MountID: -3, Syscall: 65535, Length: -4, UID: -1, GID: 5, Rdev: 6, Target: "t", Xattr: "user.x"}},
		{Header: sensor.Header{Kind: sensor.KindOpen}, File: &sensor.File{Op: sensor.FileOpen, Path: "/etc/ld.so.cache", Result: 3}},
	}
}

func decodeFactSamples() []lineage.Fact {
	verified, verifiedAt := true, time.Date(2026, 12, 4, 20, 32, 55, 401290108, time.UTC)
	return []lineage.Fact{
		{Kind: lineage.FactEnv, Key: "42/CLAUDECODE", Str: "1", OK: true},
		{Kind: lineage.FactEnv, Key: "42/X", Err: "process gone", Gone: true},
		{Kind: lineage.FactClock, Time: time.Date(2026, 12, 3, 9, 0, 0, 123456789, time.UTC)},
		{Kind: lineage.FactClock, Time: time.Date(2026, 12, 3, 9, 0, 0, 0, time.FixedZone("x", 3600))},
		{Kind: lineage.FactObsExec, N: 1 << 62, Agent: &event.Agent{Name: "claude-code", Version: "2.1", SessionID: "s", RootExecID: "r",
			Role: "descendant", SessionIDHint: true, ParentRootExecID: "p"}, Resolve: true, Late: true},
		{Kind: lineage.FactResolved, N: 3, Agent: &event.Agent{}},
		{Kind: lineage.FactObsFile, N: 9, Agent: &event.Agent{Name: "claude-code", Version: "2.1.332", SessionID: "s", RootExecID: "r",
			Role: "tool", ToolUse: &event.ToolUse{ID: "toolu_1", Name: "Bash", Attribution: "transcript", NoHookDecision: true},
			Via: event.ViaUsermodeHelper, Verified: &verified, Verification: "hash-list",
			VerifiedAt: &verifiedAt, Release: "2.1.332"}},
		{Kind: lineage.FactObsExec, N: 10, Agent: &event.Agent{Name: "claude-code", RootExecID: "r", Role: "tool",
			ToolUse: &event.ToolUse{ID: "toolu_1", Name: "Bash"}, Verified: new(bool)}},
		{Kind: lineage.FactCgroup, Key: "1", Str: "/", OK: true},
		{Kind: lineage.FactCached, Key: "/usr/bin/true|1:2:3:4:5", OK: true, Binary: &event.Binary{Path: "/usr/bin/true", SHA256: "c79b",
			Size: 35664, Inode: 247849, Dev: 65024, Mtime: time.Date(2022, 9, 20, 15, 27, 27, 0, time.UTC), Verdict: "package-verified",
			Package: "coreutils", Signer: "s", KeyID: "k", Reason: "r"}},
		{Kind: lineage.FactBinary, Key: "/x|pid:3", Binary: &event.Binary{Path: "/x", Verdict: "unknown"}},
	}
}

// The fast decoders take the records encoding/json writes and give what
// encoding/json gives for them.
func TestFastDecodeMatchesJSON(t *testing.T) {
	for i, ev := range decodeEventsSamples() {
		b, err := json.Marshal(&ev)
		if err != nil {
			t.Fatal(err)
		}
		got, ok := fastEvent(b, &interner{})
		if !ok {
			t.Fatalf("event %d: the fast path gave up on %s", i, b)
		}
		var want sensor.Event
		if err := json.Unmarshal(b, &want); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(*got, want) {
			t.Fatalf("event %d: fast %+v\njson %+v", i, *got, want)
		}
	}
	for i, f := range decodeFactSamples() {
		b, err := json.Marshal(f)
		if err != nil {
			t.Fatal(err)
		}
		got, ok := fastFactValue(b)
		if !ok {
			t.Fatalf("fact %d: the fast path gave up on %s", i, b)
		}
		var want lineage.Fact
		if err := json.Unmarshal(b, &want); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("fact %d: fast %+v\njson %+v", i, got, want)
		}
	}
}

// One decoder reused over records that repeat (interned strings, cached
// agent attributions) decodes each as encoding/json does, every time, and
// shares no agent between facts.
func TestRecordDecoderRepeats(t *testing.T) {
	d := newRecordDecoder()
	agents := map[*event.Agent]bool{}
	shared := map[any]bool{} // an agent's tool call and verification, by pointer
	for round := range 3 {
		for i, ev := range decodeEventsSamples() {
			b, _ := json.Marshal(&ev)
			got, err := d.event(b)
			var want sensor.Event
			if err != nil || json.Unmarshal(b, &want) != nil || !reflect.DeepEqual(*got, want) {
				t.Fatalf("round %d, event %d: %v %+v", round, i, err, got)
			}
		}
		for i, f := range decodeFactSamples() {
			b, _ := json.Marshal(f)
			var got lineage.Fact
			err := d.fact(b, &got)
			var want lineage.Fact
			if err != nil || json.Unmarshal(b, &want) != nil || !reflect.DeepEqual(got, want) {
				t.Fatalf("round %d, fact %d: %v\nfast %+v\njson %+v", round, i, err, got, want)
			}
			if a := got.Agent; a != nil {
				if agents[a] {
					t.Fatalf("round %d, fact %d: an agent shared with another fact", round, i)
				}
				agents[a] = true
				for _, p := range []any{a.ToolUse, a.Verified, a.VerifiedAt} {
					if !reflect.ValueOf(p).IsNil() && shared[p] {
						t.Fatalf("round %d, fact %d: the agent's %T shared with another fact", round, i, p)
					}
					shared[p] = true
				}
			}
		}
	}
	// The cache is keyed by the whole object: a prefix of a known one,
	// or one with a tool call, is not it.
	var f lineage.Fact
	if err := d.fact([]byte(`{"f":"agent.exec","n":1,"agent":{"name":"claude-code","tool_use":{"id":"x"}}}`), &f); err != nil ||
		f.Agent == nil || f.Agent.Name != "claude-code" || f.Agent.ToolUse == nil || f.Agent.ToolUse.ID != "x" {
		t.Fatalf("tool call: %v %+v", err, f.Agent)
	}
}

// What the fast path does not handle goes to encoding/json: the record
// decodes (or fails) exactly as before.
func TestFastDecodeGivesUp(t *testing.T) {
	for _, s := range []string{
		`{"Kind":1,"Exec":{"Comm":"a\"b"}}`,            // escape
		`{"Kind":1,"Exec":{"Comm":"a` + "\xff" + `"}}`, // invalid UTF-8
		`{"kind":1}`,                            // other case
		`{"Kind":256}`,                          // out of range
		`{"Kind":1.0}`,                          // fraction
		`{"Kind":01}`,                           // leading zero
		`{"Kind":-1}`,                           // sign on unsigned
		`{"Kind":9,"Connect":{"Protocol":6}}`,   // rare kind
		`{"Kind":1,"Proc":null}`,                // null into a value
		`{"Kind":1} x`,                          // trailing data
		`{"Kind":1,}`,                           // syntax
		`{"Kind":1,"Exit":{"Code":2147483648}}`, // int32 overflow
		`{"Kind":1,"Exec":{"Argv":["a",1]}}`,    // wrong type
		`{"Kind":1,"Unknown":1}`,                // unknown field
		`{"Kind":1,"Exec":{"Binary":{"Size":-9223372036854775809}}}`, // int64 underflow
	} {
		if _, ok := fastEvent([]byte(s), &interner{}); ok {
			t.Errorf("fast event decoder took %s", s)
		}
		fast, fastErr := newRecordDecoder().event([]byte(s))
		var want sensor.Event
		jsonErr := json.Unmarshal([]byte(s), &want)
		if (fastErr == nil) != (jsonErr == nil) || (jsonErr == nil && !reflect.DeepEqual(*fast, want)) {
			t.Errorf("%s: event decoder %v, %v; encoding/json %v", s, fast, fastErr, jsonErr)
		}
	}
	for _, s := range []string{
		`{"f":"binary.cached","bin":{"path":"/x","mtime":"yesterday"}}`,
		`{"f":"binary.cached","bin":{"Path":"/x"}}`,
		`{"f":"proc","proc":{"PID":1}}`,
		`{"f":"agent.exec","agent":{"name":"c","tool_use":{"id":"t","input":{}}}}`,
		`{"f":"agent.exec","agent":{"name":"c","tool_use":[]}}`,
		`{"f":"agent.exec","agent":{"name":"c","verified":"yes"}}`,
		`{"f":"agent.exec","agent":{"name":"c","verified_at":"today"}}`,
		`{"f":"agent.exec","agent":{"name":"c","Verified":true}}`,
		`{"f":"clock","t":"not a time"}`,
		`{"f":"clock","t":null}`,
		`{"F":"env"}`,
	} {
		if _, ok := fastFactValue([]byte(s)); ok {
			t.Errorf("fast fact decoder took %s", s)
		}
	}
}

// Whatever the bytes, a record the fast path takes decodes the same with
// encoding/json.
func FuzzFastDecode(f *testing.F) {
	for _, ev := range decodeEventsSamples() {
		b, _ := json.Marshal(&ev)
		f.Add(b)
	}
	for _, fa := range decodeFactSamples() {
		b, _ := json.Marshal(fa)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if got, ok := fastEvent(b, &interner{}); ok {
			var want sensor.Event
			if err := json.Unmarshal(b, &want); err != nil {
				t.Fatalf("fast path took %q, encoding/json: %v", b, err)
			}
			if !reflect.DeepEqual(*got, want) {
				t.Fatalf("%q: fast %+v, json %+v", b, *got, want)
			}
		}
		if got, ok := fastFactValue(b); ok {
			var want lineage.Fact
			if err := json.Unmarshal(b, &want); err != nil {
				t.Fatalf("fast path took %q, encoding/json: %v", b, err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("%q: fast %+v, json %+v", b, got, want)
			}
		}
	})
}

// fastFactValue is fastFact into a new Fact, with an interner of its own.
func fastFactValue(b []byte) (lineage.Fact, bool) {
	var f lineage.Fact
	if !fastFact(b, &interner{}, &f) {
		return lineage.Fact{}, false
	}
	return f, true
}
