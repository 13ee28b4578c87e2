package main

import (
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

// configKeys lists the keys Config decodes, from its mapstructure tags: a
// nested struct is a section, anything else (a map included) one key.
// Fields tagged "-" are the program's, not keys. An exported field with
// no tag is reported in untagged: mapstructure would accept its Go name
// as a key nobody documented.
func configKeys(t reflect.Type, prefix string, keys, untagged *[]string) {
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		tag, ok := f.Tag.Lookup("mapstructure")
		name, _, _ := strings.Cut(tag, ",")
		if !ok || name == "" {
			*untagged = append(*untagged, prefix+f.Name)
			continue
		}
		if name == "-" {
			continue
		}
		if f.Type.Kind() == reflect.Struct && f.Type != reflect.TypeOf(time.Duration(0)) {
			configKeys(f.Type, prefix+name+".", keys, untagged)
			continue
		}
		*keys = append(*keys, prefix+name)
	}
}

// Config's sections are the packages' own Config structs; a field added
// there must be a documented key with a default (viper binds LINEAGED_*
// only for keys it knows from the defaults) or be tagged "-".
func TestConfigKeysHaveDefaults(t *testing.T) {
	var keys, untagged []string
	configKeys(reflect.TypeOf(Config{}), "", &keys, &untagged)
	if len(untagged) > 0 {
		t.Errorf("fields without a mapstructure tag (a key, or \"-\" when the program sets it): %v", untagged)
	}
	for _, k := range keys {
		if _, ok := defaults[k]; !ok {
			t.Errorf("key %s has no default: LINEAGED_%s would be ignored", k, strings.ToUpper(strings.ReplaceAll(k, ".", "_")))
		}
	}
	for k := range defaults {
		if !slices.Contains(keys, k) {
			t.Errorf("default for %s, which Config does not decode", k)
		}
	}
}

// Every documented key can be set from the environment, these two
// included: without a default they were read from the file only.
func TestConfigFromEnvWithoutFileDefault(t *testing.T) {
	cfg, err := parse(t, nil, map[string]string{
		"LINEAGED_KAFKA_ALLOW_START_OFFLINE": "true",
		"LINEAGED_POLICY_DENY_EXEC":          "/usr/bin/nc,/opt/tools/",
	})
	if err != nil {
		t.Fatal(err)
	}
	if !cfg.Kafka.AllowStartOffline {
		t.Error("LINEAGED_KAFKA_ALLOW_START_OFFLINE=true was ignored")
	}
	if !slices.Equal(cfg.Policy.DenyExec, []string{"/usr/bin/nc", "/opt/tools/"}) {
		t.Errorf("LINEAGED_POLICY_DENY_EXEC: got %q", cfg.Policy.DenyExec)
	}
}

// Fields the program sets are not keys: naming one in the file is an
// unknown-key error, as before the sections became the packages' structs.
func TestConfigProgramFieldsAreNotKeys(t *testing.T) {
	for _, yaml := range []string{
		"kafka:\n  stamp: x\n",
		"kafka:\n  write_timeout: 1s\n",
		"kafka:\n  writetimeout: 1s\n",
		"kafka:\n  spool:\n    segmentbytes: 1\n",
		"lineage:\n  scope: all\n",
		"lineage:\n  humans:\n    alice: {name: A}\n",
		"hashing:\n  procroot: /x\n",
		"trust:\n  workers: 3\n",
		"trust:\n  config:\n    workers: 3\n",
		"trust:\n  dpkgdir: /x\n",
		"redact:\n  keepprompt: true\n",
		"posture:\n  insession: x\n",
	} {
		_, err := parse(t, []string{"--config", writeFile(t, yaml)}, nil)
		if err == nil || !strings.Contains(err.Error(), ": unknown key") {
			t.Errorf("%q: got %v, want an unknown-key error", yaml, err)
		}
	}
}
