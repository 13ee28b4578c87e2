package sessions

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// chromium finds Debian's chromium (tests/install-deps.sh installs it).
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Skip("chromium is not installed (tests/install-deps.sh installs it)")
	return ""
}

// headless runs chromium on page with args, without network or a profile
// of the user's.
func headless(t *testing.T, bin, dir string, args ...string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	base := []string{"--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-extensions",
		"--user-data-dir=" + filepath.Join(dir, "profile"), "--proxy-server=127.0.0.1:9", "--hide-scrollbars"}
	cmd := exec.CommandContext(ctx, bin, append(base, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %v: %v\n%s", bin, args, err, stderr.String())
	}
	return out
}

// The HTML page of the recorded session, in a real browser: chromium
// renders it to a PNG (kept as an artifact: go test -artifacts) and dumps
// the DOM after its script ran; the DOM has the session, its tool calls,
// a process with its hash and verdict, the alerts and the denial. The
// page loads nothing from anywhere else.
func TestHTMLPageInChromium(t *testing.T) {
	bin := chromium(t)
	r := build(t, readFixture(t))
	var page bytes.Buffer
	if err := WriteHTML(&page, r); err != nil {
		t.Fatal(err)
	}
	for _, ext := range []*regexp.Regexp{
		regexp.MustCompile(`(?i)(src|href)\s*=\s*"(https?:)?//`),
		regexp.MustCompile(`(?i)url\(\s*['"]?(https?:)?//`),
		regexp.MustCompile(`(?i)@import`),
	} {
		if m := ext.Find(page.Bytes()); m != nil {
			t.Errorf("the page loads something from elsewhere: %s", m)
		}
	}
	dir := t.ArtifactDir()
	html := filepath.Join(dir, "sessions.html")
	if err := os.WriteFile(html, page.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	png := filepath.Join(dir, "sessions.png")
	headless(t, bin, t.TempDir(), "--window-size=1400,2200", "--screenshot="+png, "file://"+html)
	st, err := os.Stat(png)
	if err != nil || st.Size() < 10<<10 {
		t.Fatalf("no screenshot: %v", err)
	}
	t.Logf("screenshot %s (%d bytes)", png, st.Size())

	dom := string(headless(t, bin, t.TempDir(), "--dump-dom", "file://"+html))
	s := r.Sessions[0]
	var reader *Proc
	for _, p := range s.ToolCalls[0].Procs[0].Children {
		if len(p.Alerts) > 0 && p.SHA256 != "" {
			reader = p
		}
	}
	if reader == nil {
		t.Fatal("fixture: no process with an alert under the first call")
	}
	// Search by hash, in the browser: the process with that hash is
	// marked, the tool calls without it are hidden.
	found := string(headless(t, bin, t.TempDir(), "--dump-dom", "file://"+html+"#q="+reader.SHA256))
	if !regexp.MustCompile(`<li class="proc hit" data-search="[^"]*` + reader.SHA256).MatchString(found) {
		t.Error("searching the hash did not mark its process")
	}
	if !strings.Contains(found, `<section class="call hidden"`) || !strings.Contains(found, `id="hits">`) || strings.Contains(found, `id="hits"></span>`) {
		t.Error("searching the hash did not hide the other tool calls or count the matches")
	}
	shot := filepath.Join(dir, "sessions-search.png")
	headless(t, bin, t.TempDir(), "--window-size=1400,1400", "--screenshot="+shot, "file://"+html+"#q="+reader.SHA256[:12])

	for what, want := range map[string]string{
		"the session":                       `data-session="` + s.SessionID + `"`,
		"the Bash call":                     `id="s0c0"`,
		"its command":                       "wc -l /tmp/lineaged-demo.Q7xK2p/project/notes.txt",
		"the Read call":                     "toolu_fake_demo_01",
		"the Write call":                    "toolu_fake_demo_02",
		"the denied call":                   "denied · demo-no-curl-upload",
		"the process's hash (search)":       strings.ToLower(reader.SHA256),
		"the process's hash (shown)":        "sha256 " + reader.SHA256[:12],
		"the process's verdict":             `class="badge warn">` + reader.Verdict,
		"the alert":                         "agent-reads-credentials",
		"the hooks apart":                   "Not tied to a tool call",
		"the timeline":                      `class="timeline"`,
		"the search box":                    `id="q"`,
		"the counts":                        "4 tool calls",
		"a folded run of similar opens":     "read ×",
		"the process tree of the Bash call": `<ul class="tree"><li class="proc"`,
	} {
		if !strings.Contains(dom, want) {
			t.Errorf("the DOM has no %s (%q)", what, want)
		}
	}
}
