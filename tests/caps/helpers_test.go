// Package caps checks the capability set of deploy/lineaged.service against
// the real sensor: `lineaged run` started with exactly the unit's bounding
// set works, and with any one of those capabilities taken away the feature it
// serves stops working in the way the sensor reports. The set is read from
// the unit file itself, so the unit and these tests cannot drift apart.
package caps

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/lineaged/lineaged/tests/testutil"
)

// The test binary doubles as two small helpers, chosen by this variable:
//
//	dropcaps KEEP PROG ARGS...  keep only the capabilities KEEP (comma
//	    separated numbers) in the bounding set, clear the ambient and
//	    inheritable sets, exec PROG: as root, the new program then holds
//	    exactly KEEP, as under systemd's CapabilityBoundingSet=.
//	memfd UID SRC ARGS...       become UID (and its gid), copy SRC into a
//	    memfd and exec it: a running image with no path to reopen.
const helperEnv = "CAPS_TEST_HELPER"

var lineaged string // the built sensor

func TestMain(m *testing.M) {
	switch os.Getenv(helperEnv) {
	case "dropcaps":
		fail(dropCapsAndExec(os.Args[1:]))
	case "memfd":
		fail(memfdExec(os.Args[1:]))
	}
	if os.Geteuid() == 0 {
		dir, err := os.MkdirTemp("", "lineaged-caps-bin-")
		fail(err)
		lineaged = filepath.Join(dir, "lineaged")
		cmd := exec.Command("go", "build", "-o", lineaged, "./cmd/lineaged")
		cmd.Dir = repoRoot()
		if out, err := cmd.CombinedOutput(); err != nil {
			fail(fmt.Errorf("go build ./cmd/lineaged: %v\n%s", err, out))
		}
		defer os.RemoveAll(dir)
	}
	testutil.Main(m)
}

func fail(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "caps helper:", err)
		os.Exit(2)
	}
}

func repoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// capNames maps the names systemd accepts to capability numbers
// (linux/capability.h).
var capNames = map[string]int{
	"CAP_CHOWN": 0, "CAP_DAC_OVERRIDE": 1, "CAP_DAC_READ_SEARCH": 2, "CAP_FOWNER": 3,
	"CAP_FSETID": 4, "CAP_KILL": 5, "CAP_SETGID": 6, "CAP_SETUID": 7, "CAP_SETPCAP": 8,
	"CAP_LINUX_IMMUTABLE": 9, "CAP_NET_BIND_SERVICE": 10, "CAP_NET_BROADCAST": 11,
	"CAP_NET_ADMIN": 12, "CAP_NET_RAW": 13, "CAP_IPC_LOCK": 14, "CAP_IPC_OWNER": 15,
	"CAP_SYS_MODULE": 16, "CAP_SYS_RAWIO": 17, "CAP_SYS_CHROOT": 18, "CAP_SYS_PTRACE": 19,
	"CAP_SYS_PACCT": 20, "CAP_SYS_ADMIN": 21, "CAP_SYS_BOOT": 22, "CAP_SYS_NICE": 23,
	"CAP_SYS_RESOURCE": 24, "CAP_SYS_TIME": 25, "CAP_SYS_TTY_CONFIG": 26, "CAP_MKNOD": 27,
	"CAP_LEASE": 28, "CAP_AUDIT_WRITE": 29, "CAP_AUDIT_CONTROL": 30, "CAP_SETFCAP": 31,
	"CAP_MAC_OVERRIDE": 32, "CAP_MAC_ADMIN": 33, "CAP_SYSLOG": 34, "CAP_WAKE_ALARM": 35,
	"CAP_BLOCK_SUSPEND": 36, "CAP_AUDIT_READ": 37, "CAP_PERFMON": 38, "CAP_BPF": 39,
	"CAP_CHECKPOINT_RESTORE": 40,
}

