package main

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// recordedSession is the recorded output of a real session (make demo),
// written to a file of the test's.
func recordedSession(t *testing.T) string {
	t.Helper()
	f, err := os.Open("../../report/sessions/testdata/demo-session.jsonl.gz")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	z, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(z)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "events.jsonl")
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// lineaged sessions: the tree by default (no colours into a pipe), --json
// for scripts, --html writes a 0600 page, stdin with -, --session filters.
func TestSessionsCommand(t *testing.T) {
	events := recordedSession(t)
	var out, errb bytes.Buffer
	if code := realMain([]string{"sessions", events}, &out, &errb); code != exitOK {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	if !strings.HasPrefix(out.String(), "session ") || strings.Contains(out.String(), "\x1b[") || !strings.Contains(out.String(), "DENIED by demo-no-curl-upload") {
		t.Errorf("tree:\n%.500s", out.String())
	}
	out.Reset()
	if code := realMain([]string{"sessions", "--json", events}, &out, &errb); code != exitOK {
		t.Fatalf("--json: exit %d: %s", code, errb.String())
	}
	var r struct {
		Sessions []struct {
			SessionID string `json:"session_id"`
			ToolCalls []struct {
				Name string `json:"name"`
			} `json:"tool_calls"`
		} `json:"sessions"`
	}
	if err := json.Unmarshal(out.Bytes(), &r); err != nil || len(r.Sessions) != 1 || len(r.Sessions[0].ToolCalls) != 4 {
		t.Fatalf("--json: %v %+v", err, r)
	}
	page := filepath.Join(t.TempDir(), "s.html")
	if code := realMain([]string{"sessions", "--html", page, "--session", r.Sessions[0].SessionID[:8], events}, &out, &errb); code != exitOK {
		t.Fatalf("--html: exit %d: %s", code, errb.String())
	}
	if st, err := os.Stat(page); err != nil || st.Mode().Perm() != 0o600 || st.Size() < 10000 {
		t.Fatalf("page: %v %v", st, err)
	}
	errb.Reset()
	if code := realMain([]string{"sessions", "--session", "nope", events}, &out, &errb); code != exitRuntime ||
		!strings.Contains(errb.String(), `no session "nope"`) {
		t.Errorf("unknown session: exit %d, %q", code, errb.String())
	}
}

// Bad input exits non-zero with one line naming the file and the line.
func TestSessionsBadInput(t *testing.T) {
	dir := t.TempDir()
	good, _ := os.ReadFile(recordedSession(t))
	first := string(good[:bytes.IndexByte(good, '\n')+1])
	for name, body := range map[string]string{
		"notjson.jsonl":   first + "this is not json\n",
		"truncated.jsonl": first + first[:len(first)/2],
	} {
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte(body), 0o600)
		var out, errb bytes.Buffer
		code := realMain([]string{"sessions", p}, &out, &errb)
		msg := errb.String()
		if code != exitRuntime || !strings.HasPrefix(msg, "lineaged: "+p+":2: ") || strings.Count(msg, "\n") != 1 {
			t.Errorf("%s: exit %d, %q; want 1 and one line naming %s:2", name, code, msg, p)
		}
	}
	var out, errb bytes.Buffer
	if code := realMain([]string{"sessions"}, &out, &errb); code != exitUsage {
		t.Errorf("no file: exit %d, want %d", code, exitUsage)
	}
}
