//go:build linux

package kernel

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/lineaged/lineaged/sensor"
	"github.com/lineaged/lineaged/tests/testutil"
	"golang.org/x/sys/unix"
)

// The exe path root rule (bpf/lib/path.h): an exec's path is relative to
// the process's own root, and what the walk cannot place under that root
// is flagged. These tests run a helper (exeHelper) that execs in the ways
// that matter: from inside a chroot, through an fd opened before the
// chroot, from a memfd and from an unlinked file.

// Environment of exeHelper.
const (
	exeHelperMode = "LINEAGED_EXE_MODE" // chroot, memfd, deleted
	exeHelperBin  = "LINEAGED_EXE_BIN"  // the executable to run
	exeHelperDir  = "LINEAGED_EXE_DIR"  // chroot: the (empty) new root
	exeHelperMark = "LINEAGED_EXE_MARK" // marker argument of the execs
)

// exeHelper is the child side. It waits for a line on stdin (the parent may
// put it in a session first), then:
//
//   - chroot: bind-mounts the whole tree at the directory and chroots
//     there, so the same files are reachable under the same names; runs the
//     binary as a child ("<mark>-inside"), then execs, through an fd opened
//     before the chroot, the same file as the host's mount sees it
//     ("<mark>-outside");
//   - memfd: execs a memfd copy of the binary ("<mark>-memfd");
//   - deleted: execs a copy it unlinked after opening ("<mark>-deleted").
//
// The caller runs it in a mount namespace of its own (chroot mode).
func exeHelper() int {
	mode, bin, mark := os.Getenv(exeHelperMode), os.Getenv(exeHelperBin), os.Getenv(exeHelperMark)
	if _, err := bufio.NewReader(os.Stdin).ReadString('\n'); err != nil {
		fmt.Fprintln(os.Stderr, "helper: no go-ahead:", err)
		return 2
	}
	fail := func(err error) int {
		fmt.Fprintf(os.Stderr, "helper %s: %v\n", mode, err)
		return 2
	}
	var fd int
	var err error
	switch mode {
	case "chroot":
		dir := os.Getenv(exeHelperDir)
		if fd, err = unix.Open(bin, unix.O_RDONLY|unix.O_CLOEXEC, 0); err != nil {
			return fail(err)
		}
		if err := unix.Mount("/", dir, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
			return fail(fmt.Errorf("bind / at %s: %w", dir, err))
		}
		if err := unix.Chroot(dir); err != nil {
			return fail(err)
		}
		if err := unix.Chdir("/"); err != nil {
			return fail(err)
		}
		cmd := exec.Command(bin, mark+"-inside")
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		// A denied exec fails or is killed: the outside exec still runs.
		if err := cmd.Run(); err != nil {
			fmt.Fprintln(os.Stderr, "helper: inside:", err)
		}
		mark += "-outside"
	case "twice":
		// The image on disk, run twice by a child each time.
		for _, m := range []string{mark + "-1", mark + "-2"} {
			if err := exec.Command(bin, m).Run(); err != nil {
				return fail(err)
			}
		}
		return 0
	case "memfd":
		b, err := os.ReadFile(bin)
		if err != nil {
			return fail(err)
		}
		if fd, err = unix.MemfdCreate("lineaged-exe", unix.MFD_CLOEXEC); err != nil {
			return fail(err)
		}
		if _, err := unix.Write(fd, b); err != nil {
			return fail(err)
		}
		mark += "-memfd"
	case "deleted":
		p := filepath.Join(os.Getenv(exeHelperDir), "gone")
		b, err := os.ReadFile(bin)
		if err != nil {
			return fail(err)
		}
		if err := os.WriteFile(p, b, 0o700); err != nil {
			return fail(err)
		}
		if fd, err = unix.Open(p, unix.O_RDONLY|unix.O_CLOEXEC, 0); err != nil {
			return fail(err)
		}
		if err := os.Remove(p); err != nil {
			return fail(err)
		}
		mark += "-deleted"
	default:
		return fail(errors.New("unknown mode"))
	}
	return fail(execveatEmpty(fd, []string{filepath.Base(bin), mark}))
}

// execveatEmpty is fexecve: execveat(fd, "", argv, environ, AT_EMPTY_PATH).
func execveatEmpty(fd int, argv []string) error {
	argvp, err := syscall.SlicePtrFromStrings(argv)
	if err != nil {
		return err
	}
	envp, err := syscall.SlicePtrFromStrings(os.Environ())
	if err != nil {
		return err
	}
	empty, err := unix.BytePtrFromString("")
	if err != nil {
		return err
	}
	_, _, errno := unix.Syscall6(unix.SYS_EXECVEAT, uintptr(fd), uintptr(unsafe.Pointer(empty)),
		uintptr(unsafe.Pointer(&argvp[0])), uintptr(unsafe.Pointer(&envp[0])), unix.AT_EMPTY_PATH, 0)
	return fmt.Errorf("execveat: %w", errno)
}

// startExeHelper starts exeHelper in mode, blocked on its go-ahead.
func startExeHelper(t *testing.T, mode, bin, dir, mark string) (*exec.Cmd, io.WriteCloser, *strings.Builder) {
	t.Helper()
	cmd := exec.Command(testBinary(t))
	cmd.Env = append(os.Environ(), "LINEAGED_SENSOR_HELPER=exe", exeHelperMode+"="+mode,
		exeHelperBin+"="+bin, exeHelperDir+"="+dir, exeHelperMark+"="+mark)
	if mode == "chroot" {
		// A mount namespace of its own (Go also makes its mounts
		// private), so the bind mount and chroot stay in the helper.
		cmd.SysProcAttr = &syscall.SysProcAttr{Unshareflags: syscall.CLONE_NEWNS}
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		in.Close()
		cmd.Wait()
	})
	return cmd, in, &stderr
}

