package lineage

import (
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/lineaged/lineaged/tests/testutil"
)

func TestCgroupFS(t *testing.T) {
	root, err := cgroup2Mount("/proc/self/mountinfo")
	if err != nil {
		t.Skip("no cgroup2 hierarchy on this host: ", err)
	}
	testutil.RequireRoot(t, "to create a cgroup")
	c := &CgroupFS{}
	now := time.Unix(0, 0)
	c.Now = func() time.Time { return now }
	var st syscall.Stat_t
	if err := syscall.Stat(root, &st); err != nil {
		t.Fatal(err)
	}
	if p, ok := c.CgroupPath(st.Ino); !ok || p != "/" {
		t.Errorf("root cgroup = %q %v", p, ok)
	}
	dir := filepath.Join(root, "lineaged-test-"+strconv.Itoa(os.Getpid()), "inner")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.Remove(dir); _ = os.Remove(filepath.Dir(dir)) })
	if err := syscall.Stat(dir, &st); err != nil {
		t.Fatal(err)
	}
	// Created after the first walk: found on the next one, not before the
	// rescan interval.
	if _, ok := c.CgroupPath(st.Ino); ok {
		t.Error("rescanned before the interval")
	}
	now = now.Add(2 * time.Second)
	want := "/lineaged-test-" + strconv.Itoa(os.Getpid()) + "/inner"
	if p, ok := c.CgroupPath(st.Ino); !ok || p != want {
		t.Errorf("new cgroup = %q %v, want %q", p, ok, want)
	}
	if c.Err() != nil {
		t.Error(c.Err())
	}
}

func TestUnescapeMount(t *testing.T) {
	if got := unescapeMount(`/mnt/with\040space\\x`); got != `/mnt/with space\\x` {
		t.Errorf("unescape = %q", got)
	}
}

type fakeCgroups map[uint64]string

func (f fakeCgroups) CgroupPath(id uint64) (string, bool) { p, ok := f[id]; return p, ok }

func TestExecCwdAndCgroup(t *testing.T) {
	r := newRig(t, Config{}, nil)
	r.e.deps.Cgroups = fakeCgroups{77: "/user.slice/session-3.scope"}
	r.procs.cwd = map[uint32]string{50: "/home/alice/project"}
	seedBase(r)
	ev := claudeRoot(1000 * ms)
	ev.Exec.CgroupID = 77
	got := r.run(ev)
	p := got[0].Process
	if p.Cwd != "/home/alice/project" || p.Cgroup != "/user.slice/session-3.scope" {
		t.Errorf("cwd %q cgroup %q", p.Cwd, p.Cgroup)
	}
}
