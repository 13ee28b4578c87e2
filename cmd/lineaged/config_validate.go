package main

import (
	"bytes"
	"fmt"
	"os"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/go-viper/mapstructure/v2"
	"github.com/spf13/pflag"
	"github.com/spf13/viper"
	"go.yaml.in/yaml/v3"
)

// configField is one key of Config: its dotted name and the struct field
// that decodes it (a nested struct is a section, anything else one key).
type configField struct {
	Key   string
	Field reflect.StructField
	Owner reflect.Type // the struct the field is declared in
}

var durationType = reflect.TypeOf(time.Duration(0))

// isSection says whether a field of type t is a section of keys.
func isSection(t reflect.Type) bool {
	return t.Kind() == reflect.Struct && t != durationType
}

// tagName is a field's key name: "" for an untagged field, "-" for one
// the program fills in.
func tagName(f reflect.StructField) string {
	name, _, _ := strings.Cut(f.Tag.Get("mapstructure"), ",")
	return name
}

// configFields lists every key of Config, in declaration order.
func configFields() []configField {
	var out []configField
	var walk func(t reflect.Type, prefix string)
	walk = func(t reflect.Type, prefix string) {
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			name := tagName(f)
			if !f.IsExported() || name == "" || name == "-" {
				continue
			}
			if isSection(f.Type) {
				walk(f.Type, prefix+name+".")
				continue
			}
			out = append(out, configField{Key: prefix + name, Field: f, Owner: t})
		}
	}
	walk(reflect.TypeOf(Config{}), "")
	return out
}

// configSources says where each key's value came from: the flags that were
// set, the environment, the file (with the line of each key in it).
type configSources struct {
	path  string
	lines map[string]int // key -> line in path
	fs    *pflag.FlagSet
	env   func(string) (string, bool)
}

// where names the source of key's value: flag --x, env LINEAGED_X,
// FILE:LINE, or default.
func (s *configSources) where(key string) string {
	for flag, k := range flagKeys {
		if k != key || s.fs == nil {
			continue
		}
		if f := s.fs.Lookup(flag); f != nil && f.Changed {
			return "flag --" + flag
		}
	}
	if _, ok := s.env(envName(key)); ok {
		return "env " + envName(key)
	}
	if line, ok := s.lines[key]; ok {
		return s.path + ":" + strconv.Itoa(line)
	}
	return "default"
}

// configProblems is every problem found in a configuration, each naming
// its key, where the value came from, the bad value and what is allowed.
type configProblems struct {
	where string // "config FILE" or "configuration"
	list  []string
}

func (e *configProblems) Error() string {
	if len(e.list) == 1 {
		return e.where + ": " + e.list[0]
	}
	return fmt.Sprintf("%s: %d problems:\n  %s", e.where, len(e.list), strings.Join(e.list, "\n  "))
}

func (e *configProblems) add(format string, a ...any) {
	e.list = append(e.list, fmt.Sprintf(format, a...))
}

