package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestPickNewest(t *testing.T) {
	pkgs := []string{
		"linux-image-5.10.0-9-cloud-amd64",
		"linux-image-5.10.0-46-cloud-amd64",
		"linux-image-5.10.0-46-cloud-amd64-unsigned",
		"linux-image-5.10.0-46-cloud-amd64-dbg",
		"linux-image-6.1-cloud-amd64", // meta package
		"linux-image-6.1.0-0.deb11.52-cloud-amd64",
		"linux-image-6.1.0-56-cloud-amd64",
		"linux-image-6.12.117+deb12-cloud-amd64",
		"linux-image-6.12.117+deb13-cloud-amd64",
		"linux-image-6.12.99+deb13-cloud-amd64",
		"linux-image-6.19.14+deb13-cloud-amd64",
		"linux-image-7.3.4+deb13-cloud-amd64",
		"linux-image-7.2.12+deb13-cloud-amd64",
		"linux-image-7.3.4+deb13-amd64", // not a cloud image
	}
	for sel, want := range map[string]string{
		"5.10":   "linux-image-5.10.0-46-cloud-amd64",
		"6.1":    "linux-image-6.1.0-56-cloud-amd64",
		"6.12":   "linux-image-6.12.117+deb13-cloud-amd64",
		"6.19":   "linux-image-6.19.14+deb13-cloud-amd64",
		"newest": "linux-image-7.3.4+deb13-cloud-amd64",
	} {
		got, ok := archAMD64.pickNewest(pkgs, sel)
		if !ok || got != want {
			t.Errorf("pickNewest(%s) = %q, %v; want %q", sel, got, ok, want)
		}
	}
	if got, ok := archAMD64.pickNewest(pkgs, "4.19"); ok {
		t.Errorf("pickNewest(4.19) = %q, want none", got)
	}
}

func TestVersionLess(t *testing.T) {
	for _, c := range []struct{ a, b string }{
		{"6.1.0-9", "6.1.0-56"},
		{"6.19.14", "7.3.4"},
		{"6.12.117+deb12", "6.12.117+deb13"},
		{"6.1.0-0.deb11.52", "6.1.0-56"},
		{"6.1", "6.1.0"},
	} {
		if !versionLess(c.a, c.b) || versionLess(c.b, c.a) {
			t.Errorf("want %s < %s", c.a, c.b)
		}
	}
}

func TestParseSearchAndField(t *testing.T) {
	out := []byte("linux-image-6.1.0-56-cloud-amd64 - Linux 6.1 for x86-64 cloud (signed)\n" +
		"linux-image-6.1.0-56-cloud-amd64-dbg - Debug symbols\n")
	if got := archAMD64.parseSearch(out); len(got) != 1 || got[0] != "linux-image-6.1.0-56-cloud-amd64" {
		t.Errorf("parseSearch = %q", got)
	}
	show := []byte("Package: linux-image-7.3.4+deb13-cloud-amd64\nVersion: 7.3.4-1~bpo13+1\n" +
		"Depends: linux-base-7.3.4+deb13-cloud-amd64 (= 7.3.4-1~bpo13+1), linux-binary-7.3.4+deb13-cloud-amd64 (= 7.3.4-1~bpo13+1)\n")
	if v := field(show, "Version"); v != "7.3.4-1~bpo13+1" {
		t.Errorf("Version = %q", v)
	}
	if b := archAMD64.binaryRE.FindString(field(show, "Depends")); b != "linux-binary-7.3.4+deb13-cloud-amd64" {
		t.Errorf("linux-binary dependency = %q", b)
	}
}

const sampleGuest = "VMTEST-KERNEL 6.1.0-56-cloud-amd64\r\n" +
	"VMTEST-LSM lockdown,capability\r\n" +
	"VMTEST-BEGIN smoke\r\n" +
	"=== RUN   TestA\r\n" +
	"--- PASS: TestA (0.01s)\r\n" +
	"=== RUN   TestB\r\n" +
	"=== RUN   TestB/x\r\n" +
	"VMTEST FEATURE fentry yes\r\n" +
	"=== RUN   TestB/y\r\n" +
	"VMTEST FEATURE lsm no bpf not in active LSMs (capability)\r\n" +
	"VMTEST VERIFIED sensor/p_bpfel.o handle_exec 2535\r\n" +
	"VMTEST UNVERIFIED sensor/p_bpfel.o handle_lsm refused\r\n" +
	"--- FAIL: TestB (0.02s)\r\n" +
	"    --- PASS: TestB/x (0.00s)\r\n" +
	"    --- SKIP: TestB/y (0.00s)\r\n" +
	"FAIL\r\n" +
	"VMTEST-END smoke 1\r\n" +
	"VMTEST-BEGIN sensor\r\n" +
	"=== RUN   TestRoot\r\n" +
	"--- FAIL: TestRoot (1.00s)\r\n" +
	"=== RUN   TestHang\r\n"

func TestParseGuest(t *testing.T) {
	g := &guestRun{Selector: "6.1"}
	parseGuest(strings.NewReader(sampleGuest), g)
	want := map[string]string{
		"smoke: TestA":     statusPass,
		"smoke: TestB":     statusFail, // failed parent: kept and counted
		"smoke: TestB/x":   statusPass,
		"smoke: TestB/y":   statusSkip,
		"sensor: TestRoot": statusFail,
		"sensor: TestHang": statusFail, // started, never reported
	}
	if len(g.Results) != len(want) {
		t.Errorf("results = %v, want %v", g.Results, want)
	}
	for n, st := range want {
		if g.Results[n] != st {
			t.Errorf("%s = %q, want %q", n, g.Results[n], st)
		}
	}
	if g.Uname != "6.1.0-56-cloud-amd64" || g.LSM != "lockdown,capability" {
		t.Errorf("uname %q lsm %q", g.Uname, g.LSM)
	}
	if g.Done {
		t.Error("Done without VMTEST-DONE")
	}
	if f := g.Features["fentry"]; !f.Available {
		t.Errorf("fentry = %+v", f)
	}
	if f := g.Features["lsm"]; f.Available || f.Reason != "bpf not in active LSMs (capability)" {
		t.Errorf("lsm = %+v", f)
	}
	if g.Verified["sensor/p_bpfel.o handle_exec"] != 2535 || g.Refused["sensor/p_bpfel.o handle_lsm"] != "refused" {
		t.Errorf("verified %v refused %v", g.Verified, g.Refused)
	}
	joined := strings.Join(g.Problems, "\n")
	for _, p := range []string{"no exit marker", "sensor never finished"} {
		if !strings.Contains(joined, p) {
			t.Errorf("problems %q lack %q", joined, p)
		}
	}
	if w := g.Why["sensor: TestHang"]; !strings.HasPrefix(w, "no result (") {
		t.Errorf("sensor: TestHang failed because %q, want no result", w)
	}
	if len(g.Problems) != 2 {
		t.Errorf("problems %q: want the two not tied to a test", g.Problems)
	}
	// 2 passed; TestB (a parent whose subtests did not fail), TestRoot and
	// TestHang failed, plus the two problems not tied to one test (no
	// marker, never finished); TestB/y skipped; one kernel not run.
	if c := count([]*guestRun{g, {Selector: "7.3", NotRun: "download failed"}}); c != (totals{Passed: 2, Failed: 5, Skipped: 1, NotRun: 1}) {
		t.Errorf("count = %+v", c)
	}
}

func TestParseGuestCleanRun(t *testing.T) {
	out := "VMTEST-KERNEL 5.10.0-46-cloud-amd64\nVMTEST-LSM bpf\nVMTEST-BEGIN smoke\n" +
		"=== RUN   TestA\n--- PASS: TestA (0.01s)\nPASS\nVMTEST-END smoke 0\nVMTEST-DONE\n"
	g := &guestRun{}
	parseGuest(strings.NewReader(out), g)
	if len(g.Problems) != 0 || !g.Done || g.Results["smoke: TestA"] != statusPass {
		t.Errorf("clean run parsed as %+v", g)
	}
	// A binary that fails with no failing test (a panic in TestMain, say)
	// is a problem, as is one that ran nothing.
	out = "VMTEST-KERNEL x\nVMTEST-BEGIN a\nVMTEST-END a 2\nVMTEST-BEGIN b\nVMTEST-END b 0\nVMTEST-DONE\n"
	g = &guestRun{}
	parseGuest(strings.NewReader(out), g)
	if c := count([]*guestRun{g}); c.Failed != 2 {
		t.Errorf("problems %q counted as %+v", g.Problems, c)
	}
}

