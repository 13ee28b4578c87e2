package policy

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/lineaged/lineaged/lineage/event"
)

// DenyExecMax bounds the deny_exec entries. The kernel map holds twice as
// many keys: an entry whose path goes through a symlink is added as written
// and as resolved.
const DenyExecMax = 1024

// DenyPathMax is the longest entry the kernel can match (bpf/lineaged.h
// DENY_PATH_MAX less the terminating zero).
const DenyPathMax = 255

// RuleDenyExec names the deny_exec rule set in alert.rule.
const RuleDenyExec = "deny_exec"

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
		case len(e) > DenyPathMax:
			return bad(fmt.Sprintf("%d bytes, at most %d", len(e), DenyPathMax))
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

// DenyKeys expands validated entries into the keys the kernel matches
// (sensor/kernel Config.DenyKeys): each entry as written, plus its
// symlink-resolved form when that differs and exists (the kernel matches the
// resolved path of the executed file, so /bin/foo on a merged-/usr system
// must also be /usr/bin/foo). resolve is filepath.EvalSymlinks outside
// tests. The value is the entry's index, which the kernel reports back in
// its deny records.
func DenyKeys(entries []string, resolve func(string) (string, error)) map[string]uint32 {
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
		if r == "/" || len(r) > DenyPathMax {
			continue
		}
		if _, ok := keys[r]; !ok {
			keys[r] = uint32(i)
		}
	}
	return keys
}

// DenyFile is the identity of a file deny-exec refuses whatever its path:
// st_dev and st_ino as stat(2) returns them. It converts to sensor/kernel
// DenyInode, which cmd/lineaged hands the kernel.
type DenyFile struct {
	Dev   uint64
	Inode uint64
}

// StatFile returns the identity of the file at path, following symlinks.
func StatFile(path string) (DenyFile, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return DenyFile{}, &os.PathError{Op: "stat", Path: path, Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return DenyFile{}, fmt.Errorf("%s: not a regular file", path)
	}
	return DenyFile{Dev: uint64(st.Dev), Inode: st.Ino}, nil
}

// DenyInodes returns the identity of each validated exact-path entry's file,
// valued with the entry's index, so the kernel also refuses the file under
// any other name: a hard link, a bind mount. Directory entries ("/opt/x/")
// and entries whose file does not exist (yet) are matched by path only.
// stat is StatFile outside tests.
func DenyInodes(entries []string, stat func(string) (DenyFile, error)) map[DenyFile]uint32 {
	files := make(map[DenyFile]uint32, len(entries))
	for i, e := range entries {
		if !strings.HasPrefix(e, "/") || strings.HasSuffix(e, "/") {
			continue
		}
		f, err := stat(e)
		if err != nil || f.Inode == 0 {
			continue
		}
		if _, ok := files[f]; !ok {
			files[f] = uint32(i)
		}
	}
	return files
}

// denyWhat says what the kernel's action meant for the process.
var denyWhat = map[string]string{
	"blocked":     "exec refused",
	"killed":      "killed with SIGKILL before it ran",
	"kill-failed": "matched, but the kernel refused the kill: it ran",
}

// deny turns ev, carrying a kernel deny record, into the policy events: the
// policy.alert saying which rule matched, then the policy.action saying what
// the kernel did (ev itself, as lineaged has always reported it). The alert
// names the action as its trigger.
func (s *Stage) deny(dst []*event.Event, ev *event.Event) []*event.Event {
	d := ev.Deny
	ev.Deny = nil
	entry := d.Rule
	if int(d.RuleIndex) < len(s.denyExec) {
		entry = s.denyExec[d.RuleIndex]
	}
	if entry == "" {
		entry = fmt.Sprintf("#%d", d.RuleIndex)
	}
	ev.Kind = event.KindPolicyAction
	ev.Alert = &event.Alert{
		Rule:     RuleDenyExec,
		Severity: "high",
		Message:  fmt.Sprintf("%q is denied to agent sessions (entry %q): %s", d.Path, entry, denyWhat[d.Action]),
		Action:   d.Action,
	}
	s.counts.alert(RuleDenyExec, "high")
	alert := *ev
	alert.Kind = event.KindPolicyAlert
	alert.Alert = &event.Alert{
		Rule:     RuleDenyExec,
		Severity: "high",
		Message:  fmt.Sprintf("an agent session ran %q, which deny_exec entry %q denies", d.Path, entry),
		Trigger:  ev,
	}
	return append(dst, &alert, ev)
}