// readConfigFile reads the YAML file into v and records the line of every
// key; each key that Config does not have is a problem (with the nearest
// one that it does), as is a section given a value.
func readConfigFile(v *viper.Viper, src *configSources, probs *configProblems) error {
	data, err := os.ReadFile(src.path)
	if err != nil {
		return fmt.Errorf("config %s: %w", src.path, err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return fmt.Errorf("config %s: %w", src.path, err)
	}
	v.SetConfigType("yaml")
	if err := v.ReadConfig(bytes.NewReader(data)); err != nil {
		return fmt.Errorf("config %s: %w", src.path, err)
	}
	if len(doc.Content) == 0 {
		return nil
	}
	walkYAML(doc.Content[0], "", reflect.TypeOf(Config{}), src, probs)
	return nil
}

// walkYAML checks node, the value of key prefix, against t.
func walkYAML(node *yaml.Node, prefix string, t reflect.Type, src *configSources, probs *configProblems) {
	if node.Kind == yaml.AliasNode && node.Alias != nil {
		node = node.Alias
	}
	key := strings.TrimSuffix(prefix, ".")
	if key != "" {
		src.lines[key] = node.Line
	}
	nested := isSection(t) || t.Kind() == reflect.Map && isSection(t.Elem())
	if !nested {
		return
	}
	if node.Kind == yaml.ScalarNode && node.Tag == "!!null" {
		return
	}
	if node.Kind != yaml.MappingNode {
		if !isSection(t) {
			return // a map given something else: decodeKeys says so
		}
		val := strconv.Quote(node.Value)
		if node.Kind == yaml.SequenceNode {
			val = "a list"
		}
		probs.add("%s:%d: %s: %s is not a section: %s", src.path, node.Line, key, val, sectionKeys(prefix, sectionFields(t)))
		return
	}
	var known map[string]reflect.StructField
	if isSection(t) {
		known = sectionFields(t)
	}
	for i := 0; i+1 < len(node.Content); i += 2 {
		k, val := node.Content[i], node.Content[i+1]
		name := strings.ToLower(k.Value)
		if !isSection(t) { // a map of sections: the name is the map key
			src.lines[prefix+name] = k.Line
			walkYAML(val, prefix+name+".", t.Elem(), src, probs)
			continue
		}
		f, ok := known[name]
		if !ok {
			msg := fmt.Sprintf("%s:%d: %s%s: unknown key", src.path, k.Line, prefix, k.Value)
			names := make(map[string]bool, len(known))
			for n := range known {
				names[n] = true
			}
			if near := nearest(name, names); near != "" {
				msg += "; did you mean " + prefix + near + "?"
			} else {
				msg += "; " + sectionKeys(prefix, known)
			}
			probs.list = append(probs.list, msg)
			continue
		}
		src.lines[prefix+name] = k.Line
		walkYAML(val, prefix+name+".", f.Type, src, probs)
	}
}

// sectionFields is a section's keys by name.
func sectionFields(t reflect.Type) map[string]reflect.StructField {
	known := map[string]reflect.StructField{}
	for i := 0; i < t.NumField(); i++ {
		if f := t.Field(i); f.IsExported() && tagName(f) != "" && tagName(f) != "-" {
			known[tagName(f)] = f
		}
	}
	return known
}

// sectionKeys lists the keys allowed in a section, for an unknown key's
// message.
func sectionKeys(prefix string, known map[string]reflect.StructField) string {
	names := make([]string, 0, len(known))
	for n := range known {
		names = append(names, n)
	}
	sort.Strings(names)
	if prefix == "" {
		return "top-level keys are " + strings.Join(names, ", ")
	}
	return strings.TrimSuffix(prefix, ".") + " has " + strings.Join(names, ", ")
}

// decodeHook turns the strings of the environment and flags into
// durations and lists, as for the whole configuration.
func decodeHook() mapstructure.DecodeHookFunc {
	return mapstructure.ComposeDecodeHookFunc(
		mapstructure.StringToTimeDurationHookFunc(),
		mapstructure.StringToSliceHookFunc(","),
	)
}

// decodeKeys decodes every key on its own into cfg, so each value of the
// wrong type is a problem naming its key, source and value, and the key
// keeps its default so the rest of the configuration can still be checked.
// Unknown keys are found by walkYAML and envProblems, not here.
func decodeKeys(v *viper.Viper, cfg *Config, src *configSources, probs *configProblems) {
	root := reflect.ValueOf(cfg).Elem()
	for _, cf := range configFields() {
		out := fieldValue(root, cf.Key).Addr().Interface()
		raw := v.Get(cf.Key)
		if raw == nil { // its section was given a value
			raw = defaults[cf.Key]
		}
		if err := decodeValue(raw, out); err != nil {
			probs.add("%s: %s: %s is not %s", src.where(cf.Key), cf.Key, showValue(cf.Key, raw), typeWords(cf.Field.Type))
			// The default always decodes (TestConfigKeysHaveDefaults
			// and the defaults' own load check it).
			_ = decodeValue(defaults[cf.Key], out)
		}
	}
}

// decodeValue decodes one key's value as viper would: strings from the
// environment and flags are weakly typed.
func decodeValue(raw, out any) error {
	if raw == nil {
		return nil
	}
	dec, err := mapstructure.NewDecoder(&mapstructure.DecoderConfig{
		DecodeHook:       decodeHook(),
		WeaklyTypedInput: true,
		Result:           out,
	})
	if err != nil {
		return err
	}
	return dec.Decode(raw)
}

// sortProblems puts the file's problems first, by line, then the rest in
// the order found.
func sortProblems(path string, list []string) {
	line := func(s string) int {
		if path == "" || !strings.HasPrefix(s, path+":") {
			return 1 << 30
		}
		n, _ := strconv.Atoi(strings.SplitN(strings.TrimPrefix(s, path+":"), ":", 2)[0])
		return n
	}
	sort.SliceStable(list, func(i, j int) bool { return line(list[i]) < line(list[j]) })
}

// typeWords says in words what a value of type t is.
func typeWords(t reflect.Type) string {
	switch {
	case t == durationType:
		return "a duration (such as 500ms, 10s, 1m30s)"
	case t.Kind() == reflect.Bool:
		return "true or false"
	case t.Kind() >= reflect.Int && t.Kind() <= reflect.Int64:
		return "an integer"
	case t.Kind() >= reflect.Uint && t.Kind() <= reflect.Uint64:
		return "a non-negative integer"
	case t.Kind() == reflect.String:
		return "a string"
	case t.Kind() == reflect.Slice && t.Elem().Kind() == reflect.String:
		return "a list of strings"
	case t.Kind() == reflect.Map && isSection(t.Elem()):
		var keys []string
		for i := 0; i < t.Elem().NumField(); i++ {
			if n := tagName(t.Elem().Field(i)); n != "" && n != "-" {
				keys = append(keys, n)
			}
		}
		return "a map of names to {" + strings.Join(keys, ", ") + "}"
	}
	return "a " + t.String()
}

// annotate puts the source of each validate error's key (its leading
// "key: ") in front, as a compiler puts FILE:LINE, and adds the errors to
// probs.
func annotate(err error, src *configSources, probs *configProblems) {
	if err == nil {
		return
	}
	var errs []error
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs = j.Unwrap()
	} else {
		errs = []error{err}
	}
	for _, e := range errs {
		msg := e.Error()
		key, _, ok := strings.Cut(msg, ": ")
		if _, known := defaults[key]; ok && known {
			if w := src.where(key); w != "default" {
				msg = w + ": " + msg
			}
		}
		probs.list = append(probs.list, msg)
	}
}

// showValue quotes a value for a message; a secret's is masked.
func showValue(key string, v any) string {
	if isSecretKey(key) {
		return maskSecret(v)
	}
	if s, ok := v.(string); ok {
		return strconv.Quote(s)
	}
	return fmt.Sprintf("%v", v)
}
