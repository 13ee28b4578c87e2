package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// buildTests compiles each package's tests into a static binary for the
// guest architecture and collects its testdata directory. A package whose
// files the architecture's build constraints all leave out has no tests
// there: it is left out, with a note.
func buildTests(ctx context.Context, pkgs []string, dir string, arch *guestArch, log *slog.Logger) ([]guestTest, map[string]map[string]string, []string, error) {
	var (
		tests []guestTest
		notes []string
	)
	testdata := map[string]map[string]string{}
	names := map[string]bool{}
	for _, entry := range pkgs {
		spec, err := parsePkg(entry)
		if err != nil {
			return nil, nil, nil, err
		}
		pkg := spec.Path
		lp, err := goList(ctx, pkg, arch)
		if err != nil {
			return nil, nil, nil, err
		}
		if lp.excluded {
			notes = append(notes, fmt.Sprintf("%s builds no files for linux/%s: not in the matrix", pkg, arch.GOARCH()))
			continue
		}
		if lp.tests == 0 {
			notes = append(notes, fmt.Sprintf("%s has no test files: not in the matrix", pkg))
			continue
		}
		name := strings.ReplaceAll(strings.TrimPrefix(pkg, "./"), "/", "_")
		if names[name] {
			return nil, nil, nil, fmt.Errorf("-pkgs: %s listed twice", pkg)
		}
		names[name] = true
		bin := filepath.Join(dir, name+".test")
		log.Info("building test binary", "pkg", pkg)
		cmd := exec.CommandContext(ctx, "go", "test", "-c", "-o", bin, pkg)
		cmd.Env = goEnv(arch)
		if out, err := cmd.CombinedOutput(); err != nil {
			return nil, nil, nil, fmt.Errorf("go test -c %s: %w\n%s", pkg, err, out)
		}
		files, err := collectDir(filepath.Join(lp.dir, "testdata"))
		if err != nil {
			return nil, nil, nil, err
		}
		testdata[name] = files
		tests = append(tests, guestTest{Name: name, Binary: bin, Kernels: spec.Kernels})
	}
	if len(tests) == 0 {
		return nil, nil, nil, errors.New("none of -pkgs has tests")
	}
	return tests, testdata, notes, nil
}

// goEnv is the environment of the go commands that build for the guests:
// static binaries for linux on the guest architecture.
func goEnv(arch *guestArch) []string {
	return append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+arch.GOARCH())
}

// listedPkg is what buildTests needs of go list's view of a package.
type listedPkg struct {
	dir      string
	tests    int  // test files, in the package and external
	excluded bool // the build constraints leave out every file
}

// goList reads a package's directory and test files as go list sees them
// for the guest architecture.
func goList(ctx context.Context, pkg string, arch *guestArch) (listedPkg, error) {
	cmd := exec.CommandContext(ctx, "go", "list", "-e", "-json=Dir,TestGoFiles,XTestGoFiles,IgnoredGoFiles,Error", pkg)
	cmd.Env = goEnv(arch)
	out, err := cmd.Output()
	if err != nil {
		return listedPkg{}, fmt.Errorf("go list %s: %w", pkg, err)
	}
	return parseGoList(pkg, out)
}

// parseGoList reads go list -e -json output for one package. A package
// whose every file the build constraints leave out (tests/evasion/net on
// arm64) is excluded; any other error is returned.
func parseGoList(pkg string, out []byte) (listedPkg, error) {
	var p struct {
		Dir                                       string
		TestGoFiles, XTestGoFiles, IgnoredGoFiles []string
		Error                                     *struct{ Err string }
	}
	if err := json.Unmarshal(out, &p); err != nil {
		return listedPkg{}, fmt.Errorf("go list %s: %w", pkg, err)
	}
	lp := listedPkg{dir: p.Dir, tests: len(p.TestGoFiles) + len(p.XTestGoFiles)}
	switch {
	case p.Error != nil && strings.Contains(p.Error.Err, "build constraints exclude all Go files") && len(p.IgnoredGoFiles) > 0:
		lp.excluded = true
	case p.Error != nil:
		return listedPkg{}, fmt.Errorf("go list %s: %s", pkg, p.Error.Err)
	case p.Dir == "":
		return listedPkg{}, fmt.Errorf("go list %s: no directory", pkg)
	}
	return lp, nil
}

// buildLineaged builds a static cmd/lineaged for the guest architecture
// into dir for the tests that run the daemon itself (tests/tamper); they
// find it through $LINEAGED_TEST_BINARY in the guest.
func buildLineaged(ctx context.Context, dir string, arch *guestArch, log *slog.Logger) (string, error) {
	bin := filepath.Join(dir, "lineaged")
	log.Info("building cmd/lineaged for the guests", "arch", arch.Name)
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/lineaged")
	cmd.Env = goEnv(arch)
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/lineaged: %w\n%s", err, out)
	}
	return bin, nil
}

// collectDir maps the regular files under dir (relative slash paths) to
// their host paths; a missing dir is empty.
func collectDir(dir string) (map[string]string, error) {
	files := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, os.ErrNotExist) && p == dir {
				return filepath.SkipDir
			}
			return err
		}
		if d.Type().IsRegular() {
			rel, err := filepath.Rel(dir, p)
			if err != nil {
				return err
			}
			files[filepath.ToSlash(rel)] = p
		}
		return nil
	})
	return files, err
}

// findObjects maps every committed-layout little-endian BPF object under
// root built for the guest architecture (relative slash path) to its host
// path: the arch-independent ones, and those built for this architecture
// only (fileio_x86_bpfel.o is amd64's, not arm64's).
func findObjects(root string, arch *guestArch) (map[string]string, error) {
	objs := map[string]string{}
	err := filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			switch d.Name() {
			case ".git", "cache", "node_modules":
				return filepath.SkipDir
			}
			return nil
		}
		if arch.hasObject(d.Name()) {
			rel, err := filepath.Rel(root, p)
			if err != nil {
				return err
			}
			objs[filepath.ToSlash(rel)] = p
		}
		return nil
	})
	return objs, err
}
