package testevents

import (
	"bytes"
	"os"
	"testing"

	"github.com/lineaged/lineaged/lineage/event"
	"github.com/lineaged/lineaged/sink/internal/schematest"
)

// HostileStrings are the byte strings a strict consumer has rejected or
// could: invalid bytes, UTF-8-encoded surrogates, truncated sequences,
// controls, U+2028/U+2029, quotes and backslashes. The fuzz tests start
// from them too.
var HostileStrings = []string{
	"", "plain", "\xff", "\xfe\xff", "a\x00b\n\x1b", "\xed\xa0\x80", "\xed\xbf\xbf", "\xed\xa0\x80\xed\xb0\x80",
	"\u2028", "\u2029", "é\xc3", "\xf0\x9f\x98", "\xf4\x90\x80\x80", "\xc0\xaf", "\"\\", "\x7f", "'",
	"it's 'quoted'", "\\udcff", "\U0001F600",
}

// StrictCorpus checks that every line the encoder writes is I-JSON
// (schematest.IJSON), in Go and through Python's json.loads with a strict
// UTF-8 encode: the lines of the golden files at paths, the golden events
// encoded afresh, and events carrying each of HostileStrings in argv, exe,
// cwd, file paths and tool input.
func StrictCorpus(t *testing.T, enc Appender, paths ...string) int {
	t.Helper()
	var lines [][]byte
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range bytes.Split(b, []byte("\n")) {
			if len(l) > 0 {
				lines = append(lines, l)
			}
		}
	}
	add := func(ev *event.Event) {
		b, err := enc.Append(nil, ev)
		if err != nil {
			t.Fatalf("%s: %v", ev.Kind, err)
		}
		lines = append(lines, b)
	}
	for i, k := range Kinds {
		add(New(k, uint64(i+1), "5f0c7c1e-3b7a-4a51-9d7e-2c1e0b9a8f77"))
		add(Filled(k, false))
		add(Filled(k, true))
	}
	for i, s := range HostileStrings {
		for _, k := range []string{event.KindProcessExec, event.KindFileRename, event.KindAgentToolCall} {
			ev := New(k, uint64(i+1), "s")
			if ev.Process != nil {
				ev.Process.Argv = []string{"sh", "-c", s, s + s}
				ev.Process.Exe = "/tmp/" + s
				ev.Process.Cwd = s
			}
			if len(ev.Ancestry) > 0 {
				ev.Ancestry[0].Argv = []string{s}
			}
			if ev.File != nil {
				ev.File.Path, ev.File.NewPath = "/a/"+s, "/b/"+s
			}
			if ev.Tool != nil {
				ev.Tool.Input = map[string]string{s: s}
			}
			add(ev)
		}
	}
	for i, l := range lines {
		if err := schematest.IJSON(l); err != nil {
			t.Errorf("line %d is not I-JSON: %v\n%.300s", i+1, err, l)
		}
	}
	n, err := schematest.PythonIJSON(lines)
	if err != nil {
		t.Fatal(err)
	}
	if n != len(lines) {
		t.Fatalf("python checked %d lines of %d", n, len(lines))
	}
	return n
}
