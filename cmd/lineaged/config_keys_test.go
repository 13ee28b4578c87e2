package main

import (
	"strings"
	"testing"
)

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
		if err == nil || !strings.Contains(err.Error(), "invalid keys") {
			t.Errorf("%q: got %v, want an unknown-key error", yaml, err)
		}
	}
}
