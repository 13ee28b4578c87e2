package posture

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
)

// DiskEncryption requires the root filesystem to sit on dm-crypt. The device
// of "/" comes from /proc/self/mountinfo; its sysfs node is checked for a
// device-mapper uuid starting with "CRYPT-" and, when it is another mapping
// (LVM on LUKS, RAID over crypt), every device under slaves/ must be
// encrypted in turn.
type DiskEncryption struct{}

// Name implements Check.
func (DiskEncryption) Name() string { return CheckDiskEncryption }

// maxStackDepth bounds the slaves/ walk; real stacks are 2-4 deep and sysfs
// cannot loop, but a fake or corrupt tree could.
const maxStackDepth = 16

// mount is one line of mountinfo.
type mount struct {
	major, minor uint64
	point        string
	fstype       string
	source       string
}

// Run implements Check.
func (DiskEncryption) Run(_ context.Context, root Root) Result {
	b, err := root.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return failErr(err)
	}
	m, err := rootMount(b)
	if err != nil {
		return failErr(err)
	}
	var dev string // sysfs directory of the block device
	if m.major != 0 {
		dev = fmt.Sprintf("/sys/dev/block/%d:%d", m.major, m.minor)
	} else {
		// Filesystems such as btrfs report an anonymous device number; the
		// mount source (/dev/mapper/x, a symlink to ../dm-N) names the
		// block device instead.
		if !strings.HasPrefix(m.source, "/dev/") {
			return fail("/ is %s from %q: no block device", m.fstype, m.source)
		}
		resolved, err := filepath.EvalSymlinks(root.Path(m.source))
		if err != nil {
			return fail("/ is %s on %s: %v", m.fstype, m.source, err)
		}
		dev = "/sys/class/block/" + filepath.Base(resolved)
	}
	enc, why, err := encrypted(root, dev, 0)
	if err != nil {
		return fail("/ is %s on %s: %v", m.fstype, m.source, err)
	}
	if enc {
		return ok("/ is %s on %s: %s", m.fstype, m.source, why)
	}
	return fail("/ is %s on %s: %s", m.fstype, m.source, why)
}

// rootMount returns the mount visible at "/": the last mountinfo line for it,
// since later mounts stack over earlier ones.
func rootMount(b []byte) (mount, error) {
	var found *mount
	for i, line := range strings.Split(string(b), "\n") {
		if strings.TrimSpace(line) == "" {
			continue
		}
		m, err := parseMountinfo(line)
		if err != nil {
			return mount{}, fmt.Errorf("mountinfo line %d: %w", i+1, err)
		}
		if m.point == "/" {
			found = &m
		}
	}
	if found == nil {
		return mount{}, errors.New("mountinfo: no mount at /")
	}
	return *found, nil
}

// parseMountinfo parses one line of proc(5) mountinfo:
// id parent maj:min root mountpoint options [optional...] - fstype source superopts
func parseMountinfo(line string) (mount, error) {
	f := strings.Fields(line)
	sep := -1
	for i := 6; i < len(f); i++ {
		if f[i] == "-" {
			sep = i
			break
		}
	}
	if len(f) < 6 || sep < 0 || sep+2 >= len(f) {
		return mount{}, fmt.Errorf("malformed: %q", truncate(line, 80))
	}
	maj, min, found := strings.Cut(f[2], ":")
	if !found {
		return mount{}, fmt.Errorf("malformed device %q", f[2])
	}
	ma, err1 := strconv.ParseUint(maj, 10, 32)
	mi, err2 := strconv.ParseUint(min, 10, 32)
	if err1 != nil || err2 != nil {
		return mount{}, fmt.Errorf("malformed device %q", f[2])
	}
	return mount{
		major: ma, minor: mi,
		point:  unescapeOctal(f[4]),
		fstype: f[sep+1],
		source: unescapeOctal(f[sep+2]),
	}, nil
}

// unescapeOctal undoes the kernel's \ooo escaping of space, tab, newline and
// backslash in mountinfo paths.
func unescapeOctal(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var sb strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				sb.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		sb.WriteByte(s[i])
	}
	return sb.String()
}

// devName names a sysfs block device node for details: DEVNAME from uevent
// (what /dev calls it), else the directory name sysfs resolves to.
func devName(root Root, dev string) string {
	if b, err := root.ReadFile(dev + "/uevent"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if v, found := strings.CutPrefix(l, "DEVNAME="); found && v != "" {
				return v
			}
		}
	}
	if p, err := filepath.EvalSymlinks(root.Path(dev)); err == nil {
		return filepath.Base(p)
	}
	return path.Base(dev)
}

// encrypted reports whether the block device at sysfs directory dev is
// dm-crypt, or a mapping all of whose underlying devices are.
func encrypted(root Root, dev string, depth int) (bool, string, error) {
	if depth > maxStackDepth {
		return false, "", fmt.Errorf("device stack deeper than %d at %s", maxStackDepth, dev)
	}
	name := devName(root, dev)
	ub, err := root.ReadFile(dev + "/dm/uuid")
	switch {
	case err == nil:
		uuid := strings.TrimSpace(string(ub))
		kind, isCrypt := cryptKind(uuid)
		if isCrypt {
			return true, fmt.Sprintf("%s is dm-crypt (%s)", name, kind), nil
		}
		// dm-verity and dm-integrity are set up by cryptsetup too (CRYPT-
		// prefix) but protect integrity, not confidentiality: look below.
	case errors.Is(err, os.ErrNotExist):
	default:
		return false, "", err
	}
	ents, err := root.ReadDir(dev + "/slaves")
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return false, "", err
	}
	if len(ents) == 0 {
		return false, fmt.Sprintf("%s is not dm-crypt", name), nil
	}
	var whys []string
	for _, e := range ents {
		enc, why, err := encrypted(root, dev+"/slaves/"+e.Name(), depth+1)
		if err != nil {
			return false, "", err
		}
		if !enc {
			return false, fmt.Sprintf("%s -> %s", name, why), nil
		}
		whys = append(whys, why)
	}
	return true, fmt.Sprintf("%s -> %s", name, strings.Join(whys, ", ")), nil
}

// cryptKind reads a device-mapper uuid set by cryptsetup
// ("CRYPT-LUKS2-<hex>-<name>", "CRYPT-PLAIN-<name>", "CRYPT-BITLK-...").
func cryptKind(uuid string) (string, bool) {
	rest, found := strings.CutPrefix(uuid, "CRYPT-")
	if !found {
		return "", false
	}
	kind, _, _ := strings.Cut(rest, "-")
	switch kind {
	case "VERITY", "INTEGRITY", "":
		return kind, false
	}
	return kind, true
}
