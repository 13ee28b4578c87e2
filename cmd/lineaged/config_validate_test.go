package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"
	"testing"
)

// A file with many problems of every kind gets them all in one error,
// each with its file and line, in the order of the file; the environment's
// and the cross-key problems follow.
func TestConfigReportsEveryProblemAtOnce(t *testing.T) {
	path := writeFile(t, `scope: everything
formt: ocsf
file:
  retain: five
  max_size_mb: 0
kafka:
  brokers: [nohost]
  batch_timeout: soon
humans:
  alice:
    nmae: Alice
lineage: 3
log:
  level: loud
`)
	_, err := parse(t, []string{"--config", path}, map[string]string{
		"LINEAGED_FILE_RETIAN":       "3",
		"LINEAGED_SENSOR_QUEUE_SIZE": "many",
	})
	if err == nil {
		t.Fatal("a config with 12 problems loaded")
	}
	want := []string{
		path + `:1: scope: "everything" is not one of agents, all`,
		path + `:2: formt: unknown key; did you mean format?`,
		path + `:4: file.retain: "five" is not an integer`,
		path + `:5: file.max_size_mb: 0 must be at least 1`,
		path + `:7: kafka.brokers: "nohost" is not HOST:PORT`,
		path + `:8: kafka.batch_timeout: "soon" is not a duration (such as 500ms, 10s, 1m30s)`,
		path + `:11: humans.alice.nmae: unknown key; did you mean humans.alice.name?`,
		path + `:12: lineage: "3" is not a section: lineage has enrich_wait, exit_grace, max_pending, max_processes`,
		path + `:14: log.level: "loud" is not one of debug, info, warn, error`,
		`LINEAGED_FILE_RETIAN: not a configuration key (did you mean LINEAGED_FILE_RETAIN?)`,
		`env LINEAGED_SENSOR_QUEUE_SIZE: sensor.queue_size: "many" is not an integer`,
		`kafka.topic: required when kafka.brokers is set`,
	}
	msg := err.Error()
	if !strings.HasPrefix(msg, fmt.Sprintf("config %s: %d problems:\n", path, len(want))) {
		t.Errorf("header: %q", strings.SplitN(msg, "\n", 2)[0])
	}
	last := -1
	for _, w := range want {
		i := strings.Index(msg, "\n  "+w+"\n")
		if i < 0 && strings.HasSuffix(msg, "\n  "+w) {
			i = len(msg) - len(w)
		}
		if i < 0 {
			t.Errorf("missing %q", w)
			continue
		}
		if i < last {
			t.Errorf("%q out of order", w)
		}
		last = i
	}
	if t.Failed() {
		t.Logf("got:\n%s", msg)
	}
}

// Each kind of bad value has its message: the key, where it was set, the
// bad value and what is allowed.
func TestConfigProblemMessages(t *testing.T) {
	for _, c := range []struct {
		name, yaml string
		args       []string
		env        map[string]string
		want       string
	}{
		{"unknown key, near one", "kafka:\n  topik: t\n", nil, nil, ":2: kafka.topik: unknown key; did you mean kafka.topic?"},
		{"unknown key, none near", "kafka:\n  sasl:\n    certificate: x\n", nil, nil,
			":3: kafka.sasl.certificate: unknown key; kafka.sasl has mechanism, password, password_file, username"},
		{"unknown section", "nonsense_section:\n  a: 1\n", nil, nil, ":1: nonsense_section: unknown key; top-level keys are agents, audit, control, events, file,"},
		{"integer", "sensor:\n  queue_size: lots\n", nil, nil, `:2: sensor.queue_size: "lots" is not an integer`},
		{"release list missing", "agents:\n  known_releases: [/nonexistent/known-releases]\n", nil, nil,
			"agents.known_releases: agent release list: open /nonexistent/known-releases: no such file or directory"},
		{"boolean", "hook:\n  fail_closed: maybe\n", nil, nil, `:2: hook.fail_closed: "maybe" is not true or false`},
		{"duration", "hook:\n  timeout: 5 parsecs\n", nil, nil, `:2: hook.timeout: "5 parsecs" is not a duration`},
		{"list", "trust:\n  keys: {a: 1}\n", nil, nil, `:2: trust.keys: map[a:1] is not a list of strings`},
		{"string", "output: [a, b]\n", nil, nil, `:1: output: [a b] is not a string`},
		{"map", "humans: [alice]\n", nil, nil, `:1: humans: [alice] is not a map of names to {name, email}`},
		{"section given a value", "kafka: localhost:9092\n", nil, nil, `:1: kafka: "localhost:9092" is not a section: kafka has allow_start_offline, batch_size`},
		{"enum", "format: xml\n", nil, nil, `:1: format: "xml" is not one of native, ocsf`},
		{"range", "sensor:\n  ring_buffer_bytes: 5000\n", nil, nil, `:2: sensor.ring_buffer_bytes: 5000 must be a power of two of at least 4096`},
		{"regexp", "redact:\n  patterns: ['(']\n", nil, nil, `redact.patterns: "(": error parsing regexp`},
		{"cross-key", "events:\n  schema: v1\n", nil, nil, `:2: events.schema: v1 writes whole ancestors: set events.ancestry: full with it`},
		{"flag", "{}\n", []string{"--format", "yaml"}, nil, `flag --format: format: "yaml" is not one of native, ocsf`},
		{"env value", "{}\n", nil, map[string]string{"LINEAGED_HOOK_TIMEOUT": "soon"}, `env LINEAGED_HOOK_TIMEOUT: hook.timeout: "soon" is not a duration`},
		{"env name", "{}\n", nil, map[string]string{"LINEAGED_KAFKA_TOPIK": "t"}, `LINEAGED_KAFKA_TOPIK: not a configuration key (did you mean LINEAGED_KAFKA_TOPIC?)`},
		{"secret masked", "kafka:\n  sasl:\n    password: [hunter2-secret]\n", nil, nil, `:3: kafka.sasl.password: [1 masked] is not a string`},
		{"not YAML", "scope: [agents\n", nil, nil, `yaml: line 1: did not find expected ',' or ']'`},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := parse(t, append([]string{"--config", writeFile(t, c.yaml)}, c.args...), c.env)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v\nwant it to contain %q", err, c.want)
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Fatalf("the secret is in the message: %v", err)
			}
		})
	}
}

