package claude

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// A real transcript of Claude Code 2.1.332 (Bash, Read and Write calls
// against the scripted API; bulky attachment records dropped).
func TestTranscriptCaptured(t *testing.T) {
	tr := NewTranscript("testdata/transcript-2.1.332.jsonl", 0)
	if err := tr.Poll(context.Background()); err != nil {
		t.Fatal(err)
	}
	calls := tr.Calls()
	want := []ToolCall{
		{ID: "toolu_fake_obs2_00", Name: "Bash", Command: "grep -c toolu_fake_obs2_00 $HOME/.claude/projects/*/$CLAUDE_CODE_SESSION_ID.jsonl; echo pid=$$ ppid=$PPID; sleep 1", Seq: 0, Done: true},
		{ID: "toolu_fake_obs2_01", Name: "Read", Path: "/etc/os-release", Seq: 1, Done: true},
		{ID: "toolu_fake_obs2_02", Name: "Write", Path: "/tmp/obs/work/w2.txt", Seq: 2, Done: true},
	}
	if len(calls) != len(want) {
		t.Fatalf("calls %+v", calls)
	}
	for i := range want {
		if want[i].Command != "" {
			want[i].CommandLen = len(want[i].Command)
			want[i].cmdSum, want[i].cmdTrimSum = payloadSums(want[i].Command)
		}
		if calls[i] != want[i] {
			t.Errorf("call %d = %+v, want %+v", i, calls[i], want[i])
		}
	}
	st := tr.Stats()
	if st.Malformed != 0 || st.Oversized != 0 || st.ToolCalls != 3 || st.Lines == 0 {
		t.Errorf("stats %+v", st)
	}
	// Polling again reads nothing new.
	if err := tr.Poll(context.Background()); err != nil || tr.Stats() != st {
		t.Errorf("second poll changed stats: %v %+v", err, tr.Stats())
	}
}

const toolLine = `{"type":"assistant","message":{"role":"assistant","content":[{"type":"tool_use","id":"toolu_1","name":"Bash","input":{"command":"ls"}}]}}`

func TestTranscriptHostile(t *testing.T) {
	tr := NewTranscript("unused", 256)
	tr.Feed([]byte("not json\n{\"type\":\n[1,2]\n\n"))
	tr.Feed([]byte(`{"type":"assistant","message":{"content":"plain string"}}` + "\n"))
	tr.Feed([]byte(`{"type":"assistant","message":{"content":[{"type":"tool_use","id":5}]}}` + "\n"))
	// An oversized line, in pieces, is skipped without being buffered, and
	// the next line still parses.
	tr.Feed([]byte(`{"type":"assistant","x":"` + strings.Repeat("A", 200)))
	tr.Feed([]byte(strings.Repeat("B", 200)))
	if len(tr.partial) > 256 {
		t.Fatalf("buffered %d bytes past the bound", len(tr.partial))
	}
	tr.Feed([]byte("C\"}\n" + toolLine[:30]))
	tr.Feed([]byte(toolLine[30:] + "\n"))
	// A huge line in a single chunk too.
	tr.Feed([]byte(strings.Repeat("D", 1000) + "\n"))
	st := tr.Stats()
	if st.Malformed != 4 {
		t.Errorf("malformed %d, want 4 (%+v)", st.Malformed, st)
	}
	if st.Oversized != 2 {
		t.Errorf("oversized %d, want 2", st.Oversized)
	}
	calls := tr.Calls()
	if len(calls) != 1 || calls[0].ID != "toolu_1" || calls[0].Command != "ls" {
		t.Fatalf("calls %+v", calls)
	}
	// A duplicate record (Claude Code rewrites on resume) is not a new call.
	tr.Feed([]byte(toolLine + "\n"))
	if len(tr.Calls()) != 1 {
		t.Error("duplicate tool_use counted twice")
	}
	tr.Feed([]byte(`{"type":"user","message":{"role":"user","content":[{"type":"tool_result","tool_use_id":"toolu_1"}]}}` + "\n"))
	if !tr.Calls()[0].Done {
		t.Error("tool_result not noticed")
	}
}