// readCpio parses a newc archive back into name -> (mode, data).
func readCpio(t *testing.T, b []byte) map[string]struct {
	mode uint64
	data string
	rdev [2]uint64
} {
	t.Helper()
	out := map[string]struct {
		mode uint64
		data string
		rdev [2]uint64
	}{}
	align := func(n int) int { return (n + 3) &^ 3 }
	off := 0
	for {
		if off+110 > len(b) || string(b[off:off+6]) != "070701" {
			t.Fatalf("bad header at %d", off)
		}
		f := func(i int) uint64 {
			v, err := strconv.ParseUint(string(b[off+6+8*i:off+14+8*i]), 16, 32)
			if err != nil {
				t.Fatal(err)
			}
			return v
		}
		mode, size, namesize := f(1), f(6), f(11)
		name := string(b[off+110 : off+110+int(namesize)-1])
		data := align(off + 110 + int(namesize))
		if name == "TRAILER!!!" {
			return out
		}
		out[name] = struct {
			mode uint64
			data string
			rdev [2]uint64
		}{mode, string(b[data : data+int(size)]), [2]uint64{f(9), f(10)}}
		off = align(data + int(size))
	}
}

func TestBuildInitramfs(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	bb := write("busybox", "BUSYBOX", 0o755)
	bin := write("smoke.test", "ELF", 0o755)
	obj := write("x_bpfel.o", "OBJ", 0o644)
	td := write("td/helper.sh", "#!/bin/sh", 0o755)
	var buf bytes.Buffer
	dash, err := filepath.EvalSymlinks("/bin/dash")
	if err != nil {
		t.Fatal(err)
	}
	err = buildInitramfs(&buf, initramfsSpec{
		Busybox: bb,
		Init: initConfig{
			Tests:       []guestTest{{Name: "smoke", Binary: bin}},
			TestTimeout: "5m0s",
		},
		Objects:  map[string]string{"sensor/x_bpfel.o": obj},
		Testdata: map[string]map[string]string{"smoke": {"sub/helper.sh": td}},
		HostBins: []string{"/bin/dash"},
		Lineaged: bin,
	})
	if err != nil {
		t.Fatal(err)
	}
	files := readCpio(t, buf.Bytes())
	for name, want := range map[string]struct {
		mode uint64
		data string
	}{
		"tests/smoke.test":                 {0o100755, "ELF"},
		"objs/sensor/x_bpfel.o":            {0o100644, "OBJ"},
		"objs/sensor":                      {0o040755, ""},
		"pkg/smoke/testdata/sub/helper.sh": {0o100755, "#!/bin/sh"},
		"pkg/smoke/testdata/sub":           {0o040755, ""},
		"pkg/smoke":                        {0o040755, ""},
		"init":                             {0o100755, ""},
		"opt/vmtest/lineaged":              {0o100755, "ELF"},
		"var/lib/dpkg/info":                {0o040755, ""},
		"dev/console":                      {0o020600, ""},
	} {
		got, ok := files[name]
		if !ok {
			t.Errorf("%s missing from archive", name)
			continue
		}
		if got.mode != want.mode || (want.data != "" && got.data != want.data) {
			t.Errorf("%s: mode %o data %q, want %o %q", name, got.mode, got.data, want.mode, want.data)
		}
	}
	// /bin/dash comes with the loader and libc it needs, at the host's
	// paths, and with the host's symlinks (/bin -> usr/bin on merged /usr).
	deps, err := elfDeps(dash)
	if err != nil {
		t.Fatal(err)
	}
	if len(deps) < 2 {
		t.Errorf("dash needs %q: want at least its loader and libc", deps)
	}
	for _, p := range append([]string{dash}, deps...) {
		real, err := filepath.EvalSymlinks(p)
		if err != nil {
			t.Fatal(err)
		}
		if f, ok := files[strings.TrimPrefix(real, "/")]; !ok || f.mode&0o170000 != 0o100000 {
			t.Errorf("%s (%s) not packed as a file", p, real)
		}
	}
	if target, err := os.Readlink("/bin"); err == nil {
		if f := files["bin"]; f.mode&0o170000 != 0o120000 || f.data != target {
			t.Errorf("bin packed as mode %o -> %q, host has a symlink to %q", f.mode, f.data, target)
		}
		if _, ok := files[path.Join(target, "busybox")]; !ok {
			t.Errorf("busybox not packed under %s", target)
		}
	}
	if c := files["dev/console"].rdev; c != [2]uint64{5, 1} {
		t.Errorf("dev/console rdev %v", c)
	}
	script := files["init"].data
	for _, s := range []string{
		"#!/bin/busybox sh",
		"mount -t bpf bpf /sys/fs/bpf",
		"rm -f /bin/dpkg /bin/dpkg-deb /bin/rpm /bin/rpm2cpio",
		"mount -t tracefs tracefs /sys/kernel/tracing",
		"mount -t securityfs securityfs /sys/kernel/security",
		"vmtest.require_attach=*) VMTEST_REQUIRE_ATTACH=",
		"exec 3>/dev/ttyS1\n",
		`echo "VMTEST-REQUIRE-ATTACH $VMTEST_REQUIRE_ATTACH" >&3`,
		"/tests/smoke.test -test.v -test.count=1 -test.timeout=5m0s",
		"export LINEAGED_TEST_BINARY=/opt/vmtest/lineaged",
		`echo "VMTEST-END smoke $?"`,
		`echo "VMTEST-DONE"`,
	} {
		if !strings.Contains(script, s) {
			t.Errorf("init lacks %q:\n%s", s, script)
		}
	}

	// Names end up in a shell script: anything but a plain name is refused.
	err = buildInitramfs(&buf, initramfsSpec{Busybox: bb, Init: initConfig{
		Tests:       []guestTest{{Name: "x; reboot", Binary: bin}},
		TestTimeout: "1m",
	}})
	if err == nil {
		t.Error("unsafe test name accepted")
	}
}

func TestParseFlags(t *testing.T) {
	t.Setenv("VMTEST_ALLOW_MISSING", "") // the tests below do not allow missing kernels
	cfg, err := parseFlags([]string{"-kernels", "5.10, 6.1,newest,6.12-nolsm"})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(cfg.kernels, " ") != "5.10 6.1 newest 6.12-nolsm" {
		t.Errorf("kernels = %q", cfg.kernels)
	}
	// A -nolsm guest boots without the BPF LSM and does not require it.
	if lsm, req := guestLSM(cfg, "6.12"); lsm != cfg.lsm || req != "all" {
		t.Errorf("guestLSM(6.12) = %q, %q", lsm, req)
	}
	if lsm, req := guestLSM(cfg, "6.12-nolsm"); lsm != "lockdown,capability,landlock,yama,apparmor" || req != "tracepoint,raw_tp,tp_btf,fentry,kprobe" {
		t.Errorf("guestLSM(6.12-nolsm) = %q, %q", lsm, req)
	}
	for _, args := range [][]string{
		{"-kernels", "6"},
		{"-kernels", "6.1-bpf"},
		{"-kernels", "6.1;reboot"},
		{"-kernels", ""},
		{"-pkgs", "sensor"},
		{"-pkgs", "./..."},
		{"-lsm", "bpf yama"},
		{"-cache", "a,b"},
		{"extra"},
	} {
		if _, err := parseFlags(args); err == nil {
			t.Errorf("parseFlags(%q) accepted", args)
		}
	}
}

func TestTables(t *testing.T) {
	ok := &guestRun{Selector: "6.1", Kernel: &Kernel{Package: "linux-image-6.1.0-56-cloud-amd64", Version: "6.1.192-2"}}
	parseGuest(strings.NewReader("VMTEST-KERNEL 6.1.0-56-cloud-amd64\nVMTEST-BEGIN s\n=== RUN   TestA\n"+
		"VMTEST FEATURE lsm yes\nVMTEST VERIFIED o.o p 12\nVMTEST UNVERIFIED o.o q rejected\n"+
		"--- PASS: TestA (0.00s)\n=== RUN   TestB\n--- FAIL: TestB (0.00s)\nVMTEST-END s 1\nVMTEST-DONE\n"), ok)
	missing := &guestRun{Selector: "newest", NotRun: "download failed"}
	kt, tt, ft, vt := tables([]*guestRun{ok, missing})
	var b bytes.Buffer
	for _, tab := range []*table{kt, tt, ft, vt} {
		tab.text(&b)
	}
	out := b.String()
	for _, want := range []string{
		"6.1     linux-image-6.1.0-56-cloud-amd64  6.1.192-2  6.1.0-56-cloud-amd64  0s    1       1       0                  0        FAIL: 1 failed test",
		"newest  -",
		"NOT RUN: download failed",
		"s: TestA  PASS  -",
		"s: TestB  FAIL  -",
		"lsm         yes  -",
		"o.o     p        12        -",
		"o.o     q        rejected  -",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("tables lack %q:\n%s", want, out)
		}
	}
}

