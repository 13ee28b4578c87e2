// Package arch holds the test that keeps lineaged's import graph flowing one
// way, down the data flow of docs/architecture.md: kernel vocabulary, then
// the kernel loader and other fact sources, then lineage, policy, the sinks,
// and the binary on top. An arrow that runs back up fails the test with the
// rule it breaks.
package arch

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/lineaged/lineaged"

// layer is one rule of docs/architecture.md: the packages under Prefix
// (without the module path) may import only packages of their own layer
// and of the layers that Allow names.
type layer struct {
	Prefix string
	Allow  []string
	// NoBPF: the package must not depend on cilium/ebpf, directly or not.
	NoBPF bool
}

// layers is the rule table, from the bottom of the data flow up. The first
// layer whose Prefix matches a package decides (longest prefixes first).
var layers = []layer{
	// The raw vocabulary: what the kernel and a capture file say.
	{Prefix: "sensor", Allow: nil, NoBPF: true},
	{Prefix: "sensor/procfs", Allow: []string{"sensor"}, NoBPF: true},
	// A peer source of facts with its own types.
	{Prefix: "sensor/posture", Allow: nil, NoBPF: true},
	// The kernel loader: the only place cilium/ebpf is used.
	{Prefix: "sensor/kernel", Allow: []string{"sensor", "sensor/procfs"}},
	// The trust-anchor watcher (fanotify): a peer source beside the kernel.
	{Prefix: "sensor/trustwatch", Allow: []string{"sensor", "sensor/procfs"}, NoBPF: true},
	// The enriched event model, shared by lineage, policy and the sinks.
	{Prefix: "lineage/event", Allow: nil, NoBPF: true},
	{Prefix: "lineage/internal", Allow: []string{"sensor", "sensor/procfs", "lineage/event"}, NoBPF: true},
	// Agent knowledge sits below the engine: lineage imports it.
	{Prefix: "lineage/agent", Allow: []string{"sensor", "sensor/procfs", "lineage/event", "lineage/internal"}, NoBPF: true},
	// Binary identity plugs into the engine's fact interfaces.
	{Prefix: "lineage/binid", Allow: []string{"sensor", "sensor/procfs", "lineage", "lineage/event", "lineage/internal"}, NoBPF: true},
	// The engine: vocabulary and facts in, enriched events out.
	{Prefix: "lineage", Allow: []string{"sensor", "sensor/procfs", "sensor/posture", "lineage/event", "lineage/agent", "lineage/internal"}, NoBPF: true},
	// Policy sits between enrichment and the sinks.
	{Prefix: "lineage/policy", Allow: []string{"sensor", "lineage/event", "lineage/agent", "lineage/internal"}, NoBPF: true},
	// Sinks know the enriched event and nothing of the kernel.
	{Prefix: "sink", Allow: []string{"lineage/event"}, NoBPF: true},
	// Views of recorded events read the enriched event model only.
	{Prefix: "report", Allow: []string{"lineage/event"}, NoBPF: true},
	// The audit chain wraps any encoder: it knows the event model; its
	// tests chain the real encoders.
	{Prefix: "sink/audit", Allow: []string{"lineage/event", "sink"}, NoBPF: true},
	// The capture file format: framed, checksummed records of bytes; what
	// a payload means is its user's business (docs/capture.md).
	{Prefix: "capture", Allow: nil, NoBPF: true},
	// Files lineaged ships, embedded (the known agent releases).
	{Prefix: "deploy", Allow: nil, NoBPF: true},
	// The binary wires everything; nothing imports it.
	{Prefix: "cmd", Allow: []string{"sensor/...", "lineage/...", "sink/...", "report/...", "capture", "deploy/..."}},
	{Prefix: "tests", Allow: []string{"sensor/...", "lineage/...", "sink/...", "report/...", "capture", "deploy/..."}},
}

type pkg struct {
	ImportPath string
	Imports    []string
	Deps       []string
	TestImports,
	XTestImports []string
}

// rel strips the module path; ok is false for packages outside the module.
func rel(path string) (string, bool) {
	if path == module {
		return "", true
	}
	r, ok := strings.CutPrefix(path, module+"/")
	return r, ok
}

// under reports whether p is prefix or inside its subtree.
func under(p, prefix string) bool {
	return p == prefix || strings.HasPrefix(p, prefix+"/")
}

// layerOf returns the most specific layer for p.
func layerOf(p string) (layer, bool) {
	best, found := layer{}, false
	for _, l := range layers {
		if under(p, l.Prefix) && (!found || len(l.Prefix) > len(best.Prefix)) {
			best, found = l, true
		}
	}
	return best, found
}

// allowed reports whether package from may import package to (both
// relative): to must sit in from's own layer or in a layer that from's Allow
// names. An Allow entry names one layer exactly; "x/..." names x and every
// layer below it.
func allowed(from, to string) (bool, layer) {
	l, ok := layerOf(from)
	if !ok {
		return false, l
	}
	lt, ok := layerOf(to)
	if !ok {
		return false, l
	}
	if lt.Prefix == l.Prefix {
		return true, l
	}
	for _, a := range l.Allow {
		if sub, ok := strings.CutSuffix(a, "/..."); ok {
			if under(lt.Prefix, sub) {
				return true, l
			}
		} else if lt.Prefix == a {
			return true, l
		}
	}
	return false, l
}

