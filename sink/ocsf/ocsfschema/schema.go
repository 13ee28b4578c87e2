// Package ocsfschema loads the OCSF schema sources (the ocsf-schema
// repository layout: dictionary.json, categories.json, objects/, events/,
// profiles/, extensions/) and validates events against them: required
// attributes present, no unknown attributes, types, enum values and enum
// captions, object constraints, with extends, $include, profiles and
// extension patches resolved as the OCSF server resolves them.
//
// It is used by the OCSF encoder's tests; it is not on the sensor's hot
// path.
package ocsfschema

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// Attr is a resolved attribute of a class or object.
type Attr struct {
	Name        string
	Type        string // a scalar type (string_t, ...) or an object name
	IsArray     bool
	Requirement string            // required, recommended, optional
	Enum        map[string]string // value -> caption
	Sibling     string
	Profile     string // the profile that brings the attribute, "" if none
}

// Type is a scalar data type.
type Type struct {
	Name   string
	Base   string // string_t, integer_t, long_t, float_t, boolean_t, json_t
	Regex  *regexp.Regexp
	MaxLen int
	Range  []float64
}

// Object is a resolved object or event class.
type Object struct {
	Name        string
	UID         int // class_uid for classes
	CategoryUID int
	Attrs       map[string]*Attr
	AtLeastOne  []string
	JustOne     []string
	Profiles    []string
}

// Schema is a loaded, resolved OCSF schema.
type Schema struct {
	Version  string
	root     string
	dict     map[string]rawAttr
	types    map[string]*Type
	cats     map[string]int
	catCaps  map[int]string
	rawObj   map[string]rawDef
	rawCls   map[string]rawDef
	patches  map[string][]rawDef // extension patches by object name
	profiles map[string]bool
	objs     map[string]*Object
	classes  map[string]*Object
	byUID    map[int]*Object
}

type rawAttr map[string]json.RawMessage

type rawDef struct {
	Name        string                     `json:"name"`
	Caption     string                     `json:"caption"`
	Extends     string                     `json:"extends"`
	UID         *int                       `json:"uid"`
	Category    string                     `json:"category"`
	Profiles    []string                   `json:"profiles"`
	Attributes  map[string]json.RawMessage `json:"attributes"`
	Constraints struct {
		AtLeastOne []string `json:"at_least_one"`
		JustOne    []string `json:"just_one"`
	} `json:"constraints"`
	dir    string // directory $include paths are relative to
	prefix string // extension name for profile tags
}

