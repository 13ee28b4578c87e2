package main

import (
	"bytes"
	"flag"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

var updateDoc = flag.Bool("update", false, "rewrite docs/config.md from the configuration structs")

const (
	modulePath    = "github.com/lineaged/lineaged"
	configDocPath = "../../docs/config.md"
)

// structDocs reads the doc comments of struct types and their fields from
// the Go sources of the packages Config is made of.
type structDocs struct {
	pkgs map[string]map[string]*ast.TypeSpec // package path -> type name -> spec
	gens map[*ast.TypeSpec]*ast.GenDecl
}

func (d *structDocs) load(pkgPath string) (map[string]*ast.TypeSpec, error) {
	if m, ok := d.pkgs[pkgPath]; ok {
		return m, nil
	}
	rel, ok := strings.CutPrefix(pkgPath, modulePath)
	if !ok {
		return nil, fmt.Errorf("%s is not in this module", pkgPath)
	}
	dir := filepath.Join("../..", rel)
	if pkgPath == "main" {
		dir = "."
	}
	fset := token.NewFileSet()
	pkgs, err := parser.ParseDir(fset, dir, func(fi os.FileInfo) bool { return !strings.HasSuffix(fi.Name(), "_test.go") }, parser.ParseComments)
	if err != nil {
		return nil, err
	}
	m := map[string]*ast.TypeSpec{}
	for _, p := range pkgs {
		for _, f := range p.Files {
			for _, decl := range f.Decls {
				g, ok := decl.(*ast.GenDecl)
				if !ok || g.Tok != token.TYPE {
					continue
				}
				for _, s := range g.Specs {
					ts := s.(*ast.TypeSpec)
					m[ts.Name.Name] = ts
					d.gens[ts] = g
				}
			}
		}
	}
	d.pkgs[pkgPath] = m
	return m, nil
}

// typeDoc is the doc comment of a named type.
func (d *structDocs) typeDoc(t reflect.Type) string {
	m, err := d.load(t.PkgPath())
	if err != nil || m[t.Name()] == nil {
		return ""
	}
	ts := m[t.Name()]
	if ts.Doc != nil {
		return ts.Doc.Text()
	}
	if g := d.gens[ts]; g.Doc != nil {
		return g.Doc.Text()
	}
	return ""
}

// fieldDoc is the doc (or line) comment of field name in struct t.
func (d *structDocs) fieldDoc(t reflect.Type, name string) (string, error) {
	m, err := d.load(t.PkgPath())
	if err != nil {
		return "", err
	}
	ts := m[t.Name()]
	if ts == nil {
		return "", fmt.Errorf("type %s not found in %s", t.Name(), t.PkgPath())
	}
	st, ok := ts.Type.(*ast.StructType)
	if !ok {
		return "", fmt.Errorf("%s is not a struct", t)
	}
	// A field without a comment of its own shares the comment of the
	// field before it when that comment names it ("Queue bounds ..., and
	// QueuePerUser ...").
	last := ""
	for _, f := range st.Fields.List {
		own := ""
		switch {
		case f.Doc != nil:
			own = f.Doc.Text()
		case f.Comment != nil:
			own = f.Comment.Text()
		}
		for _, n := range f.Names {
			if n.Name != name {
				continue
			}
			if own == "" && strings.Contains(last, name) {
				own = last
			}
			return own, nil
		}
		if own != "" {
			last = own
		}
	}
	return "", fmt.Errorf("field %s.%s not found", t, name)
}

// configDoc is docs/config.md: every key of Config, with its type,
// default, environment variable and the doc comment of its field.
func configDoc() ([]byte, []string, error) {
	d := &structDocs{pkgs: map[string]map[string]*ast.TypeSpec{}, gens: map[*ast.TypeSpec]*ast.GenDecl{}}
	var def Config
	root := reflect.ValueOf(&def).Elem()
	var b bytes.Buffer
	var undocumented []string
	b.WriteString(configDocIntro)
	section := "\x00"
	for _, cf := range configFields() {
		sec, _, nested := strings.Cut(cf.Key, ".")
		if !nested {
			sec = ""
			if cf.Field.Type.Kind() == reflect.Map {
				sec = cf.Key // a map is a section of its own
			}
		}
		if sec != section {
			section = sec
			title, about := "Top-level keys", ""
			if sec != "" {
				title = "`" + sec + "`"
				f, _ := reflect.TypeOf(Config{}).FieldByNameFunc(func(n string) bool {
					sf, _ := reflect.TypeOf(Config{}).FieldByName(n)
					return tagName(sf) == sec
				})
				about = oneParagraph(d.typeDoc(f.Type))
			}
			fmt.Fprintf(&b, "\n## %s\n\n", title)
			if about != "" {
				fmt.Fprintf(&b, "%s\n\n", about)
			}
			b.WriteString("| Key | Type | Default | Environment | Description |\n|---|---|---|---|---|\n")
		}
		text, err := d.fieldDoc(cf.Owner, cf.Field.Name)
		if err != nil {
			return nil, nil, err
		}
		if text == "" {
			undocumented = append(undocumented, cf.Key)
		}
		text = oneParagraph(text)
		// Doc comments start with the Go name; the reader knows the key.
		if rest, ok := strings.CutPrefix(text, cf.Field.Name+" "); ok {
			text = "`" + cf.Key + "` " + rest
		}
		fv := fieldValue(root, cf.Key)
		if err := decodeValue(defaults[cf.Key], fv.Addr().Interface()); err != nil {
			return nil, nil, fmt.Errorf("%s: default: %w", cf.Key, err)
		}
		dflt, err := formatValue("", fv)
		if err != nil {
			return nil, nil, err
		}
		if text != "" && !strings.HasSuffix(text, ".") {
			text += "."
		}
		if isSecretKey(cf.Key) {
			text += " Masked by `config print`."
		}
		if reloadable(cf.Key) {
			text += " Reloaded on SIGHUP."
		}
		fmt.Fprintf(&b, "| `%s` | %s | `%s` | `%s` | %s |\n", cf.Key, typeWords(cf.Field.Type), dflt, envName(cf.Key), cell(text))
	}
	return b.Bytes(), undocumented, nil
}

const configDocIntro = `# Configuration reference

<!-- Generated from the configuration structs by
     go test ./cmd/lineaged -run TestConfigDoc -update
     Do not edit: change the field's doc comment and regenerate. -->

lineaged reads one YAML file (` + "`--config FILE`" + `, ` + "`LINEAGED_CONFIG`" + `, or
` + "`/etc/lineaged/lineaged.yaml`" + ` when it exists), then ` + "`LINEAGED_*`" + ` environment
variables, then command-line flags; each overrides the one before. A key
` + "`a.b`" + ` is ` + "`LINEAGED_A_B`" + ` in the environment; lists there are comma-separated
(except ` + "`LINEAGED_REDACT_PATTERNS`" + `: a JSON array, or one pattern a line).

An unknown key in the file, an unknown ` + "`LINEAGED_*`" + ` variable, a value of the
wrong type and a bad value are all errors, reported together:

    lineaged config validate --config /etc/lineaged/lineaged.yaml

names every problem with its file and line (or variable, or flag), the bad
value and what is allowed; ` + "`lineaged run`" + ` does the same check at start.

    lineaged config print --config /etc/lineaged/lineaged.yaml

shows the configuration in effect, one key a line, with where each value
came from (` + "`default`" + `, ` + "`FILE:LINE`" + `, ` + "`env VAR`" + ` or ` + "`flag --x`" + `); secrets are
masked.

SIGHUP re-reads the file. Keys marked "Reloaded on SIGHUP" take effect at
once; a change to any other key is logged and waits for a restart. A file
that does not validate changes nothing: the error is logged and counted in
` + "`lineaged_config_reloads_total{result=\"failed\"}`" + `.
`

// oneParagraph joins a doc comment's lines.
func oneParagraph(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

// cell escapes a table cell.
func cell(s string) string {
	return strings.ReplaceAll(s, "|", "\\|")
}

// docs/config.md is generated from the structs: a key without a doc
// comment fails, and so does a file that is not what the generator writes
// (-update rewrites it).
func TestConfigDoc(t *testing.T) {
	got, undocumented, err := configDoc()
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range undocumented {
		t.Errorf("key %s has no doc comment on its struct field", k)
	}
	if *updateDoc {
		if err := os.WriteFile(configDocPath, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(configDocPath)
	if err != nil {
		t.Fatalf("%v (go test ./cmd/lineaged -run TestConfigDoc -update)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("docs/config.md is stale: go test ./cmd/lineaged -run TestConfigDoc -update")
	}
}