func TestTranscriptMissingThenAppended(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "s.jsonl")
	tr := NewTranscript(p, 0)
	defer tr.Close()
	if err := tr.Poll(context.Background()); err == nil {
		t.Fatal("missing file not reported")
	}
	if tr.Stats().OpenErrs != 1 {
		t.Errorf("open errors %d", tr.Stats().OpenErrs)
	}
	f, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	f.WriteString(toolLine[:40])
	if err := tr.Poll(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(tr.Calls()) != 0 {
		t.Fatal("half a line parsed")
	}
	f.WriteString(toolLine[40:] + "\n")
	if err := tr.Poll(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(tr.Calls()) != 1 {
		t.Fatalf("appended call not read: %+v", tr.Stats())
	}
}

func TestTranscriptTruncated(t *testing.T) {
	p := filepath.Join(t.TempDir(), "s.jsonl")
	os.WriteFile(p, []byte(toolLine+"\n"+strings.Repeat(" ", 500)+"\n"), 0o600)
	tr := NewTranscript(p, 0)
	defer tr.Close()
	if err := tr.Poll(context.Background()); err != nil || len(tr.Calls()) != 1 {
		t.Fatalf("%v %+v", err, tr.Calls())
	}
	other := strings.ReplaceAll(toolLine, "toolu_1", "toolu_2")
	os.WriteFile(p, []byte(other+"\n"), 0o600) // shorter than what was read
	if err := tr.Poll(context.Background()); err != nil {
		t.Fatal(err)
	}
	if c := tr.Calls(); len(c) != 2 || c[1].ID != "toolu_2" {
		t.Fatalf("after truncation %+v", c)
	}
}

func TestTranscriptRefusesFIFOAndSymlink(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo.jsonl")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := NewTranscript(fifo, 0).Poll(context.Background()); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("fifo: %v", err)
	}
	target := filepath.Join(dir, "secret")
	os.WriteFile(target, []byte(toolLine+"\n"), 0o600)
	link := filepath.Join(dir, "link.jsonl")
	os.Symlink(target, link)
	tr := NewTranscript(link, 0)
	if err := tr.Poll(context.Background()); err == nil {
		t.Error("symlink followed")
	}
	if len(tr.Calls()) != 0 {
		t.Error("read through a symlink")
	}
}

func TestTranscriptSession(t *testing.T) {
	id, ok := TranscriptSession("/root/.claude/projects/-tmp-obs-work/634a8a3c-632e-4930-9f55-11663681db9e.jsonl")
	if !ok || id != "634a8a3c-632e-4930-9f55-11663681db9e" {
		t.Errorf("got %q %v", id, ok)
	}
	for _, p := range []string{
		"/root/.claude/projects/x/634a8a3c-632e-4930-9f55-11663681db9e/subagents/agent-1.jsonl",
		"/root/.claude/projects/634a8a3c-632e-4930-9f55-11663681db9e.jsonl",
		"/tmp/634a8a3c-632e-4930-9f55-11663681db9e.jsonl",
		"/root/.claude/projects/x/not-a-uuid.jsonl",
	} {
		if _, ok := TranscriptSession(p); ok {
			t.Errorf("%s taken for a transcript", p)
		}
	}
}

func FuzzTranscript(f *testing.F) {
	b, err := os.ReadFile("testdata/transcript-2.1.332.jsonl")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b, uint16(100))
	f.Add([]byte(toolLine+"\n"+toolLine), uint16(7))
	f.Add([]byte("\n\n{\n"), uint16(1))
	f.Fuzz(func(t *testing.T, data []byte, chunk uint16) {
		const max = 512
		tr := NewTranscript("unused", max)
		step := int(chunk)%97 + 1
		for i := 0; i < len(data); i += step {
			tr.Feed(data[i:min(i+step, len(data))])
			if len(tr.partial) > max {
				t.Fatalf("partial %d > bound", len(tr.partial))
			}
		}
		// Chunking must not change what is parsed.
		whole := NewTranscript("unused", max)
		whole.Feed(data)
		a, b := tr.Calls(), whole.Calls()
		if len(a) != len(b) {
			t.Fatalf("chunked %d calls, whole %d", len(a), len(b))
		}
		st := tr.Stats()
		if st.Malformed > st.Lines {
			t.Fatalf("stats %+v", st)
		}
		// Every record ends at a newline, except an oversized last line
		// counted before its end arrives.
		if lines := uint64(bytes.Count(data, []byte("\n"))); st.Lines+st.Oversized > lines+1 {
			t.Fatalf("more records than lines: %+v, %d", st, lines)
		}
	})
}

// Every file event of the agent process polls the transcript, often many
// times while it waits for a tool call: a poll that finds nothing new
// reads nothing and allocates nothing.
func TestTranscriptIdlePollAllocatesNothing(t *testing.T) {
	p := filepath.Join(t.TempDir(), "t.jsonl")
	if err := os.WriteFile(p, []byte(`{"type":"user"}`+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tr := NewTranscript(p, 0)
	defer tr.Close()
	if err := tr.Poll(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := testing.AllocsPerRun(200, func() { _ = tr.Poll(context.Background()) }); n > 1 {
		t.Errorf("an idle poll allocates %.0f times", n)
	}
}
