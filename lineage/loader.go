package lineage

import (
	"path"
	"regexp"
	"strings"

	"github.com/lineaged/lineaged/lineage/event"
)

// The dynamic loader run as a program, `ld-linux-x86-64.so.2 ./payload`:
// the kernel execs the loader, and the loader maps and runs the program its
// arguments name, which is never exec'd. The exec names and hashes the
// loader; process.loaded names and hashes the program it was asked to run
// (the threat model's "exec through the dynamic loader").

// loaderName matches the file names of the dynamic loaders of glibc
// (ld-linux-x86-64.so.2, ld-linux.so.2, ld-linux-aarch64.so.1, ...), musl
// (ld-musl-x86_64.so.1) and the generic ld.so. A copy under another name is
// not recognised by its name: docs/threat-model.md says what covers it.
var loaderName = regexp.MustCompile(`^(ld-linux[-.a-z0-9_]*\.so(\.[0-9]+)*|ld-musl-[a-z0-9_]+\.so(\.[0-9]+)*|ld\.so(\.[0-9]+)*|ld64\.so\.[0-9]+)$`)

func isLoader(exe string) bool { return loaderName.MatchString(path.Base(exe)) }

// loaderOptsWithValue are the loader's options that take the next argument
// as their value (glibc 2.36's --help; musl's are a subset).
var loaderOptsWithValue = map[string]bool{
	"--library-path": true, "--inhibit-rpath": true, "--audit": true, "--preload": true,
	"--argv0": true, "--glibc-hwcaps-prepend": true, "--glibc-hwcaps-mask": true,
}

// loaderTarget returns the program a loader's argv asks it to run; "" when
// the argv runs no program (--help, --list-tunables, a bare loader).
func loaderTarget(argv []string) string {
	for i := 1; i < len(argv); i++ {
		a := argv[i]
		if a == "--" {
			if i+1 < len(argv) {
				return argv[i+1]
			}
			return ""
		}
		if !strings.HasPrefix(a, "--") {
			return a
		}
		name, _, inline := strings.Cut(a, "=")
		if loaderOptsWithValue[name] {
			if !inline {
				i++ // its value
			}
			continue
		}
		switch name {
		case "--help", "--version", "--list-tunables", "--list-diagnostics":
			return ""
		}
		// --list, --verify, --inhibit-cache: flags, then the program.
	}
	return ""
}

// loadedRequest is the binary request for the program a loader exec runs,
// nil when the exec is not a loader's or runs no program. A path with a
// slash is the file the loader opens (against the working directory when
// relative). A bare name is not looked for: glibc's loader does not run
// one from its search path, and the sensor does not read the environment
// (LD_LIBRARY_PATH) at exec; the request keeps it as given and is not
// hashed.
//
// cwdLive says p.Cwd was read from the process at its exec; otherwise it
// is its parent's, which a chdir between fork and exec (any shell's `cd`
// in a subshell) makes wrong, and a relative path stays as given.
func loadedRequest(p *event.Process, cwdLive bool) *BinaryRequest {
	if !isLoader(p.Exe) {
		return nil
	}
	prog := loaderTarget(p.Argv)
	if prog == "" {
		return nil
	}
	if strings.Contains(prog, "/") && !path.IsAbs(prog) && p.Cwd != "" && cwdLive {
		prog = path.Join(p.Cwd, prog)
	}
	if path.IsAbs(prog) {
		prog = path.Clean(prog)
	}
	return &BinaryRequest{PID: p.PID, Path: prog, ByPath: true}
}
