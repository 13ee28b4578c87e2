// Package testutil holds the helpers that the root, end-to-end and kernel
// matrix tests share: the root gate, the stand-in agent and its child
// workloads, and the waits that end a test on a marker instead of a sleep.
//
// It is plain Go without cgo, so the static test binaries the kernel matrix
// boots in its qemu guests can link it.
package testutil

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cilium/ebpf/rlimit"
)

// Main is a TestMain for packages that load BPF: as root it first lifts
// RLIMIT_MEMLOCK, which kernels before 5.11 charge BPF maps against (later
// ones account them to the memory cgroup), then runs the tests and exits.
func Main(m *testing.M) {
	if os.Geteuid() == 0 {
		if err := rlimit.RemoveMemlock(); err != nil {
			fmt.Fprintln(os.Stderr, "remove memlock limit:", err)
			os.Exit(1)
		}
	}
	os.Exit(m.Run())
}

// RequireRoot skips the test unless it runs as root; why says what root is
// needed for ("to load BPF programs"), so the skip names its reason.
func RequireRoot(tb testing.TB, why string) {
	tb.Helper()
	if euid := os.Geteuid(); euid != 0 {
		tb.Skipf("needs root %s (running as uid %d)", why, euid)
	}
}

// MustBeRoot fails the test unless it runs as root. It is for tests whose
// skip would hide a broken run, such as the kernel matrix guests, which
// always run as root.
func MustBeRoot(tb testing.TB, why string) {
	tb.Helper()
	if euid := os.Geteuid(); euid != 0 {
		tb.Fatalf("must run as root %s (running as uid %d)", why, euid)
	}
}

// AgentVersion is the Claude Code version of the stand-in agent's path.
const AgentVersion = "2.1.332"

// AgentPath is where Claude Code's native installer puts a version under
// home; a binary there is recognised as the agent.
func AgentPath(home string) string {
	return filepath.Join(home, ".local", "share", "claude", "versions", AgentVersion)
}

// CopyFile copies src to dst, creating dst's directories, with perm for the
// file and the directories made; it returns dst. A test copies an executable
// to a path to give the sensor a known image there (a stand-in agent at
// AgentPath, a binary under a deny rule).
func CopyFile(tb testing.TB, src, dst string, perm os.FileMode) string {
	tb.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		tb.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(dst), perm); err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(dst, b, perm); err != nil {
		tb.Fatal(err)
	}
	return dst
}

// SyncBuffer is a bytes.Buffer that a child's output can be written to
// while the test reads it.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write appends p.
func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// String returns everything written so far.
func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Poll is how often WaitFor and WaitForText test their condition.
const Poll = 50 * time.Millisecond

// WaitFor polls cond until it holds, so the test proceeds on a marker, never
// on a fixed sleep; the deadline d only turns a hang into a failure, which
// names what and calls detail (if not nil) for the context to print. cond
// may itself fail the test, for example when the child it waits on exits.
func WaitFor(tb testing.TB, d time.Duration, what string, cond func() bool, detail func() string) {
	tb.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			msg := ""
			if detail != nil {
				msg = "\n" + detail()
			}
			tb.Fatalf("no %s after %v%s", what, d, msg)
		}
		time.Sleep(Poll)
	}
}

// WaitForText waits until the child's output holds want, such as the
// sensor's "sensor started" log line.
func WaitForText(tb testing.TB, d time.Duration, out *SyncBuffer, want string) {
	tb.Helper()
	WaitFor(tb, d, want, func() bool { return strings.Contains(out.String(), want) }, out.String)
}

// CheckLinger checks what a linger does to a paced stream: with it, n
// rounds (writes, produce requests) over el, at most two per linger of
// the stream's own duration plus five (a loaded host stretches the stream
// and its rounds alike); without it, n0 rounds over el0, at least twice as
// many.
func CheckLinger(tb testing.TB, rounds string, linger time.Duration, n int64, el time.Duration, n0 int64, el0 time.Duration) {
	tb.Helper()
	tb.Logf("over %v with a %v linger: %d %s; over %v without one: %d", el, linger, n, rounds, el0, n0)
	if most := int64(el/linger)*2 + 5; n > most {
		tb.Errorf("%d %s over %v with a %v linger, want at most %d", n, rounds, el, linger, most)
	}
	if n0 < 2*n {
		tb.Errorf("without a linger %d %s over %v, with one %d: want at least twice as many", n0, rounds, el0, n)
	}
}