// sampleParentFailed is a deny-exec run whose parent test failed on its own
// (an error after its subtest) while its one subtest passed; the binary
// exited 1.
const sampleParentFailed = "VMTEST-KERNEL 6.12.117+deb13-cloud-amd64\n" +
	"VMTEST-LSM lockdown,capability,bpf\n" +
	"VMTEST-BEGIN tests_denyexec\n" +
	"=== RUN   TestRootDenyExec\n" +
	"=== RUN   TestRootDenyExec/lsm\n" +
	"    denyexec_test.go:132: Close: close ring buffer: bad file descriptor\n" +
	"--- FAIL: TestRootDenyExec (1.20s)\n" +
	"    --- PASS: TestRootDenyExec/lsm (0.80s)\n" +
	"FAIL\n" +
	"VMTEST-END tests_denyexec 1\n" +
	"VMTEST-DONE\n"

// A parent test that fails counts as a failure even when every subtest
// passed; a parent that passes is left out, so it is not counted twice.
func TestFailedParentCounts(t *testing.T) {
	g := &guestRun{Selector: "6.12"}
	parseGuest(strings.NewReader(sampleParentFailed), g)
	if st := g.Results["tests_denyexec: TestRootDenyExec"]; st != statusFail {
		t.Errorf("parent TestRootDenyExec = %q, want %s", st, statusFail)
	}
	if st := g.Results["tests_denyexec: TestRootDenyExec/lsm"]; st != statusPass {
		t.Errorf("subtest /lsm = %q, want %s", st, statusPass)
	}
	if c := count([]*guestRun{g}); c != (totals{Passed: 1, Failed: 1}) {
		t.Errorf("count = %+v, want 1 passed, 1 failed", c)
	}

	passed := strings.NewReplacer("--- FAIL: TestRootDenyExec", "--- PASS: TestRootDenyExec",
		"FAIL\n", "PASS\n", "VMTEST-END tests_denyexec 1", "VMTEST-END tests_denyexec 0").Replace(sampleParentFailed)
	g = &guestRun{Selector: "6.12"}
	parseGuest(strings.NewReader(passed), g)
	if _, ok := g.Results["tests_denyexec: TestRootDenyExec"]; ok || len(g.Problems) != 0 {
		t.Errorf("passing parent kept: results %v, problems %q", g.Results, g.Problems)
	}
	if c := count([]*guestRun{g}); c != (totals{Passed: 1}) {
		t.Errorf("count = %+v, want 1 passed", c)
	}
}

// A test binary that exits non-zero without a failing test is a failure,
// however its tests ended.
func TestNonZeroExitWithoutFailLine(t *testing.T) {
	for name, log := range map[string]string{
		"passing tests": "VMTEST-KERNEL x\nVMTEST-BEGIN a\n=== RUN   TestA\n--- PASS: TestA (0.00s)\nPASS\nVMTEST-END a 1\nVMTEST-DONE\n",
		"passing subtests": "VMTEST-KERNEL x\nVMTEST-BEGIN a\n=== RUN   TestA\n=== RUN   TestA/x\n--- PASS: TestA (0.00s)\n" +
			"    --- PASS: TestA/x (0.00s)\nok\nVMTEST-END a 2\nVMTEST-DONE\n",
		"skipped test":   "VMTEST-KERNEL x\nVMTEST-BEGIN a\n=== RUN   TestA\n--- SKIP: TestA (0.00s)\nVMTEST-END a 1\nVMTEST-DONE\n",
		"garbled code":   "VMTEST-KERNEL x\nVMTEST-BEGIN a\n=== RUN   TestA\n--- PASS: TestA (0.00s)\nVMTEST-END a x1\nVMTEST-DONE\n",
		"missing code":   "VMTEST-KERNEL x\nVMTEST-BEGIN a\n=== RUN   TestA\n--- PASS: TestA (0.00s)\nVMTEST-END a\nVMTEST-DONE\n",
		"no test at all": "VMTEST-KERNEL x\nVMTEST-BEGIN a\npanic: boom\nVMTEST-END a 2\nVMTEST-DONE\n",
	} {
		g := &guestRun{Selector: "6.12"}
		parseGuest(strings.NewReader(log), g)
		if c := count([]*guestRun{g}); c.Failed != 1 {
			t.Errorf("%s: counted as %+v (problems %q), want 1 failure", name, c, g.Problems)
		}
	}
}

// The kernels table, text and markdown alike, says "ok" only for a guest
// where nothing failed: a failed test fails the guest's row even when the
// guest finished cleanly.
func TestGuestResultColumn(t *testing.T) {
	kernel := &Kernel{Package: "linux-image-6.1.0-56-cloud-amd64", Version: "6.1.192-2"}
	failed := &guestRun{Selector: "6.1", Kernel: kernel}
	parseGuest(strings.NewReader("VMTEST-KERNEL 6.1.0-56-cloud-amd64\nVMTEST-BEGIN s\n"+
		"=== RUN   TestA\n--- PASS: TestA (0.00s)\n=== RUN   TestB\n--- FAIL: TestB (0.00s)\nFAIL\n"+
		"VMTEST-END s 1\nVMTEST-DONE\n"), failed)
	clean := &guestRun{Selector: "6.12", Kernel: kernel}
	parseGuest(strings.NewReader("VMTEST-KERNEL 6.12.117+deb13-cloud-amd64\nVMTEST-BEGIN s\n"+
		"=== RUN   TestA\n--- PASS: TestA (0.00s)\nPASS\nVMTEST-END s 0\nVMTEST-DONE\n"), clean)
	if len(failed.Problems) != 0 {
		t.Fatalf("failed guest has problems %q: want only a failed test", failed.Problems)
	}
	kt, _, _, _ := tables([]*guestRun{failed, clean})
	var md bytes.Buffer
	kt.markdown(&md)
	rows := strings.Split(strings.TrimSpace(md.String()), "\n")
	if len(rows) != 4 {
		t.Fatalf("markdown kernels table:\n%s", md.String())
	}
	if r := rows[2]; !strings.HasPrefix(r, "| 6.1 |") || strings.HasSuffix(r, "| ok |") || !strings.Contains(r, "FAIL: 1 failed test") {
		t.Errorf("guest with a failed test: row %q, want FAIL naming the failed test", r)
	}
	if r := rows[3]; !strings.HasPrefix(r, "| 6.12 |") || !strings.HasSuffix(r, "| ok |") {
		t.Errorf("clean guest: row %q, want ok", r)
	}
	var txt bytes.Buffer
	kt.text(&txt)
	if lines := strings.Split(txt.String(), "\n"); len(lines) < 3 || strings.HasSuffix(strings.TrimSpace(lines[1]), " ok") {
		t.Errorf("text kernels table says ok for a failed guest:\n%s", txt.String())
	}
}

// parseSample parses a guest log for a selector, as boot does.
func parseSample(t *testing.T, selector, log string) *guestRun {
	t.Helper()
	g := &guestRun{Selector: selector, Kernel: &Kernel{Selector: selector, Package: "linux-image-test", Version: "1"}}
	parseGuest(strings.NewReader(log), g)
	return g
}

// cleanLog is a guest log where the one test passed.
func cleanLog(uname string) string {
	return "VMTEST-KERNEL " + uname + "\nVMTEST-LSM lockdown,capability,bpf\nVMTEST-BEGIN s\n" +
		"=== RUN   TestA\n--- PASS: TestA (0.00s)\nPASS\nVMTEST-END s 0\nVMTEST-DONE\n"
}

func TestVerdict(t *testing.T) {
	t.Setenv("VMTEST_ALLOW_MISSING", "") // the tests below do not allow missing kernels
	cfg, err := parseFlags(nil)
	if err != nil {
		t.Fatal(err)
	}
	clean := parseSample(t, "6.12", cleanLog("6.12.117+deb13-cloud-amd64"))
	if ok, why := verdict([]*guestRun{clean}, cfg); !ok || len(why) != 0 {
		t.Errorf("clean run: ok %v, why %q", ok, why)
	}
	failed := parseSample(t, "6.1", strings.Replace(cleanLog("6.1.0-56-cloud-amd64"), "--- PASS", "--- FAIL", 1))
	if ok, why := verdict([]*guestRun{clean, failed}, cfg); ok || len(why) == 0 {
		t.Errorf("failed test: ok %v, why %q", ok, why)
	}
	if ok, _ := verdict(nil, cfg); ok {
		t.Error("run with no kernel passed")
	}
}

