package main

import (
	"encoding/json"
	"fmt"
	"io"
	"reflect"
	"strings"
	"time"
)

// secretKeys are the keys whose values config print and error messages
// mask: the SASL password, and the redaction patterns, which may spell out
// the very secrets they are there to remove.
var secretKeys = map[string]bool{
	"kafka.sasl.password": true,
	"redact.patterns":     true,
}

func isSecretKey(key string) bool { return secretKeys[key] }

// maskSecret shows that a secret is set, and for a list how many entries
// it has, never what it is.
func maskSecret(v any) string {
	rv := reflect.ValueOf(v)
	switch {
	case !rv.IsValid(), rv.Kind() == reflect.String && rv.Len() == 0:
		return `""`
	case rv.Kind() == reflect.Slice:
		return fmt.Sprintf("[%d masked]", rv.Len())
	}
	return `"********"`
}

// printConfig writes the effective configuration, one key a line in the
// order of Config, each with where its value came from. Secrets are masked.
func printConfig(w io.Writer, cfg *Config, src *configSources) error {
	root := reflect.ValueOf(cfg).Elem()
	width := 0
	for _, cf := range configFields() {
		width = max(width, len(cf.Key))
	}
	for _, cf := range configFields() {
		val, err := formatValue(cf.Key, fieldValue(root, cf.Key))
		if err != nil {
			return fmt.Errorf("%s: %w", cf.Key, err)
		}
		if _, err := fmt.Fprintf(w, "%-*s %s  # %s\n", width+1, cf.Key+":", val, src.where(cf.Key)); err != nil {
			return err
		}
	}
	return nil
}

// fieldValue follows key's mapstructure tags from the root Config.
func fieldValue(v reflect.Value, key string) reflect.Value {
	for _, part := range strings.Split(key, ".") {
		t := v.Type()
		for i := 0; i < t.NumField(); i++ {
			if tagName(t.Field(i)) == part {
				v = v.Field(i)
				break
			}
		}
	}
	return v
}

// formatValue writes a value as YAML flow style would: strings quoted,
// lists and maps in JSON (a YAML subset), durations as Go writes them.
func formatValue(key string, v reflect.Value) (string, error) {
	if isSecretKey(key) {
		return maskSecret(v.Interface()), nil
	}
	if v.Type() == durationType {
		return time.Duration(v.Int()).String(), nil
	}
	if v.Kind() == reflect.Map && isSection(v.Type().Elem()) {
		m := make(map[string]map[string]any, v.Len())
		iter := v.MapRange()
		for iter.Next() {
			e := map[string]any{}
			et := iter.Value().Type()
			for i := 0; i < et.NumField(); i++ {
				if n := tagName(et.Field(i)); n != "" && n != "-" {
					e[n] = iter.Value().Field(i).Interface()
				}
			}
			m[iter.Key().String()] = e
		}
		b, err := json.Marshal(m)
		return string(b), err
	}
	if v.Kind() == reflect.Slice && v.IsNil() {
		return "[]", nil
	}
	b, err := json.Marshal(v.Interface())
	return string(b), err
}
