package main

import (
	"fmt"
	"slices"
	"strings"
)

// defaultPkgs is -pkgs' default: the sensor's root tests and deny-exec on
// every kernel; the tamper suite (refusal under the BPF LSM, report-only
// without it) on the ends of the range and both 6.12 guests (with and
// without bpf in lsm=); the evasion suites, each minutes per guest under
// emulation, on the ends of the range only: the matrix stays within the CI
// budget (Makefile).
const defaultPkgs = "./tests/vmtest/smoke,./sensor/kernel,./tests/denyexec," +
	"./tests/tamper@6.12+6.12-nolsm+newest," +
	"./tests/evasion/files@5.10+newest,./tests/evasion/net@5.10+newest,./tests/evasion/exec@5.10+newest"

// pkgSpec is one -pkgs entry: a package whose tests run in the guests,
// either in every guest ("./tests/tamper") or only in the guests of the
// kernels listed after an @, joined with + ("./tests/evasion/net@5.10+newest").
// The subsets keep the matrix within its CI time: suites that add minutes
// per guest run at the ends of the kernel range, not on every kernel.
type pkgSpec struct {
	Path    string
	Kernels []string // -kernels selectors; empty for every guest
}

// parsePkg reads and checks one -pkgs entry. The values end up in the
// guest's /init, so they are held to safe forms here.
func parsePkg(s string) (pkgSpec, error) {
	path, sels, subset := strings.Cut(s, "@")
	if !strings.HasPrefix(path, "./") || strings.Contains(path, "...") {
		return pkgSpec{}, fmt.Errorf("-pkgs: %q: want a package path inside the module, like ./sensor/kernel, optionally with @kernel+kernel", s)
	}
	spec := pkgSpec{Path: path}
	if !subset {
		return spec, nil
	}
	for _, k := range strings.Split(sels, "+") {
		if !selectorRE.MatchString(k) {
			return pkgSpec{}, fmt.Errorf("-pkgs: %q: bad kernel %q after @: want major.minor or newest, optionally with -nolsm, joined with +", s, k)
		}
		spec.Kernels = append(spec.Kernels, k)
	}
	return spec, nil
}

// runsOn reports whether the package's tests run in the guest of selector.
func (p pkgSpec) runsOn(selector string) bool {
	return len(p.Kernels) == 0 || slices.Contains(p.Kernels, selector)
}

// subsetNotes says, for each package limited to some kernels, where it
// runs, and which of its kernels this run does not boot.
func subsetNotes(pkgs []string, kernels []string) []string {
	var notes []string
	for _, s := range pkgs {
		p, err := parsePkg(s)
		if err != nil || len(p.Kernels) == 0 {
			continue
		}
		var on []string
		for _, k := range kernels {
			if p.runsOn(k) {
				on = append(on, k)
			}
		}
		if len(on) == 0 {
			notes = append(notes, fmt.Sprintf("%s runs only on %s: none of them is in this run", p.Path, strings.Join(p.Kernels, ", ")))
			continue
		}
		notes = append(notes, fmt.Sprintf("%s runs only on %s (subset, to keep the matrix within its CI time)", p.Path, strings.Join(on, ", ")))
	}
	return notes
}