// Every listed kernel must run: one that could not be resolved or
// downloaded fails the run, not only a run where no kernel booted at all.
func TestMissingKernelFailsRun(t *testing.T) {
	t.Setenv("CI", "")
	t.Setenv("VMTEST_ALLOW_MISSING", "")
	cfg, err := parseFlags([]string{"-kernels", "6.12,6.1"})
	if err != nil {
		t.Fatal(err)
	}
	clean := parseSample(t, "6.12", cleanLog("6.12.117+deb13-cloud-amd64"))
	missing := &guestRun{Selector: "6.1", NotRun: "resolve 6.1: apt-get update: exit status 100"}
	ok, why := verdict([]*guestRun{clean, missing}, cfg)
	if ok {
		t.Fatal("run passed with kernel 6.1 not run")
	}
	if j := strings.Join(why, "\n"); !strings.Contains(j, "6.1") || !strings.Contains(j, "apt-get update: exit status 100") {
		t.Errorf("why %q does not name the kernel and its reason", why)
	}
}

// -allow-missing (or VMTEST_ALLOW_MISSING=1) accepts fewer kernels on a
// developer's machine, never under CI, and never none at all.
func TestAllowMissing(t *testing.T) {
	clean := parseSample(t, "6.12", cleanLog("6.12.117+deb13-cloud-amd64"))
	missing := &guestRun{Selector: "6.1", NotRun: "download failed"}
	for _, c := range []struct {
		name     string
		ci, env  string
		args     []string
		parseErr bool
		ok       bool
	}{
		{name: "flag", args: []string{"-allow-missing"}, ok: true},
		{name: "env", env: "1", ok: true},
		{name: "env off", env: "0"},
		{name: "flag under CI", ci: "true", args: []string{"-allow-missing"}, parseErr: true},
		{name: "env under CI", ci: "true", env: "1", parseErr: true},
		{name: "CI, not asked", ci: "true"},
		{name: "bad env", env: "maybe", parseErr: true},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Setenv("CI", c.ci)
			t.Setenv("VMTEST_ALLOW_MISSING", c.env)
			cfg, err := parseFlags(c.args)
			if c.parseErr {
				if err == nil {
					t.Fatalf("parseFlags(%q) with CI=%q VMTEST_ALLOW_MISSING=%q accepted", c.args, c.ci, c.env)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if ok, why := verdict([]*guestRun{clean, missing}, cfg); ok != c.ok {
				t.Errorf("one kernel missing: ok %v (%q), want %v", ok, why, c.ok)
			}
			if ok, _ := verdict([]*guestRun{missing}, cfg); ok {
				t.Error("run passed with no kernel booted")
			}
		})
	}
}

// testDefects is a known-defect table for the harness's own tests, which
// must not depend on what the real table (knownDefects) holds.
func testDefects() []knownDefect {
	return []knownDefect{{
		Test:   "TestRootSessionsMapFullIsCounted",
		Series: []string{"5.10", "6.1"},
		Reason: "a full sessions map is never counted",
	}}
}

// parseDefectSample parses a guest log like parseSample, with testDefects
// as the known-defect table.
func parseDefectSample(t *testing.T, selector, log string) *guestRun {
	t.Helper()
	g := &guestRun{Selector: selector, Kernel: &Kernel{Selector: selector, Package: "linux-image-test", Version: "1"}}
	parseGuestWith(strings.NewReader(log), g, testDefects())
	return g
}

// defectLog is a sensor run in which TestRootSessionsMapFullIsCounted, a
// known defect on 5.10 and 6.1 in testDefects, ended with status (PASS,
// FAIL or SKIP).
func defectLog(uname, status string) string {
	rc := "0"
	if status == "FAIL" {
		rc = "1"
	}
	return "VMTEST-KERNEL " + uname + "\nVMTEST-LSM lockdown,capability,bpf\nVMTEST-BEGIN sensor\n" +
		"=== RUN   TestOther\n--- PASS: TestOther (0.00s)\n" +
		"=== RUN   TestRootSessionsMapFullIsCounted\n" +
		"    sensor_root_test.go:960: no sessions-full count: {SessionsFull:0}\n" +
		"--- " + status + ": TestRootSessionsMapFullIsCounted (2.10s)\n" +
		"VMTEST-END sensor " + rc + "\nVMTEST-DONE\n"
}

// A known defect that fails where it is known to is an expected failure:
// shown and counted apart, and the run passes. Anywhere else its failure
// is an ordinary one.
func TestKnownDefectExpectedFailure(t *testing.T) {
	t.Setenv("VMTEST_ALLOW_MISSING", "")
	cfg, err := parseFlags(nil)
	if err != nil {
		t.Fatal(err)
	}
	old := parseDefectSample(t, "5.10", defectLog("5.10.0-46-cloud-amd64", "FAIL"))
	bookworm := parseDefectSample(t, "6.1-nolsm", defectLog("6.1.0-56-cloud-amd64", "FAIL"))
	if ok, why := verdict([]*guestRun{old, bookworm}, cfg); !ok {
		t.Errorf("known defect failing on 5.10 and 6.1 failed the run: %q", why)
	}
	if len(old.Problems) != 0 {
		t.Errorf("problems %q: the expected failure explains the exit code", old.Problems)
	}
	kt, tt, _, _ := tables([]*guestRun{old, bookworm})
	var b bytes.Buffer
	kt.text(&b)
	tt.text(&b)
	for _, want := range []string{
		"expected failures",
		"sensor: TestRootSessionsMapFullIsCounted  XFAIL  XFAIL",
		"sensor: TestOther                         PASS   PASS",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("tables lack %q:\n%s", want, b.String())
		}
	}

	current := parseDefectSample(t, "6.12", defectLog("6.12.117+deb13-cloud-amd64", "FAIL"))
	if ok, _ := verdict([]*guestRun{current}, cfg); ok {
		t.Error("a failure on 6.12, where the defect is not known, passed the run")
	}
}

// A known defect that passes where it is known to fail is reported (fixed?
// remove it from the table) and fails the run; one that is skipped there
// hides the defect and fails the run too.
func TestKnownDefectUnexpectedPassOrSkip(t *testing.T) {
	t.Setenv("VMTEST_ALLOW_MISSING", "")
	cfg, err := parseFlags(nil)
	if err != nil {
		t.Fatal(err)
	}
	passed := parseDefectSample(t, "6.1", defectLog("6.1.0-56-cloud-amd64", "PASS"))
	ok, why := verdict([]*guestRun{passed}, cfg)
	if ok {
		t.Error("known defect passing on 6.1 passed the run")
	}
	if j := strings.Join(why, "\n"); !strings.Contains(j, "TestRootSessionsMapFullIsCounted") || !strings.Contains(j, "fixed?") {
		t.Errorf("why %q does not name the test and ask whether it is fixed", why)
	}
	kt, _, _, _ := tables([]*guestRun{passed})
	var b bytes.Buffer
	kt.markdown(&b)
	if strings.HasSuffix(strings.TrimSpace(b.String()), "| ok |") {
		t.Errorf("kernels table says ok for an unexpected pass:\n%s", b.String())
	}

	skipped := parseDefectSample(t, "5.10", defectLog("5.10.0-46-cloud-amd64", "SKIP"))
	if ok, _ := verdict([]*guestRun{skipped}, cfg); ok {
		t.Error("known defect skipped on 5.10 passed the run")
	}
	if j := strings.Join(skipped.Problems, "\n"); !strings.Contains(j, "TestRootSessionsMapFullIsCounted") || !strings.Contains(j, "skip") {
		t.Errorf("problems %q do not name the skipped known defect", skipped.Problems)
	}
}

// lsmGuestLog is a guest log in which the deny-exec test ran the
// tracepoint fallback and the smoke tests were refused the LSM programs,
// every test passing or skipping. lsms is the guest's active LSM list and
// require its VMTEST_REQUIRE_ATTACH.
func lsmGuestLog(lsms, require string) string {
	return "VMTEST-KERNEL 6.12.117+deb13-cloud-amd64\n" +
		"VMTEST-LSM " + lsms + "\n" +
		"VMTEST-REQUIRE-ATTACH " + require + "\n" +
		"VMTEST-BEGIN tests_vmtest_smoke\n" +
		"=== RUN   TestAttachTypes\n" +
		"=== RUN   TestAttachTypes/tracepoint\n" +
		"VMTEST FEATURE tracepoint yes\n" +
		"=== RUN   TestAttachTypes/lsm\n" +
		"VMTEST FEATURE lsm no load: operation not permitted\n" +
		"    smoke_test.go:250: kernel does not offer lsm: load: operation not permitted\n" +
		"--- PASS: TestAttachTypes (0.10s)\n" +
		"    --- PASS: TestAttachTypes/tracepoint (0.01s)\n" +
		"    --- SKIP: TestAttachTypes/lsm (0.01s)\n" +
		"=== RUN   TestVerifierBudget\n" +
		"=== RUN   TestVerifierBudget/sensor/enforcelsm/enforce_bprm_check\n" +
		"VMTEST UNVERIFIED sensor/enforcelsm_bpfel.o enforce_bprm_check refused lsm\n" +
		"    smoke_test.go:420: kernel refuses enforce_bprm_check (LSM): operation not permitted\n" +
		"=== RUN   TestVerifierBudget/sensor/process/handle_exec\n" +
		"VMTEST VERIFIED sensor/process_bpfel.o handle_exec 176968\n" +
		"=== RUN   TestVerifierBudget/sensor/fentry/probe\n" +
		"VMTEST UNVERIFIED sensor/fentry_bpfel.o probe refused\n" +
		"--- PASS: TestVerifierBudget (2.00s)\n" +
		"    --- SKIP: TestVerifierBudget/sensor/enforcelsm/enforce_bprm_check (0.01s)\n" +
		"    --- PASS: TestVerifierBudget/sensor/process/handle_exec (1.90s)\n" +
		"    --- SKIP: TestVerifierBudget/sensor/fentry/probe (0.01s)\n" +
		"PASS\n" +
		"VMTEST-END tests_vmtest_smoke 0\n" +
		"VMTEST-BEGIN tests_denyexec\n" +
		"=== RUN   TestRootDenyExec\n" +
		"    denyexec_test.go:128: enforcement: tracepoint+SIGKILL (LSM refused: operation not permitted)\n" +
		"=== RUN   TestRootDenyExec/tracepoint\n" +
		"--- PASS: TestRootDenyExec (3.20s)\n" +
		"    --- PASS: TestRootDenyExec/tracepoint (2.90s)\n" +
		"PASS\n" +
		"VMTEST-END tests_denyexec 0\n" +
		"VMTEST-DONE\n"
}

