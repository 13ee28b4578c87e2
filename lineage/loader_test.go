package lineage

import (
	"testing"

	"github.com/lineaged/lineaged/lineage/event"
)

func TestLoaderRecognisedByName(t *testing.T) {
	for exe, want := range map[string]bool{
		"/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2": true,
		"/lib/ld-linux.so.2":                             true,
		"/lib/ld-linux-aarch64.so.1":                     true,
		"/lib/ld-musl-x86_64.so.1":                       true,
		"/usr/lib/ld.so":                                 true,
		"/usr/bin/ld":                                    false, // the linker
		"/usr/bin/ld.bfd":                                false,
		"/usr/lib/x86_64-linux-gnu/libc.so.6":            false,
		"/tmp/ld-linux-x86-64.so.2.sh":                   false,
	} {
		if got := isLoader(exe); got != want {
			t.Errorf("isLoader(%q) = %v, want %v", exe, got, want)
		}
	}
}

func TestLoadedRequest(t *testing.T) {
	const ld = "/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"
	for _, tc := range []struct {
		argv []string
		cwd  string
		want string // "" for no request
	}{
		{[]string{ld, "./payload", "x"}, "/home/u", "/home/u/payload"},
		{[]string{ld, "--argv0", "innocent", "bin/../payload"}, "/w", "/w/payload"},
		{[]string{ld, "--library-path=/l", "--inhibit-cache", "/abs/p"}, "/w", "/abs/p"},
		{[]string{ld, "--preload", "/x.so", "--", "/abs/q", "--help"}, "", "/abs/q"},
		{[]string{ld, "--list", "/usr/bin/true"}, "", "/usr/bin/true"},
		{[]string{ld, "payload"}, "/w", "payload"}, // a bare name: as given
		{[]string{ld, "rel/p"}, "", "rel/p"},       // no cwd: as given
		{[]string{ld, "--help"}, "/w", ""},
		{[]string{ld, "--argv0"}, "/w", ""},
		{[]string{ld}, "/w", ""},
		{[]string{"/usr/bin/env", "./payload"}, "/w", ""}, // not a loader
	} {
		req := loadedRequest(&event.Process{Exe: tc.argv[0], Argv: tc.argv, Cwd: tc.cwd, PID: 7}, true)
		got := ""
		if req != nil {
			got = req.Path
			if !req.ByPath || req.PID != 7 {
				t.Errorf("%v: request %+v, want ByPath for pid 7", tc.argv, req)
			}
		}
		if got != tc.want {
			t.Errorf("%v in %q: %q, want %q", tc.argv, tc.cwd, got, tc.want)
		}
	}
	// A working directory inherited, not read at the exec, may be wrong:
	// a relative path stays as given.
	req := loadedRequest(&event.Process{Exe: ld, Argv: []string{ld, "./payload"}, Cwd: "/parent/cwd"}, false)
	if req == nil || req.Path != "./payload" {
		t.Errorf("relative path with an inherited cwd: %+v, want ./payload as given", req)
	}
}