// check returns one line per broken rule in pkgs.
func check(pkgs []pkg) []string {
	var bad []string
	for _, p := range pkgs {
		from, ok := rel(p.ImportPath)
		if !ok {
			continue
		}
		l, known := layerOf(from)
		if !known {
			bad = append(bad, fmt.Sprintf("%s: not in any layer of docs/architecture.md; add it to the table", from))
			continue
		}
		imports := p.Imports
		if !under(from, "tests") {
			// Test files may import test helpers from tests/.
			imports = append(append([]string{}, imports...), p.TestImports...)
		}
		seen := map[string]bool{}
		for _, imp := range imports {
			to, ok := rel(imp)
			if !ok || to == from || seen[to] {
				continue
			}
			seen[to] = true
			if under(to, "tests") && !under(from, "tests") && !under(to, "tests/testutil") {
				bad = append(bad, fmt.Sprintf("%s imports %s: only tests/testutil may be imported from outside tests/", from, to))
				continue
			}
			if under(to, "tests/testutil") {
				continue
			}
			if ok, l := allowed(from, to); !ok {
				bad = append(bad, fmt.Sprintf("%s imports %s: layer %q may import only %v", from, to, l.Prefix, l.Allow))
			}
			if under(to, "cmd") {
				bad = append(bad, fmt.Sprintf("%s imports %s: nothing imports the binary", from, to))
			}
		}
		if l.NoBPF {
			for _, d := range p.Deps {
				if d == "github.com/cilium/ebpf" || strings.HasPrefix(d, "github.com/cilium/ebpf/") {
					bad = append(bad, fmt.Sprintf("%s depends on %s: only sensor/kernel may load BPF", from, d))
					break
				}
			}
		}
	}
	return bad
}

// list runs `go list -json -deps=false` over the module.
func list(t *testing.T) []pkg {
	t.Helper()
	cmd := exec.Command("go", "list", "-json=ImportPath,Imports,Deps,TestImports,XTestImports", module+"/...")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.String())
	}
	var pkgs []pkg
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p pkg
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("go list output: %v", err)
		}
		pkgs = append(pkgs, p)
	}
	if len(pkgs) < 10 {
		t.Fatalf("go list found only %d packages", len(pkgs))
	}
	return pkgs
}

func TestImportsRunDownTheDataFlow(t *testing.T) {
	for _, b := range check(list(t)) {
		t.Error(b)
	}
}

// TestRulesCatchArrowsUp feeds the checker graphs with arrows that run back
// up, so a rule that stops biting fails here and not silently.
func TestRulesCatchArrowsUp(t *testing.T) {
	m := func(p string) string { return module + "/" + p }
	cases := []struct {
		name string
		p    pkg
	}{
		{"vocabulary imports the loader", pkg{ImportPath: m("sensor"), Imports: []string{m("sensor/kernel")}}},
		{"vocabulary links cilium", pkg{ImportPath: m("sensor"), Deps: []string{"github.com/cilium/ebpf/ringbuf"}}},
		{"procfs imports lineage", pkg{ImportPath: m("sensor/procfs"), Imports: []string{m("lineage/event")}}},
		{"posture imports the event model", pkg{ImportPath: m("sensor/posture"), Imports: []string{m("lineage/event")}}},
		{"loader imports lineage", pkg{ImportPath: m("sensor/kernel"), Imports: []string{m("lineage")}}},
		{"agent imports the engine", pkg{ImportPath: m("lineage/agent"), Imports: []string{m("lineage")}}},
		{"claude imports the engine", pkg{ImportPath: m("lineage/agent/claude"), Imports: []string{m("lineage")}}},
		{"engine imports policy", pkg{ImportPath: m("lineage"), Imports: []string{m("lineage/policy")}}},
		{"engine imports the loader", pkg{ImportPath: m("lineage"), Imports: []string{m("sensor/kernel")}}},
		{"engine imports a sink", pkg{ImportPath: m("lineage"), Imports: []string{m("sink/native")}}},
		{"policy imports a sink", pkg{ImportPath: m("lineage/policy"), Imports: []string{m("sink")}}},
		{"sink imports the engine", pkg{ImportPath: m("sink/kafka"), Imports: []string{m("lineage")}}},
		{"sink imports the vocabulary", pkg{ImportPath: m("sink/ocsf"), Imports: []string{m("sensor")}}},
		{"anything imports cmd", pkg{ImportPath: m("tests/e2e"), Imports: []string{m("cmd/lineaged")}}},
		{"product imports a test package", pkg{ImportPath: m("lineage"), TestImports: []string{m("tests/fakeapi")}}},
		{"unknown top-level package", pkg{ImportPath: m("internal/x")}},
	}
	for _, c := range cases {
		if got := check([]pkg{c.p}); len(got) == 0 {
			t.Errorf("%s: no rule broken", c.name)
		}
	}
	ok := []pkg{
		{ImportPath: m("lineage"), Imports: []string{m("lineage/agent"), m("sensor/procfs"), m("lineage/event")}},
		{ImportPath: m("lineage/agent/claude"), Imports: []string{m("lineage/agent"), m("lineage/event")}},
		{ImportPath: m("lineage/policy/redact"), Imports: []string{m("lineage/event"), m("lineage/agent")}},
		{ImportPath: m("sensor/kernel"), Imports: []string{m("sensor")}, Deps: []string{"github.com/cilium/ebpf"}},
		{ImportPath: m("sink/ocsf"), Imports: []string{m("sink/native"), m("lineage/event")}},
		{ImportPath: m("sensor/kernel"), TestImports: []string{m("tests/testutil")}},
	}
	for _, p := range ok {
		if got := check([]pkg{p}); len(got) != 0 {
			t.Errorf("%s: %v", p.ImportPath, got)
		}
	}
}
