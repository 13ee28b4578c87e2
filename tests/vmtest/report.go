package main

import (
	"bufio"
	"fmt"
	"io"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Status of one test on one kernel.
const (
	statusPass = "PASS"
	statusFail = "FAIL"
	statusSkip = "SKIP"
	// statusXFail: a known defect failed where it is known to (see
	// knownDefects). Counted apart; does not fail the run.
	statusXFail = "XFAIL"
	// statusXPass: a known defect passed where it is known to fail.
	// Fails the run until the defect is removed from the table.
	statusXPass = "XPASS"
)

// feature is one attach kind's probe result in a guest.
type feature struct {
	Available bool
	Reason    string
}

// guestRun is everything one kernel's boot showed.
type guestRun struct {
	Kernel   *Kernel
	Selector string
	Arch     string // guest architecture; "" is amd64
	NotRun   string // why the kernel was not booted: it could not be resolved or downloaded

	Uname         string
	LSM           string        // active LSMs (VMTEST-LSM)
	RequireAttach string        // the guest's VMTEST_REQUIRE_ATTACH (VMTEST-REQUIRE-ATTACH)
	Done          bool          // VMTEST-DONE seen
	Wall          time.Duration // qemu wall time
	Results       map[string]string
	Order         []string // test names in first-seen order
	Features      map[string]feature
	Verified      map[string]int      // "object program" -> instructions
	Refused       map[string]string   // "object program" -> rejected|refused
	Refusals      []refusal           // programs refused by the kernel, with their kind
	Defects       map[string]string   // test -> known-defect reason, for its XFAIL or XPASS
	Why           map[string]string   // test -> why the harness failed it (no result; contradicts the guest's LSM list or requirements)
	Tail          map[string][]string // failed test -> the last lines its binary printed before the failure, for the report
	Problems      []string            // failures not tied to one test
}

// label names the guest in the tables and messages: its selector, with
// the architecture after a slash when it is not amd64 ("6.1/arm64"), so
// that the results of an arm64 matrix are never taken for amd64 ones.
func (g *guestRun) label() string {
	if g.Arch == "" || g.Arch == archAMD64.Name {
		return g.Selector
	}
	return g.Selector + "/" + g.Arch
}

var (
	resultRE   = regexp.MustCompile(`^\s*--- (PASS|FAIL|SKIP): (\S+) \(`)
	runRE      = regexp.MustCompile(`^=== RUN\s+(\S+)`)
	featureRE  = regexp.MustCompile(`^VMTEST FEATURE (\S+) (yes|no)\s*(.*)$`)
	verifiedRE = regexp.MustCompile(`^VMTEST VERIFIED (\S+) (\S+) (\d+)$`)
	unverifRE  = regexp.MustCompile(`^VMTEST UNVERIFIED (\S+) (\S+) (rejected|refused|limit)(?: (\S+))?$`)
)

// parseGuest reads the results port's output into g. Tests are named
// "<binary>: <TestName/sub>". Leaves count, and so does a parent test that
// failed; a parent that passed is left out, so it is not counted twice.
func parseGuest(r io.Reader, g *guestRun) {
	parseGuestWith(r, g, knownDefects())
}

// parseGuestWith is parseGuest with the known-defect table given (the
// harness's tests pass their own).
func parseGuestWith(r io.Reader, g *guestRun, defects []knownDefect) {
	g.Results = map[string]string{}
	g.Features = map[string]feature{}
	g.Verified = map[string]int{}
	g.Refused = map[string]string{}
	g.Defects = map[string]string{}
	g.Why = map[string]string{}
	g.Tail = map[string][]string{}
	p := &guestParser{g: g, defects: defects}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 4<<20)
	for sc.Scan() {
		p.line(strings.TrimRight(sc.Text(), "\r"))
	}
	p.finish()
}