// Where bpf is an active LSM, the LSM path is the one that must run: a
// deny-exec run on the tracepoint fallback, a refused LSM probe or a
// refused LSM program fails, whatever the guest's tests concluded.
func TestLSMPathRequiredWhereBPFIsActive(t *testing.T) {
	t.Setenv("VMTEST_ALLOW_MISSING", "")
	cfg, err := parseFlags(nil)
	if err != nil {
		t.Fatal(err)
	}
	g := parseSample(t, "6.12", lsmGuestLog("lockdown,capability,landlock,yama,apparmor,bpf,ima,evm", "none"))
	if ok, _ := verdict([]*guestRun{g}, cfg); ok {
		t.Error("run passed with the tracepoint fallback and refused LSM programs on a guest where bpf is an active LSM")
	}
	for _, name := range []string{
		"tests_denyexec: TestRootDenyExec/tracepoint",
		"tests_vmtest_smoke: TestAttachTypes/lsm",
		"tests_vmtest_smoke: TestVerifierBudget/sensor/enforcelsm/enforce_bprm_check",
	} {
		if st := g.Results[name]; st != statusFail {
			t.Errorf("%s = %s, want %s", name, st, statusFail)
		}
	}
	// A known limit of the kernel, which the sensor handles by leaving the
	// program out, is shown and not judged.
	log := strings.Replace(lsmGuestLog("lockdown,capability,yama,apparmor,bpf", "none"),
		"VMTEST UNVERIFIED sensor/fentry_bpfel.o probe refused\n",
		"VMTEST UNVERIFIED sensor/fentry_bpfel.o probe refused\n"+
			"=== RUN   TestVerifierBudget/sensor/pathlsm_x86/path_lsm_chown\n"+
			"VMTEST UNVERIFIED sensor/pathlsm_x86_bpfel.o path_lsm_chown limit lsm\n", 1)
	log = strings.Replace(log, "    --- SKIP: TestVerifierBudget/sensor/fentry/probe (0.01s)\n",
		"    --- SKIP: TestVerifierBudget/sensor/fentry/probe (0.01s)\n"+
			"    --- SKIP: TestVerifierBudget/sensor/pathlsm_x86/path_lsm_chown (0.01s)\n", 1)
	limited := parseSample(t, "5.10", log)
	if st := limited.Results["tests_vmtest_smoke: TestVerifierBudget/sensor/pathlsm_x86/path_lsm_chown"]; st == statusFail {
		t.Errorf("a known limit failed: %s (%v)", st, limited.Why)
	}
	if limited.Refused["sensor/pathlsm_x86_bpfel.o path_lsm_chown"] != "limit" {
		t.Errorf("the limit is not shown: %v", limited.Refused)
	}
	// Not an LSM program and not required: the refusal stays a skip.
	if st := g.Results["tests_vmtest_smoke: TestVerifierBudget/sensor/fentry/probe"]; st != statusSkip {
		t.Errorf("unrequired fentry refusal = %s, want %s", st, statusSkip)
	}

	// Without bpf in the active LSMs (a -nolsm guest) the fallback is
	// the right path and the LSM refusals are skips.
	nolsm := parseSample(t, "6.12-nolsm", lsmGuestLog("lockdown,capability,landlock,yama,apparmor,ima,evm", "tracepoint,raw_tp,tp_btf,kprobe"))
	if ok, why := verdict([]*guestRun{nolsm}, cfg); !ok {
		t.Errorf("-nolsm guest failed: %q %v", why, nolsm.Results)
	}
}

// A program the kernel refuses fails the smoke test's verdict when the
// guest's VMTEST_REQUIRE_ATTACH requires its attach kind ("all" requires
// every kind, even one the output does not name).
func TestRefusedProgramFailsWhenRequired(t *testing.T) {
	t.Setenv("VMTEST_ALLOW_MISSING", "")
	cfg, err := parseFlags(nil)
	if err != nil {
		t.Fatal(err)
	}
	g := parseSample(t, "6.12-nolsm", lsmGuestLog("lockdown,capability,ima,evm", "all"))
	if ok, _ := verdict([]*guestRun{g}, cfg); ok {
		t.Error("run passed with refused programs where VMTEST_REQUIRE_ATTACH=all")
	}
	for _, name := range []string{
		"tests_vmtest_smoke: TestAttachTypes/lsm",
		"tests_vmtest_smoke: TestVerifierBudget/sensor/enforcelsm/enforce_bprm_check",
		"tests_vmtest_smoke: TestVerifierBudget/sensor/fentry/probe",
	} {
		if st := g.Results[name]; st != statusFail {
			t.Errorf("%s = %s, want %s", name, st, statusFail)
		}
	}
}

// parseFlags' defaults and the checks TestParseFlags does not reach.
func TestParseFlagsDefaultsAndChecks(t *testing.T) {
	t.Setenv("VMTEST_ALLOW_MISSING", "")
	t.Setenv("VMTEST_CACHE", "")
	t.Setenv("CI", "")
	cfg, err := parseFlags(nil)
	if err != nil {
		t.Fatal(err)
	}
	want := config{
		arch:    archAMD64,
		kernels: []string{"5.10", "6.1", "6.12", "6.18", "newest"},
		pkgs: []string{"./tests/vmtest/smoke", "./sensor/kernel", "./tests/denyexec", "./tests/tamper@6.12+6.12-nolsm+newest",
			"./tests/evasion/files@5.10+newest", "./tests/evasion/net@5.10+newest", "./tests/evasion/exec@5.10+newest"},
		cacheDir:      "tests/vmtest/cache",
		timeout:       20 * time.Minute,
		pkgTimeout:    10 * time.Minute,
		parallel:      2,
		smp:           2,
		memMiB:        1024,
		lsm:           "lockdown,capability,landlock,yama,apparmor,bpf",
		requireAttach: "all",
		refresh:       24 * time.Hour,
		qemu:          "qemu-system-x86_64",
		busybox:       "/bin/busybox",
		hostBins:      []string{"/bin/dash", "/bin/bash", "/bin/echo", "/bin/true", "/bin/false", "/bin/sleep", "/bin/cat", "/usr/bin/env", "/usr/sbin/bpftool"},
		count:         1,
	}
	if fmt.Sprintf("%+v", *cfg) != fmt.Sprintf("%+v", want) {
		t.Errorf("defaults:\n got %+v\nwant %+v", *cfg, want)
	}
	if cfg, err := parseFlags([]string{"-require-attach", ""}); err != nil || cfg.requireAttach != "none" {
		t.Errorf("empty -require-attach: %v, %+v", err, cfg)
	}
	t.Setenv("VMTEST_CACHE", "/var/cache/vmtest")
	if cfg, err := parseFlags(nil); err != nil || cfg.cacheDir != "/var/cache/vmtest" {
		t.Errorf("$VMTEST_CACHE: %v, %+v", err, cfg)
	}
	for _, args := range [][]string{
		{"-host-bins", "bin/sh"},
		{"-pkgs", " , "},
		{"-parallel", "0"},
		{"-smp", "0"},
		{"-mem", "255"},
	} {
		if _, err := parseFlags(args); err == nil {
			t.Errorf("parseFlags(%q) accepted", args)
		}
	}
	t.Setenv("VMTEST_ALLOW_MISSING", "maybe")
	if _, err := parseFlags(nil); err == nil || !strings.Contains(err.Error(), "VMTEST_ALLOW_MISSING") {
		t.Errorf("unreadable $VMTEST_ALLOW_MISSING: %v", err)
	}
}

