package policy

import (
	"os"
	"strings"
	"testing"
)

// Every CEL example in docs/rules.md compiles against the rules' environment.
func TestRulesDocExamplesCompile(t *testing.T) {
	b, err := os.ReadFile("../../docs/rules.md")
	if err != nil {
		t.Fatal(err)
	}
	env, err := newEnv()
	if err != nil {
		t.Fatal(err)
	}
	var exprs []string
	in := false
	cur := ""
	flush := func() {
		if strings.TrimSpace(cur) != "" {
			exprs = append(exprs, cur)
		}
		cur = ""
	}
	for _, line := range strings.Split(string(b), "\n") {
		switch {
		case line == "```cel":
			in = true
		case in && line == "```":
			flush()
			in = false
		case in && strings.HasPrefix(line, "//"):
			flush()
		case in:
			cur += line + "\n"
		}
	}
	if len(exprs) < 5 {
		t.Fatalf("found %d examples", len(exprs))
	}
	for _, x := range exprs {
		if _, _, err := compileBool(env, x); err != nil {
			t.Errorf("docs/rules.md example does not compile:\n%s%v", x, err)
		}
	}
}