// guestParser is parseGuest's state between lines.
type guestParser struct {
	g       *guestRun
	defects []knownDefect // the known-defect table applied at the end
	bin     string        // the test binary running (VMTEST-BEGIN)
	running []string      // its tests started (=== RUN) in order
	began   bool
	exits   []binExit
	recent  []string // the binary's last output lines (not RUN/PAUSE/CONT or results), newest last
}

// tailLines is how many of a binary's output lines a failed test keeps
// for the report, so that a CI log's last screen says what failed and why.
const tailLines = 12

var chatterRE = regexp.MustCompile(`^\s*=== (RUN|PAUSE|CONT|NAME)\s`)

// line takes one line of the results port: a harness marker, or a test
// binary's or the smoke test's output.
func (p *guestParser) line(line string) {
	g := p.g
	switch {
	case strings.HasPrefix(line, "VMTEST-KERNEL "):
		g.Uname = strings.TrimPrefix(line, "VMTEST-KERNEL ")
	case strings.HasPrefix(line, "VMTEST-LSM "):
		g.LSM = strings.TrimPrefix(line, "VMTEST-LSM ")
	case strings.HasPrefix(line, "VMTEST-REQUIRE-ATTACH "):
		g.RequireAttach = strings.TrimPrefix(line, "VMTEST-REQUIRE-ATTACH ")
	case strings.HasPrefix(line, "VMTEST-BEGIN "):
		p.bin, p.began, p.running, p.recent = strings.TrimPrefix(line, "VMTEST-BEGIN "), true, nil, nil
	case strings.HasPrefix(line, "VMTEST-END "):
		p.unfinished("test binary exited mid-test")
		p.exits = append(p.exits, binExit{p.bin, exitCode(line)})
		p.bin, p.began = "", false
	case line == "VMTEST-DONE":
		g.Done = true
	default:
		p.output(line)
	}
}

// output takes a line that is not a marker: a test's start or result
// (only inside a binary's run), an attach-kind probe, or a program's
// verifier outcome.
func (p *guestParser) output(line string) {
	g := p.g
	if m := resultRE.FindStringSubmatch(line); m != nil && p.began {
		g.record(p.bin+": "+m[2], m[1])
		if m[1] == statusFail {
			g.Tail[p.bin+": "+m[2]] = append([]string(nil), p.recent...)
		}
		return
	}
	if p.began && !strings.HasPrefix(line, "VMTEST ") && !chatterRE.MatchString(line) && strings.TrimSpace(line) != "" {
		p.recent = append(p.recent, line)
		if len(p.recent) > tailLines {
			p.recent = p.recent[len(p.recent)-tailLines:]
		}
	}
	if m := runRE.FindStringSubmatch(line); m != nil && p.began {
		p.running = append(p.running, p.bin+": "+m[1])
	} else if m := featureRE.FindStringSubmatch(line); m != nil {
		g.Features[m[1]] = feature{Available: m[2] == "yes", Reason: m[3]}
	} else if m := verifiedRE.FindStringSubmatch(line); m != nil {
		n, _ := strconv.Atoi(m[3])
		g.Verified[m[1]+" "+m[2]] = n
	} else if m := unverifRE.FindStringSubmatch(line); m != nil {
		g.Refused[m[1]+" "+m[2]] = m[3]
		// "limit": a known limit of this kernel the sensor handles by
		// leaving the program out (the smoke test's knownLimits): shown,
		// not judged as a refusal of its kind.
		if m[3] == "refused" {
			g.Refusals = append(g.Refusals, refusal{Object: m[1], Program: m[2], Kind: m[4]})
		}
	}
}

// unfinished fails every test that started but never reported.
func (p *guestParser) unfinished(why string) {
	for _, name := range p.running {
		if _, ok := p.g.Results[name]; !ok {
			p.g.failTest(name, "no result ("+why+")")
		}
	}
	p.running = nil
}