// A kernel resolved but not booted still shows its package; a probe that
// found an attach kind missing shows "no".
func TestTablesNotBootedAndMissingFeature(t *testing.T) {
	g := &guestRun{Selector: "6.1", Kernel: &Kernel{Package: "linux-image-6.1.0-56-cloud-amd64", Version: "6.1.192-2"}}
	parseGuest(strings.NewReader("VMTEST-KERNEL 6.1.0-56-cloud-amd64\nVMTEST FEATURE fentry no not in this kernel\nVMTEST-DONE\n"), g)
	notBooted := &guestRun{Selector: "6.12", Kernel: &Kernel{Package: "linux-image-6.12.1-cloud-amd64"}, NotRun: "qemu missing"}
	kt, _, ft, _ := tables([]*guestRun{g, notBooted})
	var b bytes.Buffer
	kt.text(&b)
	ft.text(&b)
	for _, want := range []string{"6.12    linux-image-6.12.1-cloud-amd64    -", "NOT RUN: qemu missing", "fentry      no   -"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("tables lack %q:\n%s", want, b.String())
		}
	}
}

// A guest that never printed its kernel line never reached /init.
func TestParseGuestNoKernelLine(t *testing.T) {
	g := &guestRun{Selector: "6.1"}
	parseGuest(strings.NewReader(""), g)
	if strings.Join(g.Problems, "|") != "no exit marker (VMTEST-DONE): guest hung, crashed or timed out|kernel never reached /init" {
		t.Errorf("problems = %q", g.Problems)
	}
}

// report prints the tables, then one line per thing behind a failure, the
// totals and the verdict, and writes the markdown copy.
func TestReport(t *testing.T) {
	t.Setenv("VMTEST_ALLOW_MISSING", "")
	t.Setenv("CI", "")
	md := filepath.Join(t.TempDir(), "kernels.md")
	cfg, err := parseFlags([]string{"-kernels", "6.1,6.12", "-markdown", md})
	if err != nil {
		t.Fatal(err)
	}
	g := &guestRun{Selector: "6.1", Kernel: &Kernel{Package: "linux-image-6.1.0-56-cloud-amd64", Version: "6.1.192-2"}}
	parseGuest(strings.NewReader("VMTEST-KERNEL 6.1.0-56-cloud-amd64\nVMTEST-BEGIN s\n=== RUN   TestA\n--- PASS: TestA (0.00s)\n"+
		"=== RUN   TestC\n    c_test.go:9: 3 opens not reported\n=== PAUSE TestC\n--- FAIL: TestC (0.10s)\n"+
		"=== RUN   TestB\nVMTEST-END s 2\n"), g) // no VMTEST-DONE: a problem
	missing := &guestRun{Selector: "6.12", NotRun: "no such kernel"}
	var out bytes.Buffer
	ok, err := report(&out, cfg, []*guestRun{g, missing}, []string{"./x has no test files: not in the matrix"}, "/tmp/run-1")
	if err != nil || ok {
		t.Fatalf("report = %v, %v; want a failed run", ok, err)
	}
	got := out.String()
	last := -1
	for _, want := range []string{
		"\n== kernels\n",
		"\n== tests\n",
		"\n== attach types (probed in each guest)\n",
		"\n== verified instructions (per program, per kernel)\n",
		"note: ./x has no test files: not in the matrix\n",
		"failed: 6.1: s: TestC\n  |     c_test.go:9: 3 opens not reported\n",
		"failed: 6.1: s: TestB: no result (test binary exited mid-test)\n",
		"problem: 6.1: no exit marker (VMTEST-DONE): guest hung, crashed or timed out\n",
		"not run: 6.12: no such kernel\n",
		"logs: /tmp/run-1\n",
		"1 passed, 3 failed, 0 expected failures, 0 unexpected passes, 0 skipped; 1 of 2 kernels ran\n",
		"FAIL: 3 failed\n",
		"FAIL: kernel 6.12 did not run: no such kernel",
	} {
		i := strings.Index(got, want)
		if i < 0 || i < last {
			t.Fatalf("report lacks %q after what precedes it:\n%s", want, got)
		}
		last = i
	}
	b, err := os.ReadFile(md)
	if err != nil || !strings.HasPrefix(string(b), "| kernel | package |") {
		t.Fatalf("markdown: %v\n%s", err, b)
	}
}

// -arch arm64 resolves the same selectors to Debian's cloud-arm64 images
// (and the linux-binary package behind a 7.x meta image), and neither
// architecture ever picks the other's package.
func TestPickNewestPerArch(t *testing.T) {
	pkgs := []string{
		"linux-image-6.1.0-57-cloud-amd64",
		"linux-image-6.1.0-57-cloud-arm64",
		"linux-image-6.1.0-56-cloud-arm64",
		"linux-image-6.1.0-58-cloud-amd64", // newer, but not arm64
		"linux-image-6.1.0-57-cloud-arm64-unsigned",
		"linux-image-6.12.118+deb12-cloud-arm64",
		"linux-image-6.12.117+deb13-cloud-arm64",
		"linux-image-7.3.4+deb13-cloud-arm64",
		"linux-image-7.4.1+deb13-cloud-amd64",
		"linux-image-7.3.4+deb13-arm64", // not a cloud image
	}
	for _, c := range []struct {
		arch      *guestArch
		sel, want string
	}{
		{archARM64, "6.1", "linux-image-6.1.0-57-cloud-arm64"},
		{archARM64, "6.12", "linux-image-6.12.118+deb12-cloud-arm64"},
		{archARM64, "newest", "linux-image-7.3.4+deb13-cloud-arm64"},
		{archAMD64, "6.1", "linux-image-6.1.0-58-cloud-amd64"},
		{archAMD64, "newest", "linux-image-7.4.1+deb13-cloud-amd64"},
	} {
		if got, ok := c.arch.pickNewest(pkgs, c.sel); !ok || got != c.want {
			t.Errorf("%s pickNewest(%s) = %q, %v; want %q", c.arch.Name, c.sel, got, ok, c.want)
		}
	}
	if got, ok := archARM64.pickNewest(pkgs, "6.18"); ok {
		t.Errorf("arm64 pickNewest(6.18) = %q from amd64 and arm64 names without a 6.18 arm64 one", got)
	}
	out := []byte("linux-image-6.1.0-57-cloud-arm64 - Linux 6.1 for arm64 cloud (signed)\n" +
		"linux-image-6.1.0-57-cloud-amd64 - Linux 6.1 for x86-64 cloud (signed)\n" +
		"linux-image-6.1.0-57-cloud-arm64-dbg - Debug symbols\n")
	if got := archARM64.parseSearch(out); len(got) != 1 || got[0] != "linux-image-6.1.0-57-cloud-arm64" {
		t.Errorf("arm64 parseSearch = %q", got)
	}
	if p := archARM64.searchPattern(); p != `^linux-image-.*-cloud-arm64$` {
		t.Errorf("arm64 search pattern %q", p)
	}
	deps := "linux-base-7.3.4+deb13-cloud-arm64 (= 7.3.4-1~bpo13+1), linux-binary-7.3.4+deb13-cloud-arm64 (= 7.3.4-1~bpo13+1)"
	if b := archARM64.binaryRE.FindString(deps); b != "linux-binary-7.3.4+deb13-cloud-arm64" {
		t.Errorf("arm64 linux-binary dependency = %q", b)
	}
	if b := archAMD64.binaryRE.FindString(deps); b != "" {
		t.Errorf("amd64 took the arm64 linux-binary package %q", b)
	}
}

// Each architecture has its own apt lists and kernels under the cache:
// amd64 where they always were, arm64 under arm64/, with apt configured
// for arm64 alone.
func TestKernelCachePerArch(t *testing.T) {
	dir := t.TempDir()
	amd := &kernelCache{dir: dir, arch: archAMD64}
	arm := &kernelCache{dir: dir, arch: archARM64}
	for _, c := range []struct{ got, want string }{
		{amd.aptDir(), filepath.Join(dir, "apt")},
		{amd.kernelDir("linux-image-6.1.0-57-cloud-amd64"), filepath.Join(dir, "kernels", "linux-image-6.1.0-57-cloud-amd64")},
		{arm.aptDir(), filepath.Join(dir, "arm64", "apt")},
		{arm.kernelDir("linux-image-6.1.0-57-cloud-arm64"), filepath.Join(dir, "arm64", "kernels", "linux-image-6.1.0-57-cloud-arm64")},
	} {
		if c.got != c.want {
			t.Errorf("got %s, want %s", c.got, c.want)
		}
	}
	for _, c := range []struct {
		kc        *kernelCache
		want, not string
	}{{amd, "amd64", "arm64"}, {arm, "arm64", "amd64"}} {
		conf, err := c.kc.aptConfig()
		if err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(conf)
		if err != nil {
			t.Fatal(err)
		}
		src, err := os.ReadFile(filepath.Join(c.kc.aptDir(), "etc", "sources.list"))
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{`APT::Architecture "` + c.want + `";`, `APT::Architectures { "` + c.want + `"; };`} {
			if !strings.Contains(string(b), want) {
				t.Errorf("%s apt.conf lacks %q:\n%s", c.want, want, b)
			}
		}
		if strings.Contains(string(b), c.not) || strings.Contains(string(src), c.not) {
			t.Errorf("%s apt config names %s:\n%s\n%s", c.want, c.not, b, src)
		}
		if n := strings.Count(string(src), "deb [arch="+c.want+" "); n != len(aptSources) {
			t.Errorf("%s sources.list: %d of %d sources for %s:\n%s", c.want, n, len(aptSources), c.want, src)
		}
	}
}

