package posture

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// tree builds a fake root. Keys are host paths; a value starting with "->"
// makes a symlink to the rest, a key ending in "/" makes a directory, any
// other value is the file's content.
func tree(t *testing.T, files map[string]string) Root {
	t.Helper()
	dir := t.TempDir()
	for p, v := range files {
		full := filepath.Join(dir, p)
		if strings.HasSuffix(p, "/") {
			if err := os.MkdirAll(full, 0o700); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(full), 0o700); err != nil {
			t.Fatal(err)
		}
		if target, isLink := strings.CutPrefix(v, "->"); isLink {
			if err := os.Symlink(target, full); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.WriteFile(full, []byte(v), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return Root(dir)
}

// checkCase is one fake tree and the expected outcome of a check on it.
type checkCase struct {
	name   string
	files  map[string]string
	ok     bool
	detail string // substring the detail must contain
}

func runCases(t *testing.T, c Check, cases []checkCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := c.Run(context.Background(), tree(t, tc.files))
			assertCheck(t, r, tc.ok, tc.detail)
		})
	}
}

func assertCheck(t *testing.T, r Result, ok bool, detail string) {
	t.Helper()
	if r.OK != ok || !strings.Contains(r.Detail, detail) {
		t.Errorf("got ok=%t detail=%q; want ok=%t detail containing %q", r.OK, r.Detail, ok, detail)
	}
	if r.Detail == "" {
		t.Error("empty detail")
	}
}

func listenLocal() (net.Listener, error) {
	return net.Listen("tcp", "127.0.0.1:0")
}