// finish judges the whole output once read: a binary cut off mid-test, a
// missing exit marker or kernel line, then the checks that need the final
// results (parents, known defects, the LSM path, exit codes).
func (p *guestParser) finish() {
	g := p.g
	if p.began {
		p.unfinished("guest stopped mid-test")
		g.Problems = append(g.Problems, fmt.Sprintf("%s never finished", p.bin))
	}
	if !g.Done {
		g.Problems = append(g.Problems, "no exit marker (VMTEST-DONE): guest hung, crashed or timed out")
	}
	if g.Uname == "" {
		g.Problems = append(g.Problems, "kernel never reached /init")
	}
	dropPassedParents(g)
	applyKnownDefects(g, p.defects)
	checkLSMPath(g)
	for _, e := range p.exits {
		checkExit(g, e)
	}
}

// record sets a test's result, keeping the order tests were first seen in.
func (g *guestRun) record(name, status string) {
	if _, seen := g.Results[name]; !seen {
		g.Order = append(g.Order, name)
	}
	g.Results[name] = status
}

// failTest fails a test on the harness's own judgement, adding it when it
// has no result, and keeps the reason in g.Why.
func (g *guestRun) failTest(name, why string) {
	g.record(name, statusFail)
	g.Why[name] = why
}

// binExit is a test binary's exit code from its VMTEST-END marker.
type binExit struct {
	bin string
	rc  int // -1 when the marker carries no readable code
}

// exitCode reads the code from "VMTEST-END <binary> <code>"; a marker
// without a readable code yields -1, which is never taken for success.
func exitCode(marker string) int {
	f := strings.Fields(marker)
	if len(f) != 3 {
		return -1
	}
	rc, err := strconv.Atoi(f[2])
	if err != nil {
		return -1
	}
	return rc
}

// checkExit records a problem when a binary's exit code is not explained
// by its results: a non-zero exit with no failing test (a panic outside a
// test, a failing TestMain, a crash after the last result), or a binary
// that ran no test at all. It runs on the final results, so a failure the
// report would not count cannot excuse a non-zero exit; an expected failure
// does explain one.
func checkExit(g *guestRun, e binExit) {
	failed, ran := false, false
	for name, st := range g.Results {
		if strings.HasPrefix(name, e.bin+": ") {
			ran = true
			failed = failed || st == statusFail || st == statusXFail
		}
	}
	switch {
	case e.rc != 0 && !failed:
		g.Problems = append(g.Problems, fmt.Sprintf("%s exited %d without a failing test", e.bin, e.rc))
	case !ran:
		g.Problems = append(g.Problems, fmt.Sprintf("%s ran no test", e.bin))
	}
}

// dropPassedParents removes parent tests (tests with subtest results of
// their own) that passed or skipped: their subtests are the leaves counted
// in their place. A parent that failed is kept and counts as a failure:
// go test output does not tell whether it failed on its own (an error
// after its subtests, a failing cleanup) or through a subtest, and a
// failure must never vanish from the count.
func dropPassedParents(g *guestRun) {
	var keep []string
	for _, name := range g.Order {
		parent := false
		for other := range g.Results {
			if strings.HasPrefix(other, name+"/") {
				parent = true
				break
			}
		}
		if parent && g.Results[name] != statusFail {
			delete(g.Results, name)
			continue
		}
		keep = append(keep, name)
	}
	g.Order = keep
}

// totals counts leaf results over all runs; a problem not tied to a test
// counts as one failure. Expected failures (known defects failing where
// known) and unexpected passes (known defects passing there) are counted
// apart from both. A listed kernel that was not booted counts in NotRun,
// not as a skipped test: it fails the run unless -allow-missing.
type totals struct {
	Passed, Failed, Skipped int
	Expected, Unexpected    int
	NotRun                  int
}