func readJSON(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

// Load reads and resolves the schema sources under root, with the named
// extensions (e.g. "linux") applied: their dictionary entries, objects,
// patches of core objects and profiles.
func Load(root string, extensions ...string) (*Schema, error) {
	s := &Schema{
		root: root, types: map[string]*Type{}, cats: map[string]int{}, catCaps: map[int]string{},
		rawObj: map[string]rawDef{}, rawCls: map[string]rawDef{}, patches: map[string][]rawDef{},
		profiles: map[string]bool{}, objs: map[string]*Object{}, classes: map[string]*Object{}, byUID: map[int]*Object{},
	}
	var ver struct {
		Version string `json:"version"`
	}
	if err := readJSON(filepath.Join(root, "version.json"), &ver); err != nil {
		return nil, fmt.Errorf("ocsfschema: %w", err)
	}
	s.Version = ver.Version
	if err := s.loadDictionary(); err != nil {
		return nil, err
	}
	if err := s.loadCategories(); err != nil {
		return nil, err
	}
	if err := s.loadDefs(filepath.Join(root, "objects"), root, "", s.rawObj); err != nil {
		return nil, err
	}
	if err := s.loadDefs(filepath.Join(root, "events"), root, "", s.rawCls); err != nil {
		return nil, err
	}
	s.addProfiles(root, "")
	for _, name := range extensions {
		if err := s.loadExtension(name); err != nil {
			return nil, err
		}
	}
	if err := s.resolveClasses(); err != nil {
		return nil, err
	}
	return s, nil
}

// loadDictionary reads dictionary.json: the attribute dictionary and the
// scalar types, their regexes compiled and derived bases flattened.
func (s *Schema) loadDictionary() error {
	var dict struct {
		Attributes map[string]rawAttr `json:"attributes"`
		Types      struct {
			Attributes map[string]struct {
				Type   string    `json:"type"`
				Regex  string    `json:"regex"`
				MaxLen int       `json:"max_len"`
				Range  []float64 `json:"range"`
			} `json:"attributes"`
		} `json:"types"`
	}
	if err := readJSON(filepath.Join(s.root, "dictionary.json"), &dict); err != nil {
		return fmt.Errorf("ocsfschema: %w", err)
	}
	s.dict = dict.Attributes
	for name, t := range dict.Types.Attributes {
		typ := &Type{Name: name, Base: name, MaxLen: t.MaxLen, Range: t.Range}
		if t.Type != "" {
			typ.Base = t.Type
		}
		if t.Regex != "" {
			re, err := regexp.Compile(t.Regex)
			if err != nil {
				return fmt.Errorf("ocsfschema: type %s: regex: %w", name, err)
			}
			typ.Regex = re
		}
		s.types[name] = typ
	}
	s.flattenTypes()
	return nil
}

// flattenTypes resolves each type's base to a primitive: derived types may
// name another derived type as base (timestamp_t -> long_t).
func (s *Schema) flattenTypes() {
	for _, t := range s.types {
		for i := 0; i < 4; i++ {
			b, ok := s.types[t.Base]
			if !ok || b.Base == t.Base {
				break
			}
			t.Base = b.Base
		}
	}
}

// loadCategories reads categories.json: category names to uids, and uids
// to the captions a class's category_uid enum admits.
func (s *Schema) loadCategories() error {
	var cats struct {
		Attributes map[string]struct {
			UID     int    `json:"uid"`
			Caption string `json:"caption"`
		} `json:"attributes"`
	}
	if err := readJSON(filepath.Join(s.root, "categories.json"), &cats); err != nil {
		return fmt.Errorf("ocsfschema: %w", err)
	}
	for n, c := range cats.Attributes {
		s.cats[n] = c.UID
		s.catCaps[c.UID] = c.Caption
	}
	return nil
}

// addProfiles records the profiles defined under dir/profiles, their
// names prefixed with prefix ("linux/" for the linux extension's).
func (s *Schema) addProfiles(dir, prefix string) {
	ps, _ := filepath.Glob(filepath.Join(dir, "profiles", "*.json"))
	for _, p := range ps {
		s.profiles[prefix+strings.TrimSuffix(filepath.Base(p), ".json")] = true
	}
}

// loadExtension applies extensions/name: dictionary entries the core does
// not define, new objects, patches of existing objects (kept aside and
// applied when the object is resolved) and profiles.
func (s *Schema) loadExtension(name string) error {
	e := filepath.Join(s.root, "extensions", name, "extension.json")
	var ext struct {
		Name string `json:"name"`
	}
	if err := readJSON(e, &ext); err != nil {
		return fmt.Errorf("ocsfschema: extension %s: %w", name, err)
	}
	dir := filepath.Dir(e)
	var edict struct {
		Attributes map[string]rawAttr `json:"attributes"`
	}
	if err := readJSON(filepath.Join(dir, "dictionary.json"), &edict); err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("ocsfschema: %w", err)
	}
	for k, a := range edict.Attributes {
		if _, ok := s.dict[k]; !ok {
			s.dict[k] = a
		}
	}
	objs := map[string]rawDef{}
	if err := s.loadDefs(filepath.Join(dir, "objects"), dir, ext.Name, objs); err != nil {
		return err
	}
	for key, d := range objs {
		if d.Name == "" || d.Name == d.Extends {
			// A patch: extends an existing object in place.
			s.patches[d.Extends] = append(s.patches[d.Extends], d)
		} else {
			s.rawObj[key] = d
		}
	}
	s.addProfiles(dir, ext.Name+"/")
	return nil
}

