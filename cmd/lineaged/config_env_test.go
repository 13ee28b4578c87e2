package main

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// A mistyped LINEAGED_* variable is an error naming it, as an unknown key
// in the file is; the variables that are not keys are accepted.
func TestConfigUnknownEnvIsAnError(t *testing.T) {
	path := writeFile(t, "{}\n")
	t.Run("mistyped", func(t *testing.T) {
		_, err := parse(t, []string{"--config", path}, map[string]string{"LINEAGED_KAFKA_TOPICC": "t", "LINEAGED_LOGLEVEL": "debug"})
		if err == nil {
			t.Fatal("mistyped variables accepted")
		}
		for _, want := range []string{"LINEAGED_KAFKA_TOPICC: not a configuration key (did you mean LINEAGED_KAFKA_TOPIC?)", "LINEAGED_LOGLEVEL", "LINEAGED_LOG_LEVEL"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not say %q", err, want)
			}
		}
	})
	cfg, err := parse(t, nil, map[string]string{"LINEAGED_CONFIG": path, "LINEAGED_CPUPROFILE": "", "LINEAGED_MEMPROFILE": "", "LINEAGED_LOG_LEVEL": "debug", "LINEAGED_E2E_CACHE": "/x"})
	if err != nil {
		t.Fatalf("known variables refused: %v", err)
	}
	if cfg.Log.Level != "debug" {
		t.Errorf("LINEAGED_LOG_LEVEL not applied: %q", cfg.Log.Level)
	}
}

// redact.patterns from the environment is one pattern per line, or a JSON
// array: a comma inside a pattern does not split it.
func TestConfigRedactPatternsFromEnv(t *testing.T) {
	path := writeFile(t, "{}\n")
	for _, c := range []struct {
		env  string
		want []string
	}{
		{`corp-[0-9]{6,8}`, []string{`corp-[0-9]{6,8}`}},
		{"pin=(?P<secret>\\d{4,6})\nacct,(?P<secret>\\w+)\n", []string{`pin=(?P<secret>\d{4,6})`, `acct,(?P<secret>\w+)`}},
		{`["a{1,3}", "b,c"]`, []string{`a{1,3}`, `b,c`}},
	} {
		cfg, err := parse(t, []string{"--config", path}, map[string]string{"LINEAGED_REDACT_PATTERNS": c.env})
		if err != nil {
			t.Fatalf("%q: %v", c.env, err)
		}
		if !slices.Equal(cfg.Redact.Patterns, c.want) {
			t.Errorf("%q: patterns %q, want %q", c.env, cfg.Redact.Patterns, c.want)
		}
	}
	_, err := parse(t, []string{"--config", path}, map[string]string{"LINEAGED_REDACT_PATTERNS": `["unclosed`})
	if err == nil || !strings.Contains(err.Error(), "LINEAGED_REDACT_PATTERNS") {
		t.Errorf("bad JSON list: %v", err)
	}
}

// kafka.batch_timeout has one default, stated the same wherever it is
// documented: the built-in default, deploy/lineaged.yaml, the README and
// the kafka sink's own doc comment.
func TestBatchTimeoutDocumentedOnce(t *testing.T) {
	d, ok := defaults["kafka.batch_timeout"].(time.Duration)
	if !ok || d != 100*time.Microsecond {
		t.Fatalf("built-in default %v", defaults["kafka.batch_timeout"])
	}
	for file, re := range map[string]*regexp.Regexp{
		"../../deploy/lineaged.yaml": regexp.MustCompile(`batch_timeout:\s*(\S+)`),
		"../../README.md":            regexp.MustCompile("`batch_timeout` (\\S+) by default"),
		"../../sink/kafka/config.go": regexp.MustCompile(`BatchTimeout.*\n.*0 means (\S+ ?µs)`),
	} {
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		ms := re.FindAllSubmatch(b, -1)
		if len(ms) == 0 {
			t.Errorf("%s does not state the batch_timeout default", file)
		}
		for _, m := range ms {
			v, err := time.ParseDuration(strings.ReplaceAll(strings.TrimSuffix(string(m[1]), "."), " ", ""))
			if err != nil || v != d {
				t.Errorf("%s states batch_timeout %q, the default is %v", file, m[1], d)
			}
		}
	}
}
