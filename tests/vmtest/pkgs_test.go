package main

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
)

func TestParsePkg(t *testing.T) {
	for _, c := range []struct {
		in   string
		want pkgSpec
	}{
		{"./tests/tamper", pkgSpec{Path: "./tests/tamper"}},
		{"./tests/evasion/net@5.10+newest", pkgSpec{Path: "./tests/evasion/net", Kernels: []string{"5.10", "newest"}}},
		{"./tests/evasion/net@6.12-nolsm", pkgSpec{Path: "./tests/evasion/net", Kernels: []string{"6.12-nolsm"}}},
	} {
		got, err := parsePkg(c.in)
		if err != nil || !reflect.DeepEqual(got, c.want) {
			t.Errorf("parsePkg(%q) = %+v, %v; want %+v", c.in, got, err, c.want)
		}
	}
	for _, bad := range []string{"tests/tamper", "./tests/...", "./tests/net@", "./tests/net@5.10+", "./tests/net@5.10;reboot", "./x@6"} {
		if _, err := parsePkg(bad); err == nil {
			t.Errorf("parsePkg(%q) accepted", bad)
		}
	}
	if _, err := parseFlags([]string{"-pkgs", "./tests/net@5.10 6.1"}); err == nil {
		t.Error("-pkgs with a space in the kernel list accepted")
	}
	p, _ := parsePkg("./tests/evasion/net@5.10+newest")
	if !p.runsOn("5.10") || !p.runsOn("newest") || p.runsOn("6.12") || p.runsOn("6.12-nolsm") {
		t.Errorf("runsOn of %+v wrong", p)
	}
	notes := subsetNotes([]string{"./a", "./b@5.10+newest", "./c@7.9"}, []string{"5.10", "6.1"})
	want := []string{
		"./b runs only on 5.10 (subset, to keep the matrix within its CI time)",
		"./c runs only on 7.9: none of them is in this run",
	}
	if !reflect.DeepEqual(notes, want) {
		t.Errorf("notes %q, want %q", notes, want)
	}
}

// TestInitRunsSubsetByKernel: a package limited to some kernels is run by
// the guest's /init only when the kernel command line names one of them.
func TestInitRunsSubsetByKernel(t *testing.T) {
	dir := t.TempDir()
	bb := filepath.Join(dir, "busybox")
	if err := os.WriteFile(bb, []byte("BUSYBOX"), 0o755); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	err := buildInitramfs(&buf, initramfsSpec{Busybox: bb, Init: initConfig{
		Tests: []guestTest{
			{Name: "all", Binary: bb},
			{Name: "ends", Binary: bb, Kernels: []string{"5.10", "newest"}},
		},
		TestTimeout: "1m",
	}})
	if err != nil {
		t.Fatal(err)
	}
	script := readCpio(t, buf.Bytes())["init"].data
	for _, s := range []string{
		`vmtest.kernel=*) VMTEST_KERNEL="${w#*=}" ;;`,
		"if vmtest_on 5.10 newest; then\necho \"VMTEST-BEGIN ends\"",
		"echo \"VMTEST-END ends $?\" >&3\nfi\n",
	} {
		if !strings.Contains(script, s) {
			t.Errorf("init lacks %q:\n%s", s, script)
		}
	}
	if i := strings.Index(script, `echo "VMTEST-BEGIN all"`); i < 0 || strings.Contains(script[max(0, i-40):i], "vmtest_on") {
		t.Errorf("the package for every kernel is not run unconditionally:\n%s", script)
	}
	err = buildInitramfs(&buf, initramfsSpec{Busybox: bb, Init: initConfig{
		Tests:       []guestTest{{Name: "x", Binary: bb, Kernels: []string{"5.10; reboot"}}},
		TestTimeout: "1m",
	}})
	if err == nil {
		t.Error("unsafe kernel selector accepted into /init")
	}
}

// TestInitRunPattern: -run and -count reach every guest's go test, and a
// pattern that could break out of /init's quoting is refused.
func TestInitRunPattern(t *testing.T) {
	dir := t.TempDir()
	bb := filepath.Join(dir, "busybox")
	if err := os.WriteFile(bb, []byte("BUSYBOX"), 0o755); err != nil {
		t.Fatal(err)
	}
	build := func(run string, count int) (string, error) {
		var buf bytes.Buffer
		err := buildInitramfs(&buf, initramfsSpec{Busybox: bb, Init: initConfig{
			Tests:       []guestTest{{Name: "all", Binary: bb}},
			TestTimeout: "1m", Run: run, Count: count,
		}})
		if err != nil {
			return "", err
		}
		return readCpio(t, buf.Bytes())["init"].data, nil
	}
	script, err := build("TestRaceConnect/rewrite|x$", 20)
	if err != nil {
		t.Fatal(err)
	}
	if want := "-test.count=20 -test.run='TestRaceConnect/rewrite|x$' -test.timeout=1m"; !strings.Contains(script, want) {
		t.Errorf("init lacks %q:\n%s", want, script)
	}
	if script, err = build("", 0); err != nil || !strings.Contains(script, "-test.count=1 -test.timeout=1m") {
		t.Errorf("no pattern: %v\n%s", err, script)
	}
	for _, bad := range []string{"x'; reboot -f; '", "a\nreboot", "(unclosed"} {
		if _, err := build(bad, 1); err == nil {
			t.Errorf("pattern %q accepted into /init", bad)
		}
	}
	if _, err := build("x", -1); err == nil {
		t.Error("negative count accepted")
	}
}

// The guests running the most suites boot first, ties in the order
// listed, and a kernel that was not resolved is not booted.
func TestBootOrderHeaviestFirst(t *testing.T) {
	tests := []guestTest{
		{Name: "smoke"}, {Name: "kernel"},
		{Name: "tamper", Kernels: []string{"6.12", "newest"}},
		{Name: "files", Kernels: []string{"5.10", "newest"}},
		{Name: "net", Kernels: []string{"5.10", "newest"}},
	}
	var runs []*guestRun
	for _, sel := range []string{"5.10", "6.1", "6.12", "gone", "6.18", "newest"} {
		g := &guestRun{Selector: sel}
		if sel == "gone" {
			g.NotRun = "not resolved"
		}
		runs = append(runs, g)
	}
	var got []string
	for _, g := range bootOrder(runs, tests) {
		got = append(got, g.Selector)
	}
	want := []string{"newest", "5.10", "6.12", "6.1", "6.18"}
	if !slices.Equal(got, want) {
		t.Errorf("boot order %v, want %v", got, want)
	}
}