// resolveClasses resolves every event class and indexes by class_uid the
// concrete ones (those with a uid) and base_event.
func (s *Schema) resolveClasses() error {
	for name, d := range s.rawCls {
		c, err := s.class(name)
		if err != nil {
			return err
		}
		if d.UID != nil || name == "base_event" {
			s.byUID[c.UID] = c
		}
	}
	return nil
}

func (s *Schema) loadDefs(dir, incRoot, prefix string, into map[string]rawDef) error {
	return filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			if os.IsNotExist(err) {
				return nil
			}
			return err
		}
		if d.IsDir() || !strings.HasSuffix(path, ".json") {
			return nil
		}
		var def rawDef
		if err := readJSON(path, &def); err != nil {
			return fmt.Errorf("ocsfschema: %w", err)
		}
		def.dir, def.prefix = incRoot, prefix
		key := def.Name
		if key == "" {
			key = strings.TrimSuffix(filepath.Base(path), ".json")
		}
		into[key] = def
		return nil
	})
}

// Object returns the resolved object named name.
func (s *Schema) Object(name string) (*Object, error) {
	if o, ok := s.objs[name]; ok {
		return o, nil
	}
	d, ok := s.rawObj[name]
	if !ok {
		return nil, fmt.Errorf("ocsfschema: unknown object %q", name)
	}
	o := &Object{Name: name, Attrs: map[string]*Attr{}}
	s.objs[name] = o // before resolving: objects refer to themselves
	if d.Extends != "" {
		parent, err := s.Object(d.Extends)
		if err != nil {
			return nil, fmt.Errorf("object %s extends: %w", name, err)
		}
		inherit(o, parent)
	}
	if err := s.apply(o, d); err != nil {
		return nil, err
	}
	for _, p := range s.patches[name] {
		if err := s.apply(o, p); err != nil {
			return nil, err
		}
	}
	return o, nil
}

func (s *Schema) class(name string) (*Object, error) {
	if c, ok := s.classes[name]; ok {
		return c, nil
	}
	d, ok := s.rawCls[name]
	if !ok {
		return nil, fmt.Errorf("ocsfschema: unknown class %q", name)
	}
	c := &Object{Name: name, Attrs: map[string]*Attr{}}
	if d.Extends != "" {
		parent, err := s.class(d.Extends)
		if err != nil {
			return nil, fmt.Errorf("class %s extends: %w", name, err)
		}
		inherit(c, parent)
	}
	if d.Category != "" && d.Category != "other" {
		cu, ok := s.cats[d.Category]
		if !ok {
			return nil, fmt.Errorf("ocsfschema: class %s: unknown category %q", name, d.Category)
		}
		c.CategoryUID = cu
	}
	if d.UID != nil {
		c.UID = c.CategoryUID*1000 + *d.UID
	}
	if err := s.apply(c, d); err != nil {
		return nil, err
	}
	// A class admits exactly its own class_uid and category_uid (the
	// base event's enums list only 0).
	if a := c.Attrs["class_uid"]; a != nil && d.UID != nil {
		cp := *a
		cp.Enum = map[string]string{strconv.Itoa(c.UID): d.Caption}
		c.Attrs["class_uid"] = &cp
	}
	if a := c.Attrs["category_uid"]; a != nil && c.CategoryUID != 0 {
		cp := *a
		cp.Enum = map[string]string{strconv.Itoa(c.CategoryUID): s.catCaps[c.CategoryUID]}
		c.Attrs["category_uid"] = &cp
	}
	s.classes[name] = c
	return c, nil
}

func inherit(o, parent *Object) {
	o.CategoryUID = parent.CategoryUID
	for k, a := range parent.Attrs {
		cp := *a
		cp.Enum = maps.Clone(a.Enum)
		o.Attrs[k] = &cp
	}
	o.AtLeastOne = slices.Clone(parent.AtLeastOne)
	o.JustOne = slices.Clone(parent.JustOne)
	o.Profiles = slices.Clone(parent.Profiles)
}

