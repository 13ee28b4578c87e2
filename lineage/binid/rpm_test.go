package binid

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lineaged/lineaged/lineage/event"
)

func TestRPMParseAndVerdict(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "tool")
	copyFile(t, "/usr/bin/sleep", bin, nil)
	sum := sha256File(t, bin)
	// rpm output in rpmQueryFormat: a SHA-256 file, a directory (no
	// digest), an MD5 package, an unknown algorithm, a garbage line.
	out := "tool-1.0-1.el9\t8\t" + sum + "\t" + bin + "\n" +
		"tool-1.0-1.el9\t8\t\t" + dir + "\n" +
		"old-0.1-1\t1\t0123456789abcdef0123456789abcdef\t/usr/bin/old\n" +
		"sha1pkg-1-1\t2\tdeadbeef\t/usr/bin/sha1\n" +
		"garbage\n"
	calls := 0
	r := &RPM{DBDir: dir, Query: func(context.Context) ([]byte, error) { calls++; return []byte(out), nil }}
	if f, ok := r.Lookup(bin); !ok || f.Package != "tool-1.0-1.el9" || f.Algo != "sha256" {
		t.Errorf("tool = %+v %v", f, ok)
	}
	if f, ok := r.Lookup("/bin/old"); !ok || f.Algo != "md5" {
		t.Errorf("old via alias = %+v %v", f, ok)
	}
	for _, p := range []string{dir, "/usr/bin/sha1"} {
		if _, ok := r.Lookup(p); ok {
			t.Errorf("%s should not be claimed", p)
		}
	}
	if calls != 1 {
		t.Errorf("queried %d times", calls)
	}
	in := newInspector(t, Config{}, nil, r)
	_, p := running(t, bin, "30")
	if b := in.Inspect(context.Background(), request(p)); b.Verdict != event.VerdictPackageVerified || b.Package != "tool-1.0-1.el9" {
		t.Errorf("rpm verdict = %+v", b)
	}

	failing := &RPM{DBDir: dir, Query: func(context.Context) ([]byte, error) { return nil, errors.New("rpm -qa: exit status 1") },
		Recheck: time.Hour}
	if _, ok := failing.Lookup(bin); ok || failing.Err() == nil || !strings.Contains(failing.Err().Error(), "rpm -qa") {
		t.Errorf("failing rpm: err %v", failing.Err())
	}
	_ = os.Remove(bin)
}
