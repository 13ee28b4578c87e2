package ocsfschema

import (
	"errors"
	"strings"
	"testing"
)

// validatorSchema is a hand-made schema, independent of the OCSF sources,
// with one object exercising each rule validator.object applies.
func validatorSchema() (*Schema, *Object) {
	s := &Schema{
		types: map[string]*Type{
			"string_t":  {Name: "string_t", Base: "string_t"},
			"integer_t": {Name: "integer_t", Base: "integer_t"},
		},
		objs: map[string]*Object{},
	}
	o := &Object{
		Name: "thing",
		Attrs: map[string]*Attr{
			"id":        {Name: "id", Type: "integer_t", Requirement: "required"},
			"a":         {Name: "a", Type: "string_t"},
			"b":         {Name: "b", Type: "string_t"},
			"c":         {Name: "c", Type: "string_t"},
			"d":         {Name: "d", Type: "string_t"},
			"gated":     {Name: "gated", Type: "string_t", Profile: "p", Requirement: "required"},
			"status_id": {Name: "status_id", Type: "integer_t", Sibling: "status", Enum: map[string]string{"1": "Up", "99": "Other"}},
			"status":    {Name: "status", Type: "string_t"},
			"child":     {Name: "child", Type: "thing"},
		},
		AtLeastOne: []string{"a", "b"},
		JustOne:    []string{"c", "d"},
	}
	s.objs["thing"] = o
	return s, o
}

func objectErrors(s *Schema, o *Object, m map[string]any, profiles ...string) string {
	v := &validator{s: s, profiles: map[string]bool{}}
	for _, p := range profiles {
		v.profiles[p] = true
	}
	v.object("", o, m)
	if err := errors.Join(v.errs...); err != nil {
		return err.Error()
	}
	return ""
}

func TestValidatorObjectRules(t *testing.T) {
	s, o := validatorSchema()
	for _, tc := range []struct {
		name     string
		m        map[string]any
		profiles []string
		want     []string // substrings of the error; none means valid
	}{
		{"valid", map[string]any{"id": 1.0, "a": "x", "c": "x"}, nil, nil},
		{"unknown attribute", map[string]any{"id": 1.0, "a": "x", "c": "x", "zz": "x"}, nil,
			[]string{"zz: not an attribute of thing"}},
		{"required missing", map[string]any{"a": "x", "c": "x"}, nil,
			[]string{"id: required by thing, missing"}},
		{"profile attribute without the profile", map[string]any{"id": 1.0, "a": "x", "c": "x", "gated": "x"}, nil,
			[]string{"gated: belongs to profile p"}},
		{"profile's required attribute", map[string]any{"id": 1.0, "a": "x", "c": "x"}, []string{"p"},
			[]string{"gated: required by thing, missing"}},
		{"at least one", map[string]any{"id": 1.0, "c": "x"}, nil,
			[]string{"thing needs at least one of [a b]"}},
		{"just one: none", map[string]any{"id": 1.0, "a": "x"}, nil,
			[]string{"thing needs exactly one of [c d], has 0"}},
		{"just one: two", map[string]any{"id": 1.0, "a": "x", "c": "x", "d": "x"}, nil,
			[]string{"thing needs exactly one of [c d], has 2"}},
		{"sibling matches", map[string]any{"id": 1.0, "a": "x", "c": "x", "status_id": 1.0, "status": "Up"}, nil, nil},
		{"sibling differs", map[string]any{"id": 1.0, "a": "x", "c": "x", "status_id": 1.0, "status": "Down"}, nil,
			[]string{`status: "Down", caption of status_id 1 is "Up"`}},
		{"sibling of Other is free", map[string]any{"id": 1.0, "a": "x", "c": "x", "status_id": 99.0, "status": "Sideways"}, nil, nil},
		{"nested object", map[string]any{"id": 1.0, "a": "x", "c": "x", "child": map[string]any{"a": "x", "c": "x"}}, nil,
			[]string{"child.id: required by thing, missing"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := objectErrors(s, o, tc.m, tc.profiles...)
			if len(tc.want) == 0 && got != "" {
				t.Fatalf("want valid, got:\n%s", got)
			}
			for _, w := range tc.want {
				if !strings.Contains(got, w) {
					t.Errorf("errors do not contain %q:\n%s", w, got)
				}
			}
			if n := len(strings.Split(got, "\n")); got != "" && n != len(tc.want) {
				t.Errorf("want %d errors, got %d:\n%s", len(tc.want), n, got)
			}
		})
	}
}

func TestValidatorObjectDepthLimit(t *testing.T) {
	s, o := validatorSchema()
	m := map[string]any{"id": 1.0, "a": "x", "c": "x"}
	for range 40 {
		m = map[string]any{"id": 1.0, "a": "x", "c": "x", "child": m}
	}
	got := objectErrors(s, o, m)
	if !strings.Contains(got, "nesting deeper than 32") || strings.Count(got, "\n") != 0 {
		t.Fatalf("want one nesting error, got:\n%s", got)
	}
}
