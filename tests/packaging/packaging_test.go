//go:build linux

// Package packaging installs lineaged's .deb on this machine with dpkg,
// upgrades it, removes and purges it, and checks the .rpm with rpm: the
// path a fleet admin takes (README, "Running as a service").
//
// It installs into the real /usr, /etc and /var of the machine it runs on,
// so it refuses to run where lineaged is already installed, and it leaves
// the machine as it found it (Claude Code's managed settings included).
// While it runs, a sensor started with the default configuration reads its
// rules directory and a Claude Code run its managed settings: `make test`
// runs it after every other package, alone (`go test ./...` would not).
package packaging

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"

	"github.com/lineaged/lineaged/tests/testutil"
)

const managedSettings = "/etc/claude-code/managed-settings.json"

// run runs a command with fixed argv and fails the test with its output
// when it fails.
func run(t *testing.T, dir string, env []string, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// buildPackages runs `make package` with version v into a new directory and
// returns the .deb and .rpm it made.
func buildPackages(t *testing.T, root, v string) (deb, rpm string) {
	t.Helper()
	dist := t.TempDir()
	// Its own binaries, so the build cannot replace bin/lineaged under
	// another test that runs it.
	run(t, root, nil, "make", "package", "PKG_VERSION="+v, "DIST="+dist, "BIN="+filepath.Join(dist, "bin", "lineaged"))
	debs, _ := filepath.Glob(filepath.Join(dist, "lineaged_"+v+"_*.deb"))
	rpms, _ := filepath.Glob(filepath.Join(dist, "lineaged-"+v+"-*.rpm"))
	if len(debs) != 1 || len(rpms) != 1 {
		t.Fatalf("make package made %q and %q, want one .deb and one .rpm of %s", debs, rpms, v)
	}
	return debs[0], rpms[0]
}

// wantFile checks a path's type, mode and owner.
func wantFile(t *testing.T, path string, mode fs.FileMode) {
	t.Helper()
	st, err := os.Lstat(path)
	if err != nil {
		t.Errorf("%s: %v", path, err)
		return
	}
	if got := st.Mode() & (fs.ModeType | fs.ModePerm); got != mode {
		t.Errorf("%s: mode %v, want %v", path, got, mode)
	}
	if s := st.Sys().(*syscall.Stat_t); s.Uid != 0 || s.Gid != 0 {
		t.Errorf("%s: owner %d:%d, want root:root", path, s.Uid, s.Gid)
	}
}

func wantGone(t *testing.T, path string) {
	t.Helper()
	if _, err := os.Lstat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("%s: still there after removal (%v)", path, err)
	}
}

func installed(version string) bool {
	out, err := exec.Command("dpkg-query", "-W", "-f=${Status} ${Version}", "lineaged").Output()
	return err == nil && strings.HasPrefix(string(out), "install ok installed") &&
		(version == "" || strings.HasSuffix(string(out), " "+version))
}

// keepManagedSettings puts Claude Code's managed settings back as they
// were when the test ends. The directory is left: other tests running
// beside this one use it as a mount point.
func keepManagedSettings(t *testing.T) {
	old, err := os.ReadFile(managedSettings)
	had := err == nil
	t.Cleanup(func() {
		if had {
			_ = os.WriteFile(managedSettings, old, 0o644)
			return
		}
		_ = os.Remove(managedSettings)
	})
}

