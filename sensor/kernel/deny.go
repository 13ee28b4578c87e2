package kernel

import (
	"fmt"
	"strings"
)

// DenyKeysMax bounds Config.DenyKeys: the policy stage allows 1024 deny_exec
// entries, each added as written and as resolved.
const DenyKeysMax = 2048

// denyPathMax is the longest key the kernel can match (bpf/lineaged.h
// DENY_PATH_MAX less the terminating zero).
const denyPathMax = 255

// validateDenyKeys checks what the kernel map can hold: the deny rules
// themselves are the policy stage's (lineage/policy), which builds the keys.
// Errors name the key.
func validateDenyKeys(keys map[string]uint32) error {
	if len(keys) > DenyKeysMax {
		return fmt.Errorf("deny keys: %d, at most %d", len(keys), DenyKeysMax)
	}
	for k := range keys {
		switch {
		case !strings.HasPrefix(k, "/") || k == "/":
			return fmt.Errorf("deny key %q: not an absolute path below /", k)
		case len(k) > denyPathMax:
			return fmt.Errorf("deny key %q: %d bytes, at most %d", k, len(k), denyPathMax)
		case strings.IndexByte(k, 0) >= 0:
			return fmt.Errorf("deny key %q: contains a NUL byte", k)
		}
	}
	return nil
}
