//go:build linux

package kernel

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/lineaged/lineaged/sensor"
)

func TestValidateDenyExec(t *testing.T) {
	good := []string{"/usr/bin/curl", "/opt/tools/", "/a b/\xffname", "/" + strings.Repeat("x", 254)}
	if err := ValidateDenyExec(good); err != nil {
		t.Fatalf("valid entries: %v", err)
	}
	for _, c := range []struct {
		entry, want string
	}{
		{"", "empty"},
		{"usr/bin/curl", "not an absolute path"},
		{"/", "every executable"},
		{"/usr//bin/curl", `not a clean path (want "/usr/bin/curl")`},
		{"/usr/bin/../bin/curl", "not a clean path"},
		{"/opt/tools/./", `not a clean path (want "/opt/tools/")`},
		{"/a\x00b", "NUL"},
		{"/" + strings.Repeat("x", 255), "256 bytes, at most 255"},
	} {
		err := ValidateDenyExec([]string{"/ok", c.entry})
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "entry 1") {
			t.Errorf("%q: %v, want an error naming entry 1 and %q", c.entry, err, c.want)
		}
	}
	if err := ValidateDenyExec([]string{"/x", "/x"}); err == nil || !strings.Contains(err.Error(), "twice") {
		t.Errorf("duplicate: %v", err)
	}
	many := make([]string, DenyExecMax+1)
	for i := range many {
		many[i] = "/bin/x" + strings.Repeat("y", i%200) + string(rune('a'+i%26))
	}
	if err := ValidateDenyExec(many); err == nil {
		t.Error("more than DenyExecMax entries accepted")
	}
	if _, err := (Config{DenyExec: []string{"relative"}}).withDefaults(); err == nil || !strings.Contains(err.Error(), `"relative"`) {
		t.Errorf("config with a bad entry: %v", err)
	}
}

func TestDenyKeysAddResolvedForms(t *testing.T) {
	links := map[string]string{"/bin/curl": "/usr/bin/curl", "/bin": "/usr/bin", "/opt/link": "/srv/real"}
	resolve := func(p string) (string, error) {
		if r, ok := links[p]; ok {
			return r, nil
		}
		if p == "/gone" {
			return "", os.ErrNotExist
		}
		return p, nil
	}
	got := denyKeys([]string{"/bin/curl", "/bin/", "/opt/link/", "/gone", "/usr/bin/curl"}, resolve)
	want := map[string]uint32{
		"/bin/curl": 0, "/usr/bin/curl": 0, // the first entry owns the resolved form
		"/bin/": 1, "/usr/bin/": 1,
		"/opt/link/": 2, "/srv/real/": 2,
		"/gone": 3,
	}
	if len(got) != len(want) {
		t.Errorf("keys %v, want %v", got, want)
	}
	for k, v := range want {
		if g, ok := got[k]; !ok || g != v {
			t.Errorf("key %q: %d %v, want %d", k, g, ok, v)
		}
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
