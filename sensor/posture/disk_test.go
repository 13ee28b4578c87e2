package posture

import "testing"

// mountinfo lines as the kernel writes them.
const (
	miProc = "21 26 0:20 / /proc rw,relatime - proc proc rw\n"
	miVda  = "26 1 254:0 / / rw,relatime - ext4 /dev/vda rw,discard\n"
	miDM1  = "26 1 253:1 / / rw,relatime shared:1 - ext4 /dev/mapper/vg-root rw\n"
)

func TestDiskEncryption(t *testing.T) {
	const mi = "/proc/self/mountinfo"
	luks := "CRYPT-LUKS2-0123456789abcdef0123456789abcdef-luks-root\n"
	runCases(t, DiskEncryption{}, []checkCase{
		{"plain disk", map[string]string{
			mi:                             miProc + miVda,
			"/sys/dev/block/254:0/uevent":  "MAJOR=254\nMINOR=0\nDEVNAME=vda\n",
			"/sys/dev/block/254:0/queue/":  "",
			"/sys/dev/block/254:0/slaves/": "",
		}, false, "/ is ext4 on /dev/vda: vda is not dm-crypt"},
		{"luks directly", map[string]string{
			mi:                             "26 1 253:0 / / rw - xfs /dev/mapper/luks-root rw\n",
			"/sys/dev/block/253:0/uevent":  "DEVNAME=dm-0\n",
			"/sys/dev/block/253:0/dm/uuid": luks,
		}, true, "dm-0 is dm-crypt (LUKS2)"},
		{"lvm on luks", map[string]string{
			mi:                             miDM1,
			"/sys/dev/block/253:1/uevent":  "DEVNAME=dm-1\n",
			"/sys/dev/block/253:1/dm/uuid": "LVM-abcdef\n",
			"/sys/dev/block/253:1/slaves/dm-0/uevent":  "DEVNAME=dm-0\n",
			"/sys/dev/block/253:1/slaves/dm-0/dm/uuid": "CRYPT-LUKS1-aaaa-cryptpv\n",
			"/sys/dev/block/253:1/slaves/dm-0/slaves/": "",
		}, true, "dm-1 -> dm-0 is dm-crypt (LUKS1)"},
		{"lvm spanning crypt and plain", map[string]string{
			mi:                             miDM1,
			"/sys/dev/block/253:1/dm/uuid": "LVM-abcdef\n",
			"/sys/dev/block/253:1/slaves/dm-0/dm/uuid": luks,
			"/sys/dev/block/253:1/slaves/sdb1/uevent":  "DEVNAME=sdb1\n",
		}, false, "sdb1 is not dm-crypt"},
		{"lvm on plain partition", map[string]string{
			mi:                             miDM1,
			"/sys/dev/block/253:1/dm/uuid": "LVM-abcdef\n",
			"/sys/dev/block/253:1/slaves/sda2/uevent": "DEVNAME=sda2\n",
		}, false, "-> sda2 is not dm-crypt"},
		{"verity is not encryption", map[string]string{
			mi:                             "26 1 253:2 / / ro - erofs /dev/mapper/root ro\n",
			"/sys/dev/block/253:2/uevent":  "DEVNAME=dm-2\n",
			"/sys/dev/block/253:2/dm/uuid": "CRYPT-VERITY-1234-root\n",
			"/sys/dev/block/253:2/slaves/sda3/uevent": "DEVNAME=sda3\n",
		}, false, "dm-2 -> sda3 is not dm-crypt"},
		{"integrity under crypt", map[string]string{
			mi:                             "26 1 253:3 / / rw - ext4 /dev/mapper/root rw\n",
			"/sys/dev/block/253:3/uevent":  "DEVNAME=dm-3\n",
			"/sys/dev/block/253:3/dm/uuid": "CRYPT-INTEGRITY-root\n",
			"/sys/dev/block/253:3/slaves/dm-4/dm/uuid": "CRYPT-PLAIN-root\n",
			"/sys/dev/block/253:3/slaves/dm-4/uevent":  "DEVNAME=dm-4\n",
		}, true, "dm-3 -> dm-4 is dm-crypt (PLAIN)"},
		{"btrfs anonymous device via mapper symlink", map[string]string{
			mi:                              "26 1 0:31 /@ / rw - btrfs /dev/mapper/root rw\n",
			"/dev/dm-0":                     "",
			"/dev/mapper/root":              "->../dm-0",
			"/sys/class/block/dm-0/dm/uuid": luks,
			"/sys/class/block/dm-0/uevent":  "DEVNAME=dm-0\n",
		}, true, "/ is btrfs on /dev/mapper/root: dm-0 is dm-crypt (LUKS2)"},
		{"btrfs source missing", map[string]string{
			mi: "26 1 0:31 /@ / rw - btrfs /dev/mapper/gone rw\n",
		}, false, "/ is btrfs on /dev/mapper/gone"},
		{"overlay root", map[string]string{
			mi: "26 1 0:44 / / rw - overlay overlay rw,lowerdir=/a\n",
		}, false, `/ is overlay from "overlay": no block device`},
		{"stacked root mounts, last wins", map[string]string{
			mi:                             miVda + "40 26 253:0 / / rw - ext4 /dev/mapper/luks rw\n",
			"/sys/dev/block/253:0/dm/uuid": luks,
			"/sys/dev/block/253:0/uevent":  "DEVNAME=dm-0\n",
		}, true, "dm-0 is dm-crypt"},
		{"escaped mount point is not /", map[string]string{
			mi: "26 1 254:0 / /\\040x rw - ext4 /dev/vda rw\n",
		}, false, "no mount at /"},
		{"no root mount", map[string]string{mi: miProc}, false, "mountinfo: no mount at /"},
		{"malformed line", map[string]string{mi: miProc + "garbage line\n"}, false, "mountinfo line 2: malformed"},
		{"malformed device", map[string]string{mi: "26 1 x:y / / rw - ext4 /dev/vda rw\n"}, false, `malformed device "x:y"`},
		{"sysfs node missing", map[string]string{mi: miVda}, false, "254:0 is not dm-crypt"},
		{"no mountinfo", map[string]string{"/proc/": ""}, false, "no such file"},
	})
}

func TestDiskEncryptionStackLoop(t *testing.T) {
	// A corrupt tree whose slaves/ points back at itself must end with an
	// error, not recurse forever.
	r := tree(t, map[string]string{
		"/proc/self/mountinfo":             miDM1,
		"/sys/dev/block/253:1/dm/uuid":     "LVM-x\n",
		"/sys/dev/block/253:1/slaves/loop": "->..",
	})
	got := DiskEncryption{}.Run(t.Context(), r)
	assertCheck(t, got, false, "deeper than 16")
}

func TestUnescapeOctal(t *testing.T) {
	for in, want := range map[string]string{
		`/a\040b`:   "/a b",
		`/tab\011x`: "/tab\tx",
		`/back\134`: `/back\`,
		`/short\04`: `/short\04`,
		`/bad\999`:  `/bad\999`,
		`/plain`:    "/plain",
	} {
		if got := unescapeOctal(in); got != want {
			t.Errorf("unescapeOctal(%q) = %q, want %q", in, got, want)
		}
	}
}