func TestDebInstallUpgradeRemovePurge(t *testing.T) {
	testutil.RequireRoot(t, "to install a package with dpkg")
	for _, tool := range []string{"dpkg", "make", "systemd-analyze", "rpm"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is missing (make deps installs it): %v", tool, err)
		}
	}
	if installed("") {
		t.Fatal("lineaged is installed on this machine: this test installs and purges the package, so remove it first (dpkg -P lineaged)")
	}
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	keepManagedSettings(t)
	t.Cleanup(func() {
		if installed("") {
			_ = exec.Command("dpkg", "--purge", "lineaged").Run()
		}
	})

	oldDeb, _ := buildPackages(t, root, "0.0.1")
	newDeb, newRPM := buildPackages(t, root, "0.0.2")

	// Install the older version.
	out := run(t, "", nil, "dpkg", "-i", oldDeb)
	if !installed("0.0.1") {
		t.Fatalf("dpkg -i did not install 0.0.1:\n%s", out)
	}
	// pid 1 is not systemd here: the postinst says how to run the sensor.
	if _, err := os.Stat("/run/systemd/system"); err != nil && !strings.Contains(out, "lineaged run --config /etc/lineaged/lineaged.yaml") {
		t.Errorf("postinst without systemd did not say how to run the sensor:\n%s", out)
	}
	wantFile(t, "/usr/bin/lineaged", 0o755)
	wantFile(t, "/usr/bin/lineaged-hook", 0o755)
	wantFile(t, "/usr/lib/systemd/system/lineaged.service", 0o644)
	wantFile(t, "/etc/lineaged", fs.ModeDir|0o700)
	wantFile(t, "/etc/lineaged/lineaged.yaml", 0o600)
	wantFile(t, "/etc/lineaged/rules/default.yaml", 0o600)
	wantFile(t, "/var/lib/lineaged", fs.ModeDir|0o700)
	wantFile(t, "/usr/share/doc/lineaged/README.md", 0o644)
	wantFile(t, "/usr/share/doc/lineaged/docs/schema.md", 0o644)
	conffiles := run(t, "", nil, "dpkg-query", "-W", "-f=${Conffiles}", "lineaged")
	for _, c := range []string{"/etc/lineaged/lineaged.yaml", "/etc/lineaged/rules/default.yaml"} {
		if !strings.Contains(conffiles, c) {
			t.Errorf("%s is not a conffile: %q", c, conffiles)
		}
	}

	// The installed sensor checks this host, with the installed
	// configuration, and the installed unit verifies.
	run(t, "", nil, "/usr/bin/lineaged", "doctor", "--config", "/etc/lineaged/lineaged.yaml")
	run(t, "", nil, "systemd-analyze", "verify", "/usr/lib/systemd/system/lineaged.service")

	// The admin's state: a spooled segment, a cached hash, an edited
	// configuration, the hook in Claude Code's managed settings, and
	// pinned kernel objects.
	spooled := "/var/lib/lineaged/spool/00000000000000000000.seg"
	if err := os.MkdirAll(filepath.Dir(spooled), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(spooled, []byte("spooled events"), 0o600); err != nil {
		t.Fatal(err)
	}
	conf, err := os.ReadFile("/etc/lineaged/lineaged.yaml")
	if err != nil {
		t.Fatal(err)
	}
	edited := append(conf, []byte("\n# edited by the admin\n")...)
	if err := os.WriteFile("/etc/lineaged/lineaged.yaml", edited, 0o600); err != nil {
		t.Fatal(err)
	}
	run(t, "", nil, "/usr/bin/lineaged", "hook", "install")
	if b, _ := os.ReadFile(managedSettings); !bytes.Contains(b, []byte("/usr/bin/lineaged-hook")) {
		t.Fatalf("hook install did not add the hook: %s", b)
	}
	pins := pinDir(t)

	// Upgrade: the state, the spool and the admin's edits stay.
	run(t, "", nil, "dpkg", "-i", newDeb)
	if !installed("0.0.2") {
		t.Fatal("the upgrade did not install 0.0.2")
	}
	if b, err := os.ReadFile(spooled); err != nil || string(b) != "spooled events" {
		t.Errorf("the upgrade lost the spool: %q %v", b, err)
	}
	if b, _ := os.ReadFile("/etc/lineaged/lineaged.yaml"); !bytes.Equal(b, edited) {
		t.Error("the upgrade replaced the admin's configuration")
	}
	if b, _ := os.ReadFile(managedSettings); !bytes.Contains(b, []byte("/usr/bin/lineaged-hook")) {
		t.Error("the upgrade removed the hook")
	}
	if _, err := os.Stat(pins); err != nil {
		t.Errorf("the upgrade unpinned the kernel objects: %v", err)
	}

	// Remove: the program, its hook and its pins go; the configuration and
	// the state stay for a reinstall.
	run(t, "", nil, "dpkg", "-r", "lineaged")
	wantGone(t, "/usr/bin/lineaged")
	wantGone(t, "/usr/bin/lineaged-hook")
	wantGone(t, "/usr/lib/systemd/system/lineaged.service")
	wantGone(t, pins)
	if b, err := os.ReadFile(managedSettings); err == nil && bytes.Contains(b, []byte("lineaged")) {
		t.Errorf("removal left the hook in %s: %s", managedSettings, b)
	}
	if _, err := os.Stat("/etc/lineaged/lineaged.yaml"); err != nil {
		t.Errorf("removal (not purge) took the configuration: %v", err)
	}
	if _, err := os.Stat(spooled); err != nil {
		t.Errorf("removal (not purge) took the spool: %v", err)
	}

	// Purge: nothing is left.
	run(t, "", nil, "dpkg", "--purge", "lineaged")
	if installed("") {
		t.Error("lineaged is still installed after purge")
	}
	for _, p := range []string{"/etc/lineaged", "/var/lib/lineaged", "/var/log/lineaged"} {
		wantGone(t, p)
	}

	// The .rpm holds the same files with the same modes.
	list := run(t, "", nil, "rpm", "-qlvp", newRPM)
	for _, want := range []string{
		"-rwxr-xr-x .* root +root .* /usr/bin/lineaged$",
		"-rw------- .* root +root .* /etc/lineaged/lineaged.yaml$",
		"-rw-r--r-- .* root +root .* /usr/lib/systemd/system/lineaged.service$",
	} {
		if !matchLine(list, want) {
			t.Errorf("rpm -qlvp: no line matching %q in\n%s", want, list)
		}
	}
	scripts := run(t, "", nil, "rpm", "-qp", "--scripts", newRPM)
	for _, want := range []string{"postinstall scriptlet", "preuninstall scriptlet", "postuninstall scriptlet", "hook uninstall"} {
		if !strings.Contains(scripts, want) {
			t.Errorf("rpm -qp --scripts: no %q in\n%s", want, scripts)
		}
	}
	conf2 := run(t, "", nil, "rpm", "-qcp", newRPM)
	if !strings.Contains(conf2, "/etc/lineaged/lineaged.yaml") {
		t.Errorf("the rpm's configuration files: %q", conf2)
	}
}

// pinDir makes the default pin directory the sensor uses under bpffs
// (mounting bpffs if it is not), standing for a service's pinned objects,
// and returns it. It must not exist yet: that would be another sensor's.
func pinDir(t *testing.T) string {
	t.Helper()
	const dir = "/sys/fs/bpf/lineaged"
	var st syscall.Statfs_t
	if err := syscall.Statfs("/sys/fs/bpf", &st); err != nil || st.Type != 0xcafe4a11 {
		if err := os.MkdirAll("/sys/fs/bpf", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := syscall.Mount("bpf", "/sys/fs/bpf", "bpf", 0, "mode=0700"); err != nil {
			t.Fatalf("mount bpffs: %v", err)
		}
	}
	if _, err := os.Stat(dir); err == nil {
		t.Fatalf("%s exists: a sensor on this machine pins there; stop it first", dir)
	}
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	return dir
}

func matchLine(text, pattern string) bool {
	for _, l := range strings.Split(text, "\n") {
		if ok, _ := regexp.MatchString(pattern, l); ok {
			return true
		}
	}
	return false
}