func trueBinary(t *testing.T) string {
	t.Helper()
	p, err := filepath.EvalSymlinks("/bin/true")
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestRootExePathFromItsRoot(t *testing.T) {
	h := startSensor(t, Config{Scope: ScopeAll})
	bin := trueBinary(t)
	dir, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	root := filepath.Join(dir, "root")
	if err := os.Mkdir(root, 0o755); err != nil {
		t.Fatal(err)
	}
	m := marker(t)
	for _, mode := range []string{"chroot", "memfd", "deleted"} {
		d := dir
		if mode == "chroot" {
			d = root
		}
		_, in, stderr := startExeHelper(t, mode, bin, d, m)
		io.WriteString(in, "go\n")
		last := map[string]string{"chroot": "-outside", "memfd": "-memfd", "deleted": "-deleted"}[mode]
		_, evs := h.untilExecArg(m + last)
		execs := find(evs, func(ev sensor.Event) bool {
			return ev.Exec != nil && len(ev.Exec.Argv) == 2 && strings.HasPrefix(ev.Exec.Argv[1], m)
		})
		got := map[string]*sensor.Exec{}
		for _, ev := range execs {
			got[strings.TrimPrefix(ev.Exec.Argv[1], m)] = ev.Exec
		}
		check := func(suffix, exe string, flags sensor.ExecFlags) {
			t.Helper()
			x := got[suffix]
			if x == nil {
				t.Errorf("%s: no exec %q (helper: %s)", mode, m+suffix, stderr)
				return
			}
			const pathFlags = sensor.ExecExeTruncated | sensor.ExecExeUnresolved | sensor.ExecExeDeleted |
				sensor.ExecExePseudo | sensor.ExecExeOutsideRoot
			if x.Exe != exe || x.Flags&pathFlags != flags {
				t.Errorf("%s exec %q: exe %q flags %#x, want %q flags %#x", mode, m+suffix, x.Exe, x.Flags, exe, flags)
			}
		}
		switch mode {
		case "chroot":
			// The whole tree is bound at root: from inside the chroot
			// the binary has its host path, not root + that path.
			check("-inside", bin, 0)
			// Opened before the chroot: not under the process's root,
			// so its path from the namespace's root, flagged.
			check("-outside", bin, sensor.ExecExeOutsideRoot)
		case "memfd":
			check("-memfd", "memfd:lineaged-exe", sensor.ExecExePseudo)
		case "deleted":
			check("-deleted", filepath.Join(dir, "gone"), sensor.ExecExeDeleted)
		}
	}
}

// Deny-exec follows the same root rule: a rule names the path the member
// sees, and a file carried into a chroot by an fd is matched by its path
// from the namespace's root.
func TestRootDenyExecFromItsRoot(t *testing.T) {
	testutil.RequireRoot(t, "to load BPF programs")
	dir, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	denied := testutil.CopyFile(t, trueBinary(t), filepath.Join(dir, "denied", "true-denied"), 0o700)
	root := filepath.Join(dir, "root")
	if err := os.Mkdir(root, 0o755); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	s, err := New(Config{Scope: ScopeAll, DenyKeys: map[string]uint32{denied: 0}}, log)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	out := make(chan sensor.Event, 4096)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx, out) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	}()
	hooks, _ := s.Hooks()

	m := marker(t)
	cmd, in, stderr := startExeHelper(t, "chroot", denied, root, m)
	pid := uint32(cmd.Process.Pid)
	ref := sensor.SessionRef{Root: sensor.ProcKey{PID: pid, StartNs: 1}, Agent: sensor.AgentClaudeCode}
	if err := s.AddSessionMembers(map[uint32]sensor.SessionRef{pid: ref}); err != nil {
		t.Fatal(err)
	}
	io.WriteString(in, "go\n")
	in.Close()
	werr := cmd.Wait()

	// Two denied execs: the child's inside the chroot and the helper's
	// own through its fd. Then a marker from the test, outside any session.
	mk := exec.Command("/bin/true", m+"-end")
	if err := mk.Run(); err != nil {
		t.Fatal(err)
	}
	var denies []sensor.Event
	timer := time.NewTimer(guard)
	defer timer.Stop()
wait:
	for {
		select {
		case ev := <-out:
			if ev.Deny != nil {
				denies = append(denies, ev)
			}
			if ev.Exec != nil && slices.Contains(ev.Exec.Argv, m+"-end") {
				break wait
			}
		case <-timer.C:
			t.Fatalf("no marker exec within %s", guard)
		}
	}
	if len(denies) != 2 {
		t.Fatalf("%d deny records, want 2 (inside the chroot, and through the fd); helper %v: %s", len(denies), werr, stderr)
	}
	helper := 0
	for _, ev := range denies {
		if ev.Deny.Path != denied || ev.Deny.RuleIndex != 0 {
			t.Errorf("deny record path %q rule %d, want %q rule 0", ev.Deny.Path, ev.Deny.RuleIndex, denied)
		}
		if ev.Proc.PID == pid {
			helper++
		}
	}
	if helper != 1 {
		t.Errorf("%d of the deny records name the helper (%d), want 1: %+v", helper, pid, denies)
	}
	t.Logf("enforcement %s; helper: %v", hooks, werr)
}