// The generated /init writes the results to the architecture's results
// port: ttyS1 on amd64, the PCI 16550 at ttyS0 on arm64.
func TestInitResultsDevicePerArch(t *testing.T) {
	bb := filepath.Join(t.TempDir(), "busybox")
	if err := os.WriteFile(bb, []byte("BUSYBOX"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		arch      *guestArch
		want, not string
	}{{archAMD64, "/dev/ttyS1", "/dev/ttyS0"}, {archARM64, "/dev/ttyS0", "/dev/ttyS1"}} {
		var buf bytes.Buffer
		err := buildInitramfs(&buf, initramfsSpec{Arch: c.arch, Busybox: bb, Init: initConfig{
			Tests:       []guestTest{{Name: "smoke", Binary: bb}},
			TestTimeout: "1m",
		}})
		if err != nil {
			t.Fatal(err)
		}
		script := readCpio(t, buf.Bytes())["init"].data
		if !strings.Contains(script, "exec 3>"+c.want+"\n") || strings.Contains(script, c.not) {
			t.Errorf("%s /init does not write the results to %s alone:\n%s", c.arch.Name, c.want, script)
		}
	}
}

// qemu boots an amd64 guest as before, and an arm64 one on the virt
// machine with its console on the PL011 and the results on a PCI 16550.
func TestQemuArgsPerArch(t *testing.T) {
	t.Setenv("VMTEST_ALLOW_MISSING", "")
	t.Setenv("CI", "")
	g := &guestRun{Selector: "6.1", Kernel: &Kernel{Vmlinuz: "/c/vmlinuz"}}
	amd, err := parseFlags(nil)
	if err != nil {
		t.Fatal(err)
	}
	want := "-accel tcg,thread=single -cpu max -smp 2 -m 1024 -nodefaults -display none -no-reboot " +
		"-serial file:/r/c.log -serial file:/r/r.log -kernel /c/vmlinuz -initrd /r/initrd -append " +
		"console=ttyS0 panic=-1 quiet loglevel=4 no_timer_check lsm=lockdown,capability,landlock,yama,apparmor,bpf " +
		"rdinit=/init vmtest.require_attach=all vmtest.kernel=6.1"
	if got := strings.Join(qemuArgs(amd, g, "/r/initrd", "/r/c.log", "/r/r.log"), " "); got != want {
		t.Errorf("amd64 qemu args:\n got %s\nwant %s", got, want)
	}
	if amd.qemu != "qemu-system-x86_64" {
		t.Errorf("amd64 qemu %q", amd.qemu)
	}

	arm, err := parseFlags([]string{"-arch", "arm64"})
	if err != nil {
		t.Fatal(err)
	}
	if arm.qemu != "qemu-system-aarch64" {
		t.Errorf("arm64 qemu %q, want qemu-system-aarch64", arm.qemu)
	}
	args := qemuArgs(arm, g, "/r/initrd", "/r/c.log", "/r/r.log")
	got := strings.Join(args, " ")
	for _, want := range []string{
		"-M virt ",
		"-cpu max,pauth-impdef=on ",
		"-serial file:/r/c.log -chardev file,id=results,path=/r/r.log -device pci-serial,chardev=results ",
		"-kernel /c/vmlinuz -initrd /r/initrd ",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("arm64 qemu args lack %q:\n%s", want, got)
		}
	}
	if strings.Count(got, "-serial ") != 1 {
		t.Errorf("arm64 qemu args: want one -serial (the virt machine has one PL011):\n%s", got)
	}
	appendLine := args[len(args)-1]
	if !strings.HasPrefix(appendLine, "console=ttyAMA0 ") || strings.Contains(appendLine, "ttyS") || strings.Contains(appendLine, "no_timer_check") {
		t.Errorf("arm64 kernel command line %q", appendLine)
	}
	if !strings.Contains(appendLine, " vmtest.kernel=6.1") {
		t.Errorf("arm64 kernel command line %q lacks the selector", appendLine)
	}
	// An explicit -qemu wins over the architecture's.
	if cfg, err := parseFlags([]string{"-arch", "arm64", "-qemu", "/opt/qemu/bin/qemu-system-aarch64"}); err != nil || cfg.qemu != "/opt/qemu/bin/qemu-system-aarch64" {
		t.Errorf("-qemu with -arch arm64: %v, %+v", err, cfg)
	}
}

// -arch takes amd64 (the default) or arm64; arm64's busybox comes from its
// package unless -busybox names one.
func TestParseFlagsArch(t *testing.T) {
	t.Setenv("VMTEST_ALLOW_MISSING", "")
	t.Setenv("CI", "")
	cfg, err := parseFlags([]string{"-arch", "arm64"})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.arch != archARM64 || cfg.busybox != "" {
		t.Errorf("-arch arm64: arch %v, busybox %q", cfg.arch.Name, cfg.busybox)
	}
	if cfg, err := parseFlags([]string{"-arch", "arm64", "-busybox", "/srv/busybox-arm64"}); err != nil || cfg.busybox != "/srv/busybox-arm64" {
		t.Errorf("-busybox with -arch arm64: %v, %+v", err, cfg)
	}
	for _, bad := range []string{"x86_64", "aarch64", "riscv64", ""} {
		if _, err := parseFlags([]string{"-arch", bad}); err == nil {
			t.Errorf("-arch %q accepted", bad)
		}
	}
}

// The verifier budget gets the objects of the guest's architecture: the
// arch-independent ones and its own, never another's.
func TestFindObjectsPerArch(t *testing.T) {
	root := t.TempDir()
	for _, f := range []string{"sensor/process_bpfel.o", "sensor/fileio_x86_bpfel.o", "sensor/fileio_arm64_bpfel.o",
		"sensor/pathlsm_x86_bpfel.o", "smoke/smoke_bpfel.o", "sensor/process_bpfel.go", "cache/k_bpfel.o"} {
		p := filepath.Join(root, f)
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []struct {
		arch *guestArch
		want []string
	}{
		{archAMD64, []string{"sensor/fileio_x86_bpfel.o", "sensor/pathlsm_x86_bpfel.o", "sensor/process_bpfel.o", "smoke/smoke_bpfel.o"}},
		{archARM64, []string{"sensor/fileio_arm64_bpfel.o", "sensor/process_bpfel.o", "smoke/smoke_bpfel.o"}},
	} {
		objs, err := findObjects(root, c.arch)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for rel := range objs {
			got = append(got, rel)
		}
		sort.Strings(got)
		if strings.Join(got, " ") != strings.Join(c.want, " ") {
			t.Errorf("%s objects %q, want %q", c.arch.Name, got, c.want)
		}
	}
}

// An arm64 guest is named "<selector>/arm64" in every table and message, so
// its results are never read as amd64 ones; amd64 keeps the bare selector.
func TestReportLabelsArch(t *testing.T) {
	arm := &guestRun{Selector: "6.1", Arch: "arm64", Kernel: &Kernel{Package: "linux-image-6.1.0-57-cloud-arm64", Version: "6.1.192-3"}}
	parseGuest(strings.NewReader("VMTEST-KERNEL 6.1.0-57-cloud-arm64\nVMTEST-BEGIN s\n=== RUN   TestA\n"+
		"VMTEST FEATURE fentry yes\nVMTEST VERIFIED o.o p 12\n--- PASS: TestA (0.00s)\n"+
		"=== RUN   TestB\n--- FAIL: TestB (0.00s)\nVMTEST-END s 1\n"), arm) // no VMTEST-DONE: a problem
	missing := &guestRun{Selector: "5.10", Arch: "arm64", NotRun: "404 Not Found"}
	amd := &guestRun{Selector: "6.1", Kernel: &Kernel{Package: "linux-image-6.1.0-57-cloud-amd64"}, NotRun: "x"}
	kt, tt, ft, vt := tables([]*guestRun{arm, missing, amd})
	var b bytes.Buffer
	for _, tab := range []*table{kt, tt, ft, vt} {
		tab.markdown(&b)
	}
	for _, want := range []string{
		"| kernel | package |",
		"| 6.1/arm64 | linux-image-6.1.0-57-cloud-arm64 | 6.1.192-3 |",
		"| 5.10/arm64 | - |",
		"| 6.1 | linux-image-6.1.0-57-cloud-amd64 |",
		"| test | 6.1/arm64 | 5.10/arm64 | 6.1 |",
		"| attach | 6.1/arm64 | 5.10/arm64 | 6.1 |",
		"| object | program | 6.1/arm64 | 5.10/arm64 | 6.1 |",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("tables lack %q:\n%s", want, b.String())
		}
	}
	var out bytes.Buffer
	guestDetails(&out, arm)
	guestDetails(&out, missing)
	for _, want := range []string{"problem: 6.1/arm64: no exit marker", "not run: 5.10/arm64: 404 Not Found"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("details lack %q:\n%s", want, out.String())
		}
	}
	cfg := &config{}
	if _, why := verdict([]*guestRun{arm, missing}, cfg); !strings.Contains(strings.Join(why, "\n"), "kernel 5.10/arm64 did not run") {
		t.Errorf("verdict %q does not name 5.10/arm64", why)
	}
}