// config validate says OK for the packaged file, and lists every problem
// (exit 2) for a bad one, as run does at start.
func TestConfigValidateCommand(t *testing.T) {
	var out, errb bytes.Buffer
	if code := realMain([]string{"config", "validate", "--config", "../../deploy/lineaged.yaml"}, &out, &errb); code != exitOK {
		t.Fatalf("deploy/lineaged.yaml: exit %d: %s", code, errb.String())
	}
	if !strings.Contains(out.String(), "configuration OK") {
		t.Errorf("stdout: %q", out.String())
	}
	bad := writeFile(t, "scope: some\nformt: x\nfile:\n  retain: 0\n")
	for _, cmd := range [][]string{{"config", "validate"}, {"run"}} {
		out.Reset()
		errb.Reset()
		if code := realMain(append(cmd, "--config", bad), &out, &errb); code != exitUsage {
			t.Fatalf("%v: exit %d, want %d", cmd, code, exitUsage)
		}
		for _, w := range []string{"3 problems", bad + ":1: scope", bad + ":2: formt", bad + ":4: file.retain"} {
			if !strings.Contains(errb.String(), w) {
				t.Errorf("%v: stderr lacks %q:\n%s", cmd, w, errb.String())
			}
		}
	}
}

// config print shows each key's effective value and where it came from;
// secrets are masked.
func TestConfigPrint(t *testing.T) {
	path := writeFile(t, "scope: all\nkafka:\n  sasl:\n    username: u\n    password: hunter2-secret\nredact:\n  patterns: ['tok_[a-z]+', 'hunter2']\n")
	t.Setenv("LINEAGED_FILE_RETAIN", "9")
	var out, errb bytes.Buffer
	if code := realMain([]string{"config", "print", "--config", path, "--format", "ocsf"}, &out, &errb); code != exitOK {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	got := out.String()
	for _, w := range []string{
		`scope: +"all"  # ` + path + `:1`,
		`format: +"ocsf"  # flag --format`,
		`file.retain: +9  # env LINEAGED_FILE_RETAIN`,
		`output: +"-"  # default`,
		`kafka.sasl.username: +"u"  # ` + path + `:4`,
		`kafka.sasl.password: +"\*\*\*\*\*\*\*\*"  # ` + path + `:5`,
		`redact.patterns: +\[2 masked\]  # ` + path + `:7`,
		`lineage.exit_grace: +30s  # default`,
	} {
		if !regexpMatch(t, w, got) {
			t.Errorf("no line matching %q", w)
		}
	}
	if strings.Contains(got, "hunter2") || strings.Contains(got, "tok_") {
		t.Errorf("a secret is printed:\n%s", got)
	}
	// Every key is printed, once.
	if n, want := strings.Count(got, "\n"), len(configFields()); n != want {
		t.Errorf("%d lines, want one per key (%d)", n, want)
	}
	if t.Failed() {
		t.Logf("got:\n%s", got)
	}
	_ = os.Remove(path)
}

func regexpMatch(t *testing.T, re, s string) bool {
	t.Helper()
	ok, err := regexp.MatchString("(?m)^"+re+"$", s)
	if err != nil {
		t.Fatal(err)
	}
	return ok
}

// deploy/lineaged.yaml, the packaged file, sets every key, so an admin
// sees each one there with its default (the values are checked by
// TestShippedConfigStatesTheDefaults, the meanings by TestConfigDoc).
func TestShippedConfigHasEveryKey(t *testing.T) {
	fs := newFlags("run", io.Discard)
	if err := fs.Parse([]string{"--config", "../../deploy/lineaged.yaml"}); err != nil {
		t.Fatal(err)
	}
	_, src, err := loadConfigSources(fs, func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	for _, cf := range configFields() {
		if _, ok := src.lines[cf.Key]; !ok {
			t.Errorf("deploy/lineaged.yaml lacks %s", cf.Key)
		}
	}
}
