package policy

import (
	"maps"
	"slices"

	"github.com/google/cel-go/common/ast"
	"github.com/google/cel-go/common/operators"
	"github.com/google/cel-go/common/types"
)

// kindSet is the set of event kinds a condition can hold for: all of them
// (any), or those named.
type kindSet struct {
	any   bool
	kinds map[string]bool
}

var anyKind = kindSet{any: true}

// kindsOf reads, from a condition's syntax, which event kinds it can match:
// kind == "file.open" and kind in ["a", "b"] name kinds, && intersects, ||
// unites, anything else can match any kind. It is conservative: a
// condition is only ever skipped for a kind it cannot match, so a rule
// stays correct whatever it is written like, and the common form
// (kind == "..." && ...) is not evaluated at all for other events.
func kindsOf(e ast.Expr) kindSet {
	if e.Kind() != ast.CallKind {
		return anyKind
	}
	call := e.AsCall()
	args := call.Args()
	switch call.FunctionName() {
	case operators.LogicalAnd:
		out := anyKind
		for _, a := range args {
			out = intersect(out, kindsOf(a))
		}
		return out
	case operators.LogicalOr:
		out := kindSet{kinds: map[string]bool{}}
		for _, a := range args {
			k := kindsOf(a)
			if k.any {
				return anyKind
			}
			maps.Copy(out.kinds, k.kinds)
		}
		return out
	case operators.Equals:
		if len(args) == 2 {
			for i := range 2 {
				if isKindIdent(args[i]) {
					if s, ok := stringLit(args[1-i]); ok {
						return kindSet{kinds: map[string]bool{s: true}}
					}
				}
			}
		}
	case operators.In:
		if len(args) == 2 && isKindIdent(args[0]) && args[1].Kind() == ast.ListKind {
			out := kindSet{kinds: map[string]bool{}}
			for _, el := range args[1].AsList().Elements() {
				s, ok := stringLit(el)
				if !ok {
					return anyKind
				}
				out.kinds[s] = true
			}
			return out
		}
	}
	return anyKind
}

func intersect(a, b kindSet) kindSet {
	switch {
	case a.any:
		return b
	case b.any:
		return a
	}
	out := kindSet{kinds: map[string]bool{}}
	for k := range a.kinds {
		if b.kinds[k] {
			out.kinds[k] = true
		}
	}
	return out
}

func isKindIdent(e ast.Expr) bool {
	return e.Kind() == ast.IdentKind && e.AsIdent() == varKind
}

func stringLit(e ast.Expr) (string, bool) {
	if e.Kind() != ast.LiteralKind {
		return "", false
	}
	s, ok := e.AsLiteral().(types.String)
	return string(s), ok
}

// index sorts the rules by the kinds they can match, keeping file order:
// byKind holds, for each kind some rule names, the rules that can match
// it; other holds the rules that can match any kind, for every other kind.
func (rs *Rules) index() {
	rs.byKind = make(map[string][]*Rule)
	var named []string
	for _, r := range rs.rules {
		if r.kinds.any {
			rs.other = append(rs.other, r)
			continue
		}
		for k := range r.kinds.kinds {
			if !slices.Contains(named, k) {
				named = append(named, k)
			}
		}
	}
	for _, k := range named {
		for _, r := range rs.rules {
			if r.kinds.any || r.kinds.kinds[k] {
				rs.byKind[k] = append(rs.byKind[k], r)
			}
		}
	}
}

// forKind returns the rules that can match an event of kind, in order.
func (rs *Rules) forKind(kind string) []*Rule {
	if l, ok := rs.byKind[kind]; ok {
		return l
	}
	return rs.other
}