func count(runs []*guestRun) totals {
	var t totals
	for _, g := range runs {
		if g.NotRun != "" {
			t.NotRun++
			continue
		}
		for _, st := range g.Results {
			switch st {
			case statusPass:
				t.Passed++
			case statusFail:
				t.Failed++
			case statusSkip:
				t.Skipped++
			case statusXFail:
				t.Expected++
			case statusXPass:
				t.Unexpected++
			}
		}
		t.Failed += len(g.Problems)
	}
	return t
}

// verdict decides whether a matrix run passed under cfg's policy and, when
// it did not, says why, one reason per entry. Every listed kernel must
// have run; cfg.allowMissing (never set under CI) accepts fewer, but never
// none.
func verdict(runs []*guestRun, cfg *config) (ok bool, why []string) {
	t := count(runs)
	if t.Failed > 0 {
		why = append(why, fmt.Sprintf("%d failed", t.Failed))
	}
	for _, g := range runs {
		for _, name := range g.Order {
			if g.Results[name] == statusXPass {
				why = append(why, fmt.Sprintf("%s: %s passed, but it is a known defect there (%s): fixed? remove it from known defects (tests/vmtest/defects.go, docs/kernels.md)",
					g.label(), name, g.Defects[name]))
			}
		}
	}
	booted := 0
	for _, g := range runs {
		switch {
		case g.NotRun == "":
			booted++
		case !cfg.allowMissing:
			why = append(why, fmt.Sprintf("kernel %s did not run: %s (outside CI, -allow-missing or %s=1 accepts fewer kernels)",
				g.label(), g.NotRun, envAllowMissing))
		}
	}
	if booted == 0 {
		why = append(why, "no kernel could be booted")
	}
	return len(why) == 0, why
}

// table is a simple text table; markdown renders the same rows for
// docs/kernels.md.
type table struct {
	head []string
	rows [][]string
}

func (t *table) add(row ...string) { t.rows = append(t.rows, row) }

func (t *table) text(w io.Writer) {
	width := make([]int, len(t.head))
	for _, r := range append([][]string{t.head}, t.rows...) {
		for i, c := range r {
			width[i] = max(width[i], len(c))
		}
	}
	for _, r := range append([][]string{t.head}, t.rows...) {
		var sb strings.Builder
		for i, c := range r {
			if i > 0 {
				sb.WriteString("  ")
			}
			fmt.Fprintf(&sb, "%-*s", width[i], c)
		}
		fmt.Fprintln(w, strings.TrimRight(sb.String(), " "))
	}
}

func (t *table) markdown(w io.Writer) {
	fmt.Fprintf(w, "| %s |\n", strings.Join(t.head, " | "))
	fmt.Fprintf(w, "|%s\n", strings.Repeat(" --- |", len(t.head)))
	for _, r := range t.rows {
		fmt.Fprintf(w, "| %s |\n", strings.Join(r, " | "))
	}
}

// attachKinds is the column order of the feature table.
var attachKinds = []string{"tracepoint", "raw_tp", "tp_btf", "fentry", "lsm", "kprobe"}

// tables builds the kernel, test, attach-kind and verifier tables.
func tables(runs []*guestRun) (kernels, tests, features, verified *table) {
	return kernelTable(runs), testTable(runs), featureTable(runs), verifiedTable(runs)
}

// kernelColumns is a table head: the row label columns, then one column
// per kernel, in the order they were listed.
func kernelColumns(runs []*guestRun, labels ...string) []string {
	head := labels
	for _, g := range runs {
		head = append(head, g.label())
	}
	return head
}

// kernelTable has one row per kernel: what was booted, its counts and its
// result, or why it was not run.
func kernelTable(runs []*guestRun) *table {
	t := &table{head: []string{"kernel", "package", "version", "uname", "wall", "passed", "failed", "expected failures", "skipped", "result"}}
	for _, g := range runs {
		if g.NotRun != "" {
			pkg := "-"
			if g.Kernel != nil {
				pkg = g.Kernel.Package
			}
			t.add(g.label(), pkg, "-", "-", "-", "-", "-", "-", "-", "NOT RUN: "+g.NotRun)
			continue
		}
		c := count([]*guestRun{g})
		t.add(g.label(), g.Kernel.Package, g.Kernel.Version, orDash(g.Uname),
			g.Wall.Round(100*time.Millisecond).String(),
			strconv.Itoa(c.Passed), strconv.Itoa(c.Failed), strconv.Itoa(c.Expected), strconv.Itoa(c.Skipped), guestResult(g))
	}
	return t
}