// A kernel the index lists but the mirror does not serve is reported as
// such; other download errors are passed on as they are.
func TestNotServed(t *testing.T) {
	e404 := errors.New("apt-get -q download linux-image-5.10.0-46-cloud-arm64: exit status 100: E: Failed to fetch http://deb.debian.org/x.deb  404  Not Found [IP: 203.0.113.80 80]")
	if err := notServed("linux-image-5.10.0-46-cloud-arm64", e404); !errors.Is(err, e404) ||
		!strings.HasPrefix(err.Error(), "linux-image-5.10.0-46-cloud-arm64 is in the package index but the mirror does not serve its file: ") {
		t.Errorf("404: %v", err)
	}
	other := errors.New("apt-get -q download x: exit status 100: E: Unable to locate package x")
	if err := notServed("x", other); err != other {
		t.Errorf("other error: %v", err)
	}
}

// Only images qemu-system-aarch64 boots with -kernel are cached for arm64:
// the Image itself or a gzip-compressed one.
func TestARM64ImageKind(t *testing.T) {
	image := make([]byte, 64)
	copy(image[0x38:], "ARM\x64")
	zboot := make([]byte, 64)
	copy(zboot, "MZ\x00\x00zimg")
	for _, c := range []struct {
		name string
		h    []byte
		ok   bool
	}{
		{"Image", image, true},
		{"gzip", append([]byte{0x1f, 0x8b, 8, 0}, make([]byte, 60)...), true},
		{"zboot", zboot, false},
		{"bzImage", make([]byte, 64), false},
	} {
		if err := arm64ImageKind(c.h); (err == nil) != c.ok {
			t.Errorf("%s: %v", c.name, err)
		}
	}
}

// Executables are read under the sysroot as if it were /: its symlinks,
// absolute ones included, resolve inside it, and the guest gets the paths
// and symlinks the sysroot has.
func TestAddFromSysroot(t *testing.T) {
	root := t.TempDir()
	if err := mergedUsr(root); err != nil {
		t.Fatal(err)
	}
	mk := func(rel, body string) {
		p := filepath.Join(root, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	mk("usr/bin/coreutils", "CORE")
	// An absolute target must resolve under root, not on the host.
	if err := os.Symlink("/usr/bin/coreutils", filepath.Join(root, "usr/bin/true")); err != nil {
		t.Fatal(err)
	}
	if h, err := resolveIn(root, "/bin/true"); err != nil || h != filepath.Join(root, "usr/bin/coreutils") {
		t.Errorf("resolveIn(/bin/true) = %q, %v", h, err)
	}
	if _, err := resolveIn(root, "/bin/../../../etc/passwd"); err == nil {
		t.Error("resolveIn climbed out of the root")
	}
	tree := fsTree{}
	if err := tree.addFrom(root, "/bin/true"); err != nil {
		t.Fatal(err)
	}
	if e := tree["bin"]; e == nil || e.target != "usr/bin" {
		t.Errorf("bin = %+v, want a symlink to usr/bin", e)
	}
	if e := tree["usr/bin/true"]; e == nil || e.target != "/usr/bin/coreutils" {
		t.Errorf("usr/bin/true = %+v, want the sysroot's symlink", e)
	}
	if e := tree["usr/bin/coreutils"]; e == nil || e.src != filepath.Join(root, "usr/bin/coreutils") {
		t.Errorf("usr/bin/coreutils = %+v, want the sysroot's file", e)
	}
	// The host's x86-64 dash is not an arm64 executable.
	if _, err := elfDepsIn("/", archARM64, "/bin/dash"); err == nil || !strings.Contains(err.Error(), "EM_X86_64") {
		t.Errorf("elfDepsIn(arm64, host dash) = %v, want a machine mismatch", err)
	}
}

// Packages unpack into a merged-/usr sysroot, as the host's; their
// dependencies are read from Depends fields and the owners of -host-bins
// from dpkg-query -S.
func TestUserlandHelpers(t *testing.T) {
	for name, want := range map[string]string{
		"./":                                     "",
		"./bin/dash":                             "usr/bin/dash",
		"./sbin/ldconfig":                        "usr/sbin/ldconfig",
		"./lib/ld-linux-aarch64.so.1":            "usr/lib/ld-linux-aarch64.so.1",
		"./lib/aarch64-linux-gnu/libc.so.6":      "usr/lib/aarch64-linux-gnu/libc.so.6",
		"./usr/sbin/bpftool":                     "usr/sbin/bpftool",
		"./libexec/x":                            "libexec/x",
		"./etc/bash.bashrc":                      "etc/bash.bashrc",
		"/lib/aarch64-linux-gnu/libselinux.so.1": "usr/lib/aarch64-linux-gnu/libselinux.so.1",
		"./binary/x":                             "binary/x",
	} {
		if got, err := usrPath(name); err != nil || got != want {
			t.Errorf("usrPath(%q) = %q, %v; want %q", name, got, err, want)
		}
	}
	if _, err := usrPath("./usr/../../etc/x"); err == nil {
		t.Error("usrPath accepted ..")
	}
	if got := parseDepends("libc6 (>= 2.34), libtinfo6 (>= 6) | libtinfo5, base-files (>= 2.1.12):any, debianutils (>= 5.6-0.1)"); strings.Join(got, " ") != "libc6 libtinfo6 base-files debianutils" {
		t.Errorf("parseDepends = %q", got)
	}
	if got := parseDpkgS([]byte("diversion by dash from: /bin/sh\ncoreutils: /usr/bin/env\n"), "/usr/bin/env"); got != "coreutils" {
		t.Errorf("parseDpkgS = %q", got)
	}
	if got := parseDpkgS([]byte("libc6:amd64, libc6-dev:amd64: /lib/x\n"), "/lib/x"); got != "libc6" {
		t.Errorf("parseDpkgS shared = %q", got)
	}
	if got := usrAliases("/bin/dash"); strings.Join(got, " ") != "/bin/dash /usr/bin/dash" {
		t.Errorf("usrAliases(/bin/dash) = %q", got)
	}
	if got := usrAliases("/usr/sbin/bpftool"); strings.Join(got, " ") != "/usr/sbin/bpftool /sbin/bpftool" {
		t.Errorf("usrAliases(/usr/sbin/bpftool) = %q", got)
	}
	// A different package list is a different sysroot.
	if sysrootKey([]string{"bash", "dash"}) == sysrootKey([]string{"bash", "dash", "bpftool"}) {
		t.Error("sysroot key ignores the package list")
	}
}

// A package whose files the guest architecture's build constraints all
// leave out is noted and left out; any other go list error is one.
func TestParseGoList(t *testing.T) {
	lp, err := parseGoList("./tests/evasion/net", []byte(`{"Dir":"/r/tests/evasion/net","IgnoredGoFiles":["a.go"],
		"Error":{"Err":"build constraints exclude all Go files in /r/tests/evasion/net"}}`))
	if err != nil || !lp.excluded {
		t.Errorf("excluded package: %+v, %v", lp, err)
	}
	lp, err = parseGoList("./x", []byte(`{"Dir":"/r/x","TestGoFiles":["a_test.go"],"XTestGoFiles":["b_test.go"]}`))
	if err != nil || lp.excluded || lp.tests != 2 || lp.dir != "/r/x" {
		t.Errorf("package with tests: %+v, %v", lp, err)
	}
	if _, err := parseGoList("./nope", []byte(`{"Dir":"/r/nope","Error":{"Err":"directory not found"}}`)); err == nil {
		t.Error("go list error accepted")
	}
}
