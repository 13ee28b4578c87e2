package main

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
)

// knownDefect is a test known to fail on some kernel series because of a
// defect that is understood to be real but is not fixed yet. Where it is
// known, its failure is an expected failure: shown and counted apart, and
// not failing the run. It must still run there: a pass is reported as
// "fixed?" and fails the run until the entry is removed, and a skip fails
// the run because it would hide the defect.
type knownDefect struct {
	// Test is the go test name as go test prints it ("TestX" or
	// "TestX/sub"), matched in every test binary, so an entry survives a
	// package move.
	Test string
	// Series are the kernel series (major.minor, from the guest's uname)
	// where the test is known to fail.
	Series []string
	// Reason says what is wrong, in one line.
	Reason string
	// Intermittent marks a defect that shows in some runs only (a race):
	// a pass there is an ordinary pass, since it does not mean the defect
	// is fixed. A failure is still an expected failure and a skip still
	// fails the run.
	Intermittent bool
}

// knownDefects is the table of known defects. Every entry is described in
// docs/kernels.md under "Known defects" (TestKnownDefectsDocumented checks
// that the test names and series appear there).
func knownDefects() []knownDefect {
	// The last fixed ones, TestRootNameSwappedDuringCall on 7.3 and
	// TestRootSessionsMapFullIsCounted on 5.10 and 6.1, are described in
	// docs/kernels.md.
	return nil
}

// seriesRE takes the series (major.minor) from a kernel release or a
// -kernels selector.
var seriesRE = regexp.MustCompile(`^([0-9]+\.[0-9]+)(?:[.-]|$)`)

// guestSeries is the kernel series a guest ran: from its uname, or from its
// selector when the guest never reported one ("" for "newest" then).
func guestSeries(g *guestRun) string {
	for _, s := range []string{g.Uname, g.Selector} {
		if m := seriesRE.FindStringSubmatch(s); m != nil {
			return m[1]
		}
	}
	return ""
}

// applyKnownDefects rewrites the results of known defects on the series
// they are known for: a failure becomes an expected failure (statusXFail)
// and a pass an unexpected pass (statusXPass), unless the defect is
// intermittent, where a pass stays a pass; a skip stays a skip and is
// recorded as a problem, since it hides the defect. g.Defects keeps each
// matched test's reason.
func applyKnownDefects(g *guestRun, defects []knownDefect) {
	series := guestSeries(g)
	for _, name := range g.Order {
		_, test, _ := strings.Cut(name, ": ")
		i := slices.IndexFunc(defects, func(d knownDefect) bool {
			return d.Test == test && slices.Contains(d.Series, series)
		})
		if i < 0 {
			continue
		}
		d := defects[i]
		g.Defects[name] = d.Reason
		switch g.Results[name] {
		case statusFail:
			g.Results[name] = statusXFail
		case statusPass:
			if !d.Intermittent {
				g.Results[name] = statusXPass
			}
		case statusSkip:
			g.Problems = append(g.Problems, fmt.Sprintf(
				"%s skipped on %s, where it is a known defect expected to fail (%s): it must run so the failure stays visible; remove the skip",
				name, series, d.Reason))
		}
	}
}
