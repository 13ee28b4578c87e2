package policy

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/lineaged/lineaged/lineage/event"
	"github.com/lineaged/lineaged/sensor"
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

// SHA256Prefix marks a deny_exec entry that names a binary by content:
// "sha256:" and 64 hex digits. Any copy of that binary is denied.
const SHA256Prefix = "sha256:"

// ActionDenyExec names, in the policy.action of a copy found by hash, the
// addition of its file to the kernel's deny map.
const ActionDenyExec = "deny-exec"

// DenyMemfd is the deny_exec entry that denies every image with no path:
// a memfd (memfd_create and fexecve, the way to run a program that was
// never written to disk).
const DenyMemfd = "memfd"

// ValidateDenyExec checks deny-exec entries: each is an absolute, clean
// path of an executable ("/usr/bin/curl") or of a directory ending in '/'
// ("/opt/tools/": everything below it), at most 255 bytes, a binary's
// SHA-256 ("sha256:" and 64 hex digits, either case), or "memfd". Errors
// name the entry.
func ValidateDenyExec(entries []string) error {
	if len(entries) > DenyExecMax {
		return fmt.Errorf("deny_exec: %d entries, at most %d", len(entries), DenyExecMax)
	}
	seen := make(map[string]bool, len(entries))
	for i, e := range entries {
		bad := func(why string) error { return fmt.Errorf("deny_exec entry %d %q: %s", i, e, why) }
		if h, ok := strings.CutPrefix(e, SHA256Prefix); ok {
			b, err := hex.DecodeString(h)
			if err != nil || len(b) != sha256.Size {
				return bad("not a SHA-256: want sha256: and 64 hex digits")
			}
			if seen[strings.ToLower(e)] {
				return bad("listed twice")
			}
			seen[strings.ToLower(e)] = true
			continue
		}
		if e == DenyMemfd {
			if seen[e] {
				return bad("listed twice")
			}
			seen[e] = true
			continue
		}
		switch {
		case e == "":
			return bad("empty")
		case !strings.HasPrefix(e, "/"):
			return bad(`not an absolute path, a sha256: entry or "memfd"`)
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
		if strings.HasPrefix(e, SHA256Prefix) {
			continue // matched by file identity, once a copy is hashed
		}
		if e == DenyMemfd {
			keys[sensor.DenyKeyPseudo] = uint32(i)
			continue
		}
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

// DenyByHash reports whether any entry names a binary by SHA-256: the
// kernel enforcement must then be loaded even with no path to match, for
// the copies the stage finds at run time (Config.DenyFile).
func DenyByHash(entries []string) bool { return len(denyHashes(entries)) > 0 }

// denyHashes maps each SHA-256 entry's lowercase hex digest to its index.
func denyHashes(entries []string) map[string]uint32 {
	m := map[string]uint32{}
	for i, e := range entries {
		if h, ok := strings.CutPrefix(e, SHA256Prefix); ok {
			h = strings.ToLower(h)
			if _, dup := m[h]; !dup {
				m[h] = uint32(i)
			}
		}
	}
	return m
}

// denyByHash handles an exec, in an agent session, of a binary whose SHA-256
// a deny_exec entry names. The kernel matches files, not contents, and a
// binary's hash is known only once it has been executed and read: the first
// exec of a copy unknown to the kernel runs. So the stage alerts, kills
// that process (as kill-process would) and adds the file's (dev, inode) to
// the kernel's deny map (Config.DenyFile), so every later exec of that copy
// by a session member is refused in the kernel, whatever its name. Each
// file is added once; the kernel reports its later execs itself.
func (s *Stage) denyByHash(dst []*event.Event, ev *event.Event) []*event.Event {
	if len(s.denyHash) == 0 || ev.Kind != event.KindProcessExec || ev.Agent == nil || ev.Agent.RootExecID == "" ||
		ev.Process == nil || ev.Process.Binary == nil || ev.Process.Binary.SHA256 == "" {
		return dst
	}
	b := ev.Process.Binary
	idx, ok := s.denyHash[b.SHA256]
	if !ok {
		return dst
	}
	entry := s.denyExec[idx]
	f := DenyFile{Dev: b.Dev, Inode: b.Inode}
	s.counts.alert(RuleDenyExec, "high")
	alert := *ev
	alert.Kind = event.KindPolicyAlert
	alert.Seq, alert.EventID = 0, ""
	alert.Alert = &event.Alert{
		Rule:     RuleDenyExec,
		Severity: "high",
		Message:  fmt.Sprintf("an agent session ran %q, whose SHA-256 deny_exec entry %q denies", b.Path, entry),
		Trigger:  ev,
	}
	dst = append(dst, &alert)
	dst = s.kill(dst, s.denyRule, ActionKillProcess, ev)
	if s.denied[f] {
		return dst
	}
	act := *ev
	act.Kind = event.KindPolicyAction
	act.Seq, act.EventID = 0, ""
	act.Alert = &event.Alert{Rule: RuleDenyExec, Severity: "high", Action: ActionDenyExec, Trigger: ev}
	switch {
	case s.denyFile == nil:
		act.Alert.Result = ResultFailed
		act.Alert.Message = fmt.Sprintf("%q (dev %d, inode %d) not added to the kernel deny map: no kernel enforcement", b.Path, b.Dev, b.Inode)
	case f.Inode == 0:
		act.Alert.Result = ResultFailed
		act.Alert.Message = fmt.Sprintf("%q not added to the kernel deny map: no inode", b.Path)
	default:
		if err := s.denyFile(f, idx); err != nil {
			act.Alert.Result = ResultFailed
			act.Alert.Message = fmt.Sprintf("%q (dev %d, inode %d) not added to the kernel deny map: %v", b.Path, b.Dev, b.Inode, err)
		} else {
			s.denied[f] = true
			act.Alert.Result = ResultDone
			act.Alert.Message = fmt.Sprintf("%q (dev %d, inode %d) added to the kernel deny map: later execs by session members are refused", b.Path, b.Dev, b.Inode)
		}
	}
	return append(dst, &act)
}

// denyLoadedEntry returns the deny_exec entry that names the program a
// dynamic loader ran (process.loaded, its path resolved by binid): by its
// SHA-256, or by its path or a directory above it as the kernel matches
// them (DenyKeys); -1 when none does.
func (s *Stage) denyLoadedEntry(b *event.Binary) int {
	if b.SHA256 != "" {
		if idx, ok := s.denyHash[b.SHA256]; ok {
			return int(idx)
		}
	}
	if !strings.HasPrefix(b.Path, "/") {
		return -1
	}
	if idx, ok := s.denyPaths[b.Path]; ok {
		return int(idx)
	}
	for dir := path.Dir(b.Path); ; dir = path.Dir(dir) {
		if idx, ok := s.denyPaths[strings.TrimSuffix(dir, "/")+"/"]; ok && dir != "/" {
			return int(idx)
		}
		if dir == "/" || dir == "." {
			return -1
		}
	}
}

// denyLoaded handles an exec, in an agent session, of a dynamic loader run
// as a program (`ld-linux-x86-64.so.2 /usr/bin/curl`) whose program a
// deny_exec entry names. The kernel saw, and let run, an exec of the
// loader: the program itself is never exec'd, so neither the path keys nor
// the (dev, inode) keys of the kernel's deny map can refuse it. The stage
// alerts and kills the process, as kill-process would; it has run for as
// long as enrichment took.
func (s *Stage) denyLoaded(dst []*event.Event, ev *event.Event) []*event.Event {
	if len(s.denyExec) == 0 || ev.Kind != event.KindProcessExec || ev.Agent == nil || ev.Agent.RootExecID == "" ||
		ev.Process == nil || ev.Process.Loaded == nil {
		return dst
	}
	b := ev.Process.Loaded
	idx := s.denyLoadedEntry(b)
	if idx < 0 {
		return dst
	}
	s.counts.alert(RuleDenyExec, "high")
	alert := *ev
	alert.Kind = event.KindPolicyAlert
	alert.Seq, alert.EventID = 0, ""
	alert.Alert = &event.Alert{
		Rule:     RuleDenyExec,
		Severity: "high",
		Message:  fmt.Sprintf("an agent session ran %q through the dynamic loader %q; deny_exec entry %q denies it", b.Path, ev.Process.Exe, s.denyExec[idx]),
		Trigger:  ev,
	}
	dst = append(dst, &alert)
	return s.kill(dst, s.denyRule, ActionKillProcess, ev)
}