// apply overlays a definition's attributes (after its $include files) on o.
func (s *Schema) apply(o *Object, d rawDef) error {
	if inc, ok := d.Attributes["$include"]; ok {
		var files []string
		if err := json.Unmarshal(inc, &files); err != nil {
			return fmt.Errorf("ocsfschema: %s: $include: %w", o.Name, err)
		}
		for _, f := range files {
			var p struct {
				Name       string                     `json:"name"`
				Meta       string                     `json:"meta"`
				Attributes map[string]json.RawMessage `json:"attributes"`
			}
			if err := readJSON(filepath.Join(d.dir, f), &p); err != nil {
				return fmt.Errorf("ocsfschema: %s: $include %s: %w", o.Name, f, err)
			}
			prof := ""
			if p.Meta == "profile" {
				prof = p.Name
				if d.prefix != "" {
					prof = d.prefix + "/" + p.Name
				}
			}
			for name, raw := range p.Attributes {
				if err := s.overlay(o, name, raw, prof, true); err != nil {
					return err
				}
			}
		}
	}
	for name, raw := range d.Attributes {
		if name == "$include" {
			continue
		}
		if err := s.overlay(o, name, raw, "", false); err != nil {
			return err
		}
	}
	if len(d.Constraints.AtLeastOne) > 0 {
		o.AtLeastOne = d.Constraints.AtLeastOne
	}
	if len(d.Constraints.JustOne) > 0 {
		o.JustOne = d.Constraints.JustOne
	}
	o.Profiles = append(o.Profiles, d.Profiles...)
	return nil
}

type enumDef map[string]struct {
	Caption string `json:"caption"`
}

func (s *Schema) overlay(o *Object, name string, raw json.RawMessage, profile string, included bool) error {
	var ov map[string]json.RawMessage
	if err := json.Unmarshal(raw, &ov); err != nil {
		return fmt.Errorf("ocsfschema: %s.%s: %w", o.Name, name, err)
	}
	a, ok := o.Attrs[name]
	if !ok {
		da, ok := s.dict[name]
		if !ok {
			return fmt.Errorf("ocsfschema: %s.%s is not in the dictionary", o.Name, name)
		}
		a = &Attr{Name: name, Requirement: "optional"}
		if err := fill(a, da); err != nil {
			return fmt.Errorf("ocsfschema: dictionary %s: %w", name, err)
		}
		// Brought in by a profile file: gated by that profile.
		a.Profile = profile
		o.Attrs[name] = a
	} else if included && profile != "" && a.Profile == "" {
		// A profile re-declaring an attribute the object already has does
		// not gate it.
	}
	if err := fill(a, ov); err != nil {
		return fmt.Errorf("ocsfschema: %s.%s: %w", o.Name, name, err)
	}
	if p, ok := ov["profile"]; ok {
		// "profile": null takes an attribute out of its profile.
		var v *string
		json.Unmarshal(p, &v)
		a.Profile = ""
		if v != nil {
			a.Profile = *v
		}
	}
	return nil
}

func fill(a *Attr, m map[string]json.RawMessage) error {
	for k, v := range m {
		var err error
		switch k {
		case "type":
			err = json.Unmarshal(v, &a.Type)
		case "is_array":
			err = json.Unmarshal(v, &a.IsArray)
		case "requirement":
			err = json.Unmarshal(v, &a.Requirement)
		case "sibling":
			err = json.Unmarshal(v, &a.Sibling)
		case "enum":
			var e enumDef
			if err = json.Unmarshal(v, &e); err == nil {
				if a.Enum == nil {
					a.Enum = map[string]string{}
				}
				for val, c := range e {
					a.Enum[val] = c.Caption
				}
			}
		}
		if err != nil {
			return fmt.Errorf("%s: %w", k, err)
		}
	}
	return nil
}

// Class returns the resolved class with the given class_uid.
func (s *Schema) Class(uid int) (*Object, bool) {
	c, ok := s.byUID[uid]
	return c, ok
}

