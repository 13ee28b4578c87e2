package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// buildTests compiles each package's tests into a static binary and
// collects its testdata directory.
func buildTests(ctx context.Context, pkgs []string, dir string, log *slog.Logger) ([]guestTest, map[string]map[string]string, []string, error) {
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
		out, err := exec.CommandContext(ctx, "go", "list", "-f", "{{.Dir}}\n{{len .TestGoFiles}}\n{{len .XTestGoFiles}}", pkg).Output()
		if err != nil {
			return nil, nil, nil, fmt.Errorf("go list %s: %w", pkg, err)
		}
		f := strings.Fields(string(out))
		if len(f) != 3 {
			return nil, nil, nil, fmt.Errorf("go list %s: unexpected output %q", pkg, out)
		}
		if f[1] == "0" && f[2] == "0" {
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
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			return nil, nil, nil, fmt.Errorf("go test -c %s: %w\n%s", pkg, err, out)
		}
		files, err := collectDir(filepath.Join(f[0], "testdata"))
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

// buildLineaged builds a static cmd/lineaged into dir for the tests that
// run the daemon itself (tests/tamper); they find it through
// $LINEAGED_TEST_BINARY in the guest.
func buildLineaged(ctx context.Context, dir string, log *slog.Logger) (string, error) {
	bin := filepath.Join(dir, "lineaged")
	log.Info("building cmd/lineaged for the guests")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/lineaged")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
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
// root (relative slash path) to its host path.
func findObjects(root string) (map[string]string, error) {
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
		if strings.HasSuffix(d.Name(), "_bpfel.o") {
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