// testTable has one row per test, in the order tests were first seen
// across kernels, with its status on each.
func testTable(runs []*guestRun) *table {
	t := &table{head: kernelColumns(runs, "test")}
	var names []string
	seen := map[string]bool{}
	for _, g := range runs {
		for _, n := range g.Order {
			if !seen[n] {
				seen[n] = true
				names = append(names, n)
			}
		}
	}
	for _, n := range names {
		row := []string{n}
		for _, g := range runs {
			row = append(row, orDash(g.Results[n]))
		}
		t.add(row...)
	}
	return t
}

// featureTable has one row per attach kind: yes, no, or - where the guest
// did not probe it.
func featureTable(runs []*guestRun) *table {
	t := &table{head: kernelColumns(runs, "attach")}
	for _, k := range attachKinds {
		row := []string{k}
		for _, g := range runs {
			f, ok := g.Features[k]
			switch {
			case !ok:
				row = append(row, "-")
			case f.Available:
				row = append(row, "yes")
			default:
				row = append(row, "no")
			}
		}
		t.add(row...)
	}
	return t
}

// verifiedTable has one row per BPF program any kernel loaded or refused,
// sorted: its verified instruction count on each kernel, or why it was not
// verified there.
func verifiedTable(runs []*guestRun) *table {
	t := &table{head: kernelColumns(runs, "object", "program")}
	var progs []string
	seen := map[string]bool{}
	for _, g := range runs {
		for _, m := range []map[string]int{g.Verified, countKeys(g.Refused)} {
			for p := range m {
				if !seen[p] {
					seen[p] = true
					progs = append(progs, p)
				}
			}
		}
	}
	sort.Strings(progs)
	for _, p := range progs {
		obj, prog, _ := strings.Cut(p, " ")
		row := []string{obj, prog}
		for _, g := range runs {
			if n, ok := g.Verified[p]; ok {
				row = append(row, strconv.Itoa(n))
			} else {
				row = append(row, orDash(g.Refused[p]))
			}
		}
		t.add(row...)
	}
	return t
}

// guestResult is a booted guest's verdict for the kernels table: "ok" only
// when no test failed, no known defect passed and nothing else went wrong
// (expected failures are allowed), otherwise "FAIL: " with the number of
// failed tests, of known defects that passed, and the problems not tied to
// one test.
func guestResult(g *guestRun) string {
	failed, xpass := 0, 0
	for _, st := range g.Results {
		switch st {
		case statusFail:
			failed++
		case statusXPass:
			xpass++
		}
	}
	var why []string
	switch failed {
	case 0:
	case 1:
		why = append(why, "1 failed test")
	default:
		why = append(why, fmt.Sprintf("%d failed tests", failed))
	}
	switch xpass {
	case 0:
	case 1:
		why = append(why, "1 known defect passed (fixed? remove it from known defects)")
	default:
		why = append(why, fmt.Sprintf("%d known defects passed (fixed? remove them from known defects)", xpass))
	}
	for _, name := range g.Order {
		if w, ok := g.Why[name]; ok && g.Results[name] == statusFail {
			why = append(why, name+": "+w)
		}
	}
	why = append(why, g.Problems...)
	if len(why) == 0 {
		return "ok"
	}
	return "FAIL: " + strings.Join(why, "; ")
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func countKeys(m map[string]string) map[string]int {
	out := make(map[string]int, len(m))
	for k := range m {
		out[k] = 0
	}
	return out
}
