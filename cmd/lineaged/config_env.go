package main

import (
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/spf13/viper"
)

// envPrefix starts every environment variable the sensor reads.
const envPrefix = "LINEAGED_"

// envNotKeys are LINEAGED_* variables that are not configuration keys:
// the config file's path, the CPU and heap profiles (docs/performance.md),
// and, by prefix, the test harness's own variables, which reach the
// sensor's environment when tests start it.
var (
	envNotKeys        = []string{"LINEAGED_CONFIG", "LINEAGED_CPUPROFILE", "LINEAGED_MEMPROFILE", "LINEAGED_OCSF_SCHEMA", "LINEAGED_SENSOR_HELPER"}
	envNotKeyPrefixes = []string{"LINEAGED_TEST_", "LINEAGED_E2E_", "LINEAGED_BENCH_", "LINEAGED_EXE_", "LINEAGED_FILEIO_"}
)

// envName is the environment variable of a configuration key.
func envName(key string) string {
	return envPrefix + strings.ToUpper(strings.ReplaceAll(key, ".", "_"))
}

// envProblems names every LINEAGED_* variable in environ that is no
// configuration key (with the nearest one that is), as an unknown key in
// the file is: a mistyped variable never silently leaves the default in
// force.
func envProblems(environ []string) []string {
	known := make(map[string]bool, len(defaults))
	for k := range defaults {
		known[envName(k)] = true
	}
	var bad []string
	for _, kv := range environ {
		name, _, _ := strings.Cut(kv, "=")
		if !strings.HasPrefix(name, envPrefix) || known[name] || slices.Contains(envNotKeys, name) {
			continue
		}
		if slices.ContainsFunc(envNotKeyPrefixes, func(p string) bool { return strings.HasPrefix(name, p) }) {
			continue
		}
		msg := name + ": not a configuration key"
		if near := nearest(name, known); near != "" {
			msg += " (did you mean " + near + "?)"
		}
		bad = append(bad, msg)
	}
	slices.Sort(bad)
	return bad
}

// nearest is the known name closest to name by edit distance, if within 3.
func nearest(name string, known map[string]bool) string {
	best, bestD := "", 4
	for k := range known {
		if d := editDistance(name, k); d < bestD || d == bestD && k < best {
			best, bestD = k, d
		}
	}
	return best
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			c := prev[j-1]
			if a[i-1] != b[j-1] {
				c++
			}
			cur[j] = min(c, prev[j]+1, cur[j-1]+1)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// envRedactPatterns reads LINEAGED_REDACT_PATTERNS, which a comma must not
// split (a{1,3} is one pattern): a JSON array of strings when it starts
// with '[', otherwise one pattern per line. Empty lines are skipped.
func envRedactPatterns(v *viper.Viper) error {
	name := envName("redact.patterns")
	val, ok := os.LookupEnv(name)
	if !ok {
		return nil
	}
	var list []string
	if t := strings.TrimSpace(val); strings.HasPrefix(t, "[") {
		if err := json.Unmarshal([]byte(t), &list); err != nil {
			return fmt.Errorf("%s: not a JSON array of strings: %v", name, err)
		}
	} else {
		for _, l := range strings.Split(val, "\n") {
			if l = strings.TrimSuffix(l, "\r"); l != "" {
				list = append(list, l)
			}
		}
	}
	v.Set("redact.patterns", list)
	return nil
}