// Validate checks one event. It returns every problem found, joined.
func (s *Schema) Validate(ev map[string]any) error {
	v := &validator{s: s}
	uid, ok := asInt(ev["class_uid"])
	if !ok {
		return errors.New("class_uid missing or not an integer")
	}
	c, ok := s.byUID[int(uid)]
	if !ok {
		return fmt.Errorf("class_uid %d is not a class of OCSF %s", uid, s.Version)
	}
	v.profiles = map[string]bool{}
	if md, ok := ev["metadata"].(map[string]any); ok {
		if ps, ok := md["profiles"].([]any); ok {
			for _, p := range ps {
				name, _ := p.(string)
				if !s.profiles[name] {
					v.errf("metadata.profiles", "unknown profile %q", name)
				}
				v.profiles[name] = true
			}
		}
		if ver, _ := md["version"].(string); ver != s.Version {
			v.errf("metadata.version", "%q, schema is %s", ver, s.Version)
		}
	}
	if cu, ok := asInt(ev["category_uid"]); !ok || int(cu) != c.CategoryUID {
		v.errf("category_uid", "%v, class %s is in category %d", ev["category_uid"], c.Name, c.CategoryUID)
	}
	if act, ok := asInt(ev["activity_id"]); ok {
		if tu, ok := asInt(ev["type_uid"]); !ok || tu != uid*100+act {
			v.errf("type_uid", "%v, want class_uid*100+activity_id = %d", ev["type_uid"], uid*100+act)
		}
	}
	v.object("", c, ev)
	return errors.Join(v.errs...)
}

type validator struct {
	s        *Schema
	profiles map[string]bool
	errs     []error
	depth    int
}

func (v *validator) errf(path, f string, a ...any) {
	v.errs = append(v.errs, fmt.Errorf("%s: %s", path, fmt.Sprintf(f, a...)))
}

