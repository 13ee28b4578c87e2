package main

import (
	"fmt"
	"sort"
	"strings"
)

// checkLSMPath fails results that contradict what the guest itself
// reported, so that the deny-exec LSM path cannot silently regress to the
// tracepoint fallback, nor a refused program pass as a skip:
//
//   - where bpf is an active LSM (VMTEST-LSM), deny-exec must have run on
//     the LSM path: a TestRootDenyExec/tracepoint result fails; and the
//     smoke tests must not have been refused an LSM program: a refused LSM
//     probe (TestAttachTypes/lsm) or LSM program (TestVerifierBudget) fails;
//   - an attach kind the guest required (VMTEST-REQUIRE-ATTACH, from
//     -require-attach) that was unavailable, or a program of that kind that
//     was refused, fails; "all" requires every kind, including programs
//     whose kind the output does not name.
//
// The guest's tests check the same things; this check keeps the report
// honest when a test binary accepts what it should not.
func checkLSMPath(g *guestRun) {
	bpfActive := hasWord(g.LSM, "bpf")
	if bpfActive {
		for _, name := range resultsNamed(g, "TestRootDenyExec/tracepoint") {
			g.failTestOnce(name, fmt.Sprintf("deny-exec took the tracepoint fallback although bpf is an active LSM (%s)", g.LSM))
		}
	}
	kinds := make([]string, 0, len(g.Features))
	for kind := range g.Features {
		kinds = append(kinds, kind)
	}
	sort.Strings(kinds)
	for _, kind := range kinds {
		f := g.Features[kind]
		if f.Available {
			continue
		}
		var why string
		switch {
		case kind == "lsm" && bpfActive:
			why = fmt.Sprintf("the LSM probe was refused although bpf is an active LSM (%s): %s", g.LSM, f.Reason)
		case requiredKind(g.RequireAttach, kind):
			why = fmt.Sprintf("attach kind %s unavailable although VMTEST_REQUIRE_ATTACH=%s requires it: %s", kind, g.RequireAttach, f.Reason)
		default:
			continue
		}
		g.failOrProblem(resultsNamed(g, "TestAttachTypes/"+kind), why)
	}
	for _, r := range g.Refusals {
		var why string
		switch {
		case r.Kind == "lsm" && bpfActive:
			why = fmt.Sprintf("LSM program %s of %s refused although bpf is an active LSM (%s)", r.Program, r.Object, g.LSM)
		case requiredKind(g.RequireAttach, r.Kind):
			why = fmt.Sprintf("program %s of %s (%s) refused although VMTEST_REQUIRE_ATTACH=%s requires it", r.Program, r.Object, orDash(r.Kind), g.RequireAttach)
		default:
			continue
		}
		test := "TestVerifierBudget/" + strings.TrimSuffix(r.Object, "_bpfel.o") + "/" + r.Program
		g.failOrProblem(resultsNamed(g, test), why)
	}
}

// refusal is a program the verifier-budget test reported as refused by the
// kernel (VMTEST UNVERIFIED <object> <program> refused [<kind>]). A program
// reported with "limit" instead (a known limit of the kernel, which the
// sensor handles) is not one.
type refusal struct {
	Object, Program string
	Kind            string // attach kind; "" when the output does not name it
}

// requiredKind reports whether a VMTEST_REQUIRE_ATTACH value requires an
// attach kind; "all" requires every kind, known or not ("" included), and
// "none" or an empty value requires none.
func requiredKind(require, kind string) bool {
	for _, k := range strings.Split(require, ",") {
		if k == "all" || (k == kind && k != "" && k != "none") {
			return true
		}
	}
	return false
}

// resultsNamed returns the results of a go test name in any test binary.
func resultsNamed(g *guestRun, test string) []string {
	var names []string
	for _, name := range g.Order {
		if _, t, _ := strings.Cut(name, ": "); t == test {
			names = append(names, name)
		}
	}
	return names
}

// failTestOnce fails a test on the harness's judgement, keeping a reason
// the test already has.
func (g *guestRun) failTestOnce(name, why string) {
	if w, ok := g.Why[name]; ok {
		why = w
	}
	g.failTest(name, why)
}

// failOrProblem fails the given tests, or records a problem when there is
// no such test to fail.
func (g *guestRun) failOrProblem(names []string, why string) {
	if len(names) == 0 {
		g.Problems = append(g.Problems, why)
		return
	}
	for _, name := range names {
		g.failTestOnce(name, why)
	}
}

// hasWord reports whether a comma-separated list holds w.
func hasWord(list, w string) bool {
	for _, f := range strings.Split(list, ",") {
		if strings.TrimSpace(f) == w {
			return true
		}
	}
	return false
}
