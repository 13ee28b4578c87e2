package kernel

import (
	"fmt"
	"strings"

	"github.com/lineaged/lineaged/sensor"
	"golang.org/x/sys/unix"
)

// DenyKeysMax bounds Config.DenyKeys: the policy stage allows 1024 deny_exec
// entries, each added as written and as resolved.
const DenyKeysMax = 2048

// DenyInodesMax bounds the identity rules (bpf/enforce.h deny_inodes):
// Config.DenyInodes and those DenyInode adds at run time, together.
const DenyInodesMax = 4096

// DenyInode is the identity of a file session members must not run,
// matched in the kernel whatever path the exec names: a hard link or a bind
// mount of a denied file is the same inode. Dev is st_dev as stat(2)
// returns it (the userspace dev_t encoding); the loader converts it to the
// kernel's s_dev.
type DenyInode struct {
	Dev   uint64
	Inode uint64
}

// kernelDev converts a stat(2) st_dev to the kernel-internal dev_t of
// struct super_block.s_dev (major<<20 | minor): the inverse of
// sensor/procfs KernelDev.
func kernelDev(dev uint64) uint64 {
	return uint64(unix.Major(dev))<<20 | uint64(unix.Minor(dev))&0xfffff
}

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
		case k == sensor.DenyKeyPseudo:
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

// validateDenyInodes checks the identity rules fit the kernel map.
func validateDenyInodes(inodes map[DenyInode]uint32) error {
	if len(inodes) > DenyInodesMax {
		return fmt.Errorf("deny inodes: %d, at most %d", len(inodes), DenyInodesMax)
	}
	for k := range inodes {
		if k.Inode == 0 {
			return fmt.Errorf("deny inode %+v: inode 0", k)
		}
	}
	return nil
}
