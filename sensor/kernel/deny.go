package kernel

import (
	"fmt"
	"path/filepath"
	"strings"
)

// DenyExecMax bounds Config.DenyExec. The kernel map holds twice as many
// keys: an entry whose path goes through a symlink is added as written and
// as resolved.
const DenyExecMax = 1024

// denyPathMax is the longest entry the kernel can match (bpf/lineaged.h
// DENY_PATH_MAX less the terminating zero).
const denyPathMax = 255

// ValidateDenyExec checks deny-exec entries: each is an absolute, clean
// path of an executable ("/usr/bin/curl") or of a directory ending in '/'
// ("/opt/tools/": everything below it), at most 255 bytes. Errors name the
// entry.
func ValidateDenyExec(entries []string) error {
	if len(entries) > DenyExecMax {
		return fmt.Errorf("deny_exec: %d entries, at most %d", len(entries), DenyExecMax)
	}
	seen := make(map[string]bool, len(entries))
	for i, e := range entries {
		bad := func(why string) error { return fmt.Errorf("deny_exec entry %d %q: %s", i, e, why) }
		switch {
		case e == "":
			return bad("empty")
		case !strings.HasPrefix(e, "/"):
			return bad("not an absolute path")
		case e == "/":
			return bad("would deny every executable")
		case len(e) > denyPathMax:
			return bad(fmt.Sprintf("%d bytes, at most %d", len(e), denyPathMax))
		case strings.IndexByte(e, 0) >= 0:
			return bad("contains a NUL byte")
		}
		if body := strings.TrimSuffix(e, "/"); filepath.Clean(body) != body {
			return bad(fmt.Sprintf("not a clean path (want %q)", filepath.Clean(body)+e[len(body):]))
		}
		if seen[e] {
			return bad("listed twice")
		}
		seen[e] = true
	}
	return nil
}

// denyKeys expands entries into the kernel's keys: each entry as written,
// plus its symlink-resolved form when that differs and exists (the kernel
// matches the resolved path of the executed file, so /bin/foo on a
// merged-/usr system must also be /usr/bin/foo). resolve is
// filepath.EvalSymlinks outside tests. The value is the entry's index.
func denyKeys(entries []string, resolve func(string) (string, error)) map[string]uint32 {
	keys := make(map[string]uint32, 2*len(entries))
	for i, e := range entries {
		if _, ok := keys[e]; !ok {
			keys[e] = uint32(i)
		}
		dir := strings.HasSuffix(e, "/")
		r, err := resolve(strings.TrimSuffix(e, "/"))
		if err != nil || r == "" || !strings.HasPrefix(r, "/") {
			continue // not there (yet): matched as written
		}
		if dir && r != "/" {
			r += "/"
		}
		if r == "/" || len(r) > denyPathMax {
			continue
		}
		if _, ok := keys[r]; !ok {
			keys[r] = uint32(i)
		}
	}
	return keys
}