// unitCaps reads CapabilityBoundingSet= of deploy/lineaged.service: the
// names in the order given. A name systemd would not know, a set given
// twice, a negated set or an ambient set fails the test: the unit grants
// only the bounding set, to a process running as root.
func unitCaps(t *testing.T) []string {
	t.Helper()
	path := filepath.Join(repoRoot(), "deploy", "lineaged.service")
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var names []string
	found := false
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if v, ok := strings.CutPrefix(line, "AmbientCapabilities="); ok && strings.TrimSpace(v) != "" {
			t.Fatalf("%s:%d: AmbientCapabilities=%s: the sensor runs as root and needs no ambient set", path, n, v)
		}
		v, ok := strings.CutPrefix(line, "CapabilityBoundingSet=")
		if !ok {
			continue
		}
		if found {
			t.Fatalf("%s:%d: a second CapabilityBoundingSet= line", path, n)
		}
		found = true
		if strings.HasPrefix(v, "~") {
			t.Fatalf("%s:%d: a negated CapabilityBoundingSet=%s: list what is kept", path, n, v)
		}
		for _, name := range strings.Fields(v) {
			if _, ok := capNames[name]; !ok {
				t.Fatalf("%s:%d: unknown capability %q", path, n, name)
			}
			names = append(names, name)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if !found || len(names) == 0 {
		t.Fatalf("%s: no CapabilityBoundingSet= line", path)
	}
	return names
}

// dropCapsAndExec is the dropcaps helper.
func dropCapsAndExec(args []string) error {
	if len(args) < 2 {
		return fmt.Errorf("dropcaps: want KEEP PROG [ARGS...], got %q", args)
	}
	keep := map[int]bool{}
	if args[0] != "" {
		for _, s := range strings.Split(args[0], ",") {
			n, err := strconv.Atoi(s)
			if err != nil {
				return fmt.Errorf("dropcaps: capability %q: %w", s, err)
			}
			keep[n] = true
		}
	}
	// Every thread must see the same sets up to the exec.
	runtime.LockOSThread()
	for c := 0; c <= unix.CAP_LAST_CAP; c++ {
		if keep[c] {
			continue
		}
		if err := unix.Prctl(unix.PR_CAPBSET_DROP, uintptr(c), 0, 0, 0); err != nil && err != unix.EINVAL {
			return fmt.Errorf("dropcaps: PR_CAPBSET_DROP %d: %w", c, err)
		}
	}
	if err := unix.Prctl(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0); err != nil {
		return fmt.Errorf("dropcaps: clear the ambient set: %w", err)
	}
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return fmt.Errorf("dropcaps: capget: %w", err)
	}
	data[0].Inheritable, data[1].Inheritable = 0, 0
	if err := unix.Capset(&hdr, &data[0]); err != nil {
		return fmt.Errorf("dropcaps: capset: %w", err)
	}
	// The sensor refuses LINEAGED_ variables it does not know; this one is
	// the helper's own and goes no further.
	env := slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, helperEnv+"=") })
	return unix.Exec(args[1], args[1:], env)
}

// memfdExec is the memfd helper.
func memfdExec(args []string) error {
	if len(args) < 2 {
		return fmt.Errorf("memfd: want UID SRC [ARGS...], got %q", args)
	}
	id, err := strconv.Atoi(args[0])
	if err != nil {
		return fmt.Errorf("memfd: uid %q: %w", args[0], err)
	}
	img, err := os.ReadFile(args[1])
	if err != nil {
		return err
	}
	runtime.LockOSThread()
	if err := unix.Setgroups(nil); err != nil {
		return fmt.Errorf("memfd: setgroups: %w", err)
	}
	if err := unix.Setresgid(id, id, id); err != nil {
		return fmt.Errorf("memfd: setresgid: %w", err)
	}
	if err := unix.Setresuid(id, id, id); err != nil {
		return fmt.Errorf("memfd: setresuid: %w", err)
	}
	fd, err := unix.MemfdCreate("lineaged-caps", 0)
	if err != nil {
		return fmt.Errorf("memfd: memfd_create: %w", err)
	}
	for b := img; len(b) > 0; {
		n, err := unix.Write(fd, b)
		if err != nil {
			return fmt.Errorf("memfd: write: %w", err)
		}
		b = b[n:]
	}
	argv := append([]string{filepath.Base(args[1])}, args[2:]...)
	return unix.Exec("/proc/self/fd/"+strconv.Itoa(fd), argv, os.Environ())
}