func join(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

// object checks m against o: every member is an attribute of o (of a
// listed profile) with a valid value, every required attribute is there,
// o's constraints hold and enum captions match their ids.
func (v *validator) object(path string, o *Object, m map[string]any) {
	v.depth++
	defer func() { v.depth-- }()
	if v.depth > 32 {
		v.errf(path, "nesting deeper than 32")
		return
	}
	for _, name := range sortedKeys(m) {
		a, ok := o.Attrs[name]
		p := join(path, name)
		if !ok {
			v.errf(p, "not an attribute of %s", o.Name)
			continue
		}
		if a.Profile != "" && !v.profiles[a.Profile] {
			v.errf(p, "belongs to profile %s, not listed in metadata.profiles", a.Profile)
		}
		v.value(p, a, m[name])
	}
	v.required(path, o, m)
	v.constraints(path, o, m)
	v.siblings(path, o, m)
}

// required reports o's required attributes missing from m; those of a
// profile the event does not list are not required.
func (v *validator) required(path string, o *Object, m map[string]any) {
	for _, name := range sortedKeys(o.Attrs) {
		a := o.Attrs[name]
		if a.Requirement != "required" || (a.Profile != "" && !v.profiles[a.Profile]) {
			continue
		}
		if _, ok := m[name]; !ok {
			v.errf(join(path, name), "required by %s, missing", o.Name)
		}
	}
}

// constraints checks o's at_least_one and just_one constraints on m.
func (v *validator) constraints(path string, o *Object, m map[string]any) {
	if len(o.AtLeastOne) > 0 && countPresent(m, o.AtLeastOne) == 0 {
		v.errf(path, "%s needs at least one of %v", o.Name, o.AtLeastOne)
	}
	if len(o.JustOne) > 0 {
		if n := countPresent(m, o.JustOne); n != 1 {
			v.errf(path, "%s needs exactly one of %v, has %d", o.Name, o.JustOne, n)
		}
	}
}

// countPresent counts the keys of m among names.
func countPresent(m map[string]any, names []string) int {
	n := 0
	for _, k := range names {
		if _, ok := m[k]; ok {
			n++
		}
	}
	return n
}

// siblings checks that a caption field matches the caption of its enum
// id; the id 99 (Other) leaves the caption free.
func (v *validator) siblings(path string, o *Object, m map[string]any) {
	for _, name := range sortedKeys(m) {
		a := o.Attrs[name]
		if a == nil || a.Sibling == "" || a.Enum == nil {
			continue
		}
		sib, ok := m[a.Sibling].(string)
		if !ok {
			continue
		}
		id := fmt.Sprint(m[name])
		if want, ok := a.Enum[id]; ok && id != "99" && sib != want {
			v.errf(join(path, a.Sibling), "%q, caption of %s %s is %q", sib, name, id, want)
		}
	}
}

func (v *validator) value(path string, a *Attr, val any) {
	if a.IsArray {
		arr, ok := val.([]any)
		if !ok {
			v.errf(path, "want an array of %s, have %T", a.Type, val)
			return
		}
		for i, e := range arr {
			v.scalarOrObject(fmt.Sprintf("%s[%d]", path, i), a, e)
		}
		return
	}
	v.scalarOrObject(path, a, val)
}

func (v *validator) scalarOrObject(path string, a *Attr, val any) {
	if t, ok := v.s.types[a.Type]; ok {
		v.scalar(path, a, t, val)
		return
	}
	if a.Type == "object" || a.Type == "object_t" {
		if _, ok := val.(map[string]any); !ok {
			v.errf(path, "want an object, have %T", val)
		}
		return
	}
	o, err := v.s.Object(a.Type)
	if err != nil {
		v.errf(path, "%v", err)
		return
	}
	m, ok := val.(map[string]any)
	if !ok {
		v.errf(path, "want a %s object, have %T", a.Type, val)
		return
	}
	v.object(path, o, m)
}

func (v *validator) scalar(path string, a *Attr, t *Type, val any) {
	switch t.Base {
	case "string_t":
		str, ok := val.(string)
		if !ok {
			v.errf(path, "want a string (%s), have %T", t.Name, val)
			return
		}
		if t.Regex != nil && !t.Regex.MatchString(str) {
			v.errf(path, "%q does not match %s", str, t.Name)
		}
		if t.MaxLen > 0 && len(str) > t.MaxLen {
			v.errf(path, "%d bytes, %s allows %d", len(str), t.Name, t.MaxLen)
		}
	case "integer_t", "long_t":
		n, ok := asInt(val)
		if !ok {
			v.errf(path, "want an integer (%s), have %v", t.Name, val)
			return
		}
		if t.Base == "integer_t" && (n < math.MinInt32 || n > math.MaxInt32) {
			v.errf(path, "%d does not fit integer_t", n)
		}
		if len(t.Range) == 2 && (float64(n) < t.Range[0] || float64(n) > t.Range[1]) {
			v.errf(path, "%d outside %s range %v", n, t.Name, t.Range)
		}
	case "float_t":
		if _, ok := val.(json.Number); !ok {
			if _, ok := val.(float64); !ok {
				v.errf(path, "want a number, have %T", val)
			}
		}
	case "boolean_t":
		if _, ok := val.(bool); !ok {
			v.errf(path, "want a boolean, have %T", val)
		}
	case "json_t":
	default:
		v.errf(path, "unknown base type %s", t.Base)
	}
	if a.Enum != nil {
		key := fmt.Sprint(val)
		if n, ok := val.(json.Number); ok {
			key = n.String()
		}
		if _, ok := a.Enum[key]; !ok {
			v.errf(path, "%v is not a value of the %s enum", val, a.Name)
		}
	}
}

func asInt(v any) (int64, bool) {
	switch n := v.(type) {
	case json.Number:
		i, err := strconv.ParseInt(n.String(), 10, 64)
		return i, err == nil
	case float64:
		if n == math.Trunc(n) {
			return int64(n), true
		}
	case int:
		return int64(n), true
	case int64:
		return n, true
	}
	return 0, false
}

func sortedKeys[V any](m map[string]V) []string {
	k := make([]string, 0, len(m))
	for x := range m {
		k = append(k, x)
	}
	sort.Strings(k)
	return k
}

// Decode parses one JSON event keeping numbers exact.
func Decode(b []byte) (map[string]any, error) {
	d := json.NewDecoder(strings.NewReader(string(b)))
	d.UseNumber()
	var m map[string]any
	if err := d.Decode(&m); err != nil {
		return nil, err
	}
	return m, nil
}
