//go:build linux

package kernel

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/lineaged/lineaged/sensor"
	"github.com/lineaged/lineaged/sensor/procfs"
	"golang.org/x/sys/unix"
)

func TestValidateDenyKeys(t *testing.T) {
	good := map[string]uint32{"/usr/bin/curl": 0, "/opt/tools/": 1, "/a b/\xffname": 2, "/" + strings.Repeat("x", 254): 3, sensor.DenyKeyPseudo: 4}
	if err := validateDenyKeys(good); err != nil {
		t.Fatalf("valid keys: %v", err)
	}
	for key, want := range map[string]string{
		"":                             "not an absolute path",
		"usr/bin/curl":                 "not an absolute path",
		"/":                            "not an absolute path",
		"/a\x00b":                      "NUL",
		"/" + strings.Repeat("x", 255): "256 bytes, at most 255",
	} {
		err := validateDenyKeys(map[string]uint32{"/ok": 0, key: 1})
		if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), fmt.Sprintf("%q", key)) {
			t.Errorf("%q: %v, want an error naming the key and %q", key, err, want)
		}
	}
	many := make(map[string]uint32, DenyKeysMax+1)
	for i := range DenyKeysMax + 1 {
		many[fmt.Sprintf("/bin/x%d", i)] = uint32(i)
	}
	if err := validateDenyKeys(many); err == nil {
		t.Error("more than DenyKeysMax keys accepted")
	}
	if _, err := (Config{DenyKeys: map[string]uint32{"relative": 0}}).withDefaults(); err == nil || !strings.Contains(err.Error(), `"relative"`) {
		t.Errorf("config with a bad key: %v", err)
	}
}

func denyRecord(t testing.TB, pid uint32, path string, action uint8, flags uint16) []byte {
	var r enforceLsmDenyEvent
	r.H.Kind = uint8(sensor.KindDeny)
	r.H.Agent = uint8(sensor.AgentClaudeCode)
	r.H.Flags = flags
	r.H.Ktime = 123
	r.H.Pid, r.H.Tid = pid, pid
	r.H.StartNs = 5*tickNs + 7
	r.H.SessionPid, r.H.SessionStart = 9, 2*tickNs
	r.Rule = 1
	r.Action = action
	r.PathLen = uint16(len(path))
	for i := range len(path) {
		r.Path[i] = int8(path[i])
	}
	var b bytes.Buffer
	if err := binary.Write(&b, binary.LittleEndian, &r); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func TestDecodeDeny(t *testing.T) {
	var ev sensor.Event
	if err := Decode(denyRecord(t, 42, "/opt/x y/\xff", uint8(sensor.DenyKilled), 0), &ev); err != nil {
		t.Fatal(err)
	}
	want := sensor.Deny{Path: "/opt/x y/\xff", RuleIndex: 1, Action: sensor.DenyKilled}
	if ev.Kind != sensor.KindDeny || ev.Deny == nil || *ev.Deny != want || ev.Proc != (sensor.ProcKey{PID: 42, StartNs: 5 * tickNs}) ||
		ev.Session != (sensor.SessionRef{Root: sensor.ProcKey{PID: 9, StartNs: 2 * tickNs}, Agent: sensor.AgentClaudeCode}) {
		t.Fatalf("decoded %+v %+v", ev.Header, ev.Deny)
	}
	if err := Decode(denyRecord(t, 1, "/p", uint8(sensor.DenyBlocked), denyPathTruncated), &ev); err != nil || !ev.Deny.PathTruncated || ev.Deny.Action.String() != "blocked" {
		t.Errorf("truncated: %v %+v", err, ev.Deny)
	}
	for name, b := range map[string][]byte{
		"short":      denyRecord(t, 1, "/p", 1, 0)[:sizeDeny-1],
		"bad action": denyRecord(t, 1, "/p", 9, 0),
	} {
		if err := Decode(b, &ev); !errors.Is(err, ErrRecord) {
			t.Errorf("%s: %v, want ErrRecord", name, err)
		}
	}
	b := denyRecord(t, 1, "/p", 1, 0)
	binary.LittleEndian.PutUint16(b[sizeDeny-denyPathMaxTest-2:], 300)
	if err := Decode(b, &ev); err == nil || !strings.Contains(err.Error(), "path length 300") {
		t.Errorf("oversized path length: %v", err)
	}
}

// denyPathMaxTest is bpf/lineaged.h DENY_PATH_MAX.
const denyPathMaxTest = 256

func FuzzDecodeDeny(f *testing.F) {
	f.Add(denyRecord(f, 42, "/usr/bin/curl", uint8(sensor.DenyBlocked), 0))
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) > 0 {
			b[0] = byte(sensor.KindDeny)
		}
		var ev sensor.Event
		if err := Decode(b, &ev); err != nil {
			if !errors.Is(err, ErrRecord) {
				t.Fatalf("error %v does not wrap ErrRecord", err)
			}
			return
		}
		if ev.Deny == nil || len(ev.Deny.Path) > denyPathMaxTest {
			t.Fatalf("decoded %+v", ev.Deny)
		}
	})
}

// TestKernelDev: the loader's conversion of stat(2)'s st_dev to the
// kernel's s_dev is the inverse of procfs.KernelDev, for small and large
// major and minor numbers.
func TestKernelDev(t *testing.T) {
	for _, c := range []struct{ major, minor uint32 }{{0, 0}, {8, 1}, {259, 3}, {0, 0x1234}, {0xfff, 0xfffff}} {
		user := unix.Mkdev(c.major, c.minor)
		want := uint64(c.major)<<20 | uint64(c.minor)
		if got := kernelDev(user); got != want {
			t.Errorf("kernelDev(%d:%d) = %#x, want %#x", c.major, c.minor, got, want)
		}
		if back := procfs.KernelDev(kernelDev(user)); back != user {
			t.Errorf("procfs.KernelDev(kernelDev(%#x)) = %#x", user, back)
		}
	}
}

func TestValidateDenyInodes(t *testing.T) {
	if err := validateDenyInodes(map[DenyInode]uint32{{Dev: 1, Inode: 2}: 0}); err != nil {
		t.Fatal(err)
	}
	if err := validateDenyInodes(map[DenyInode]uint32{{Dev: 1}: 0}); err == nil || !strings.Contains(err.Error(), "inode 0") {
		t.Errorf("inode 0: %v", err)
	}
}
