//go:build linux

package kernel

import "testing"

func TestHelperPath(t *testing.T) {
	for _, c := range []struct {
		v    string
		core bool
		want string
	}{
		{"|/tmp/x/handler %p %s\n", true, "/tmp/x/handler"},
		{"|  /usr/lib/systemd/systemd-coredump %P %u\n", true, "/usr/lib/systemd/systemd-coredump"},
		{"core\n", true, ""},
		{"|\n", true, ""},
		{"/tmp/x/modprobe\n", false, "/tmp/x/modprobe"},
		{"\n", false, ""},
	} {
		if got := helperPath(c.v, c.core); got != c.want {
			t.Errorf("helperPath(%q, %v) = %q, want %q", c.v, c.core, got, c.want)
		}
	}
	var k processUmhKey
	if setKey(&k, string(make([]byte, 256))) || setKey(&k, "") || setKey(&k, "a\x00b") {
		t.Error("setKey took a path that cannot be a key")
	}
	if !setKey(&k, "/x") || k.Path[0] != '/' || k.Path[1] != 'x' || k.Path[2] != 0 {
		t.Errorf("setKey(/x) = %v", k.Path[:4])
	}
}

func TestProcMemOf(t *testing.T) {
	for path, want := range map[string]uint32{
		"/proc/42/mem":             42,
		"/proc/42/task/43/mem":     42,
		"/proc/42/maps":            0,
		"/proc/self/mem":           0,
		"/proc/42/task/x/mem":      0,
		"/proc/42/task/43/mem/x":   0,
		"/tmp/proc/42/mem":         0,
		"/proc/42/task/43/environ": 0,
		"/proc/4294967296/mem":     0,
	} {
		if got := procMemOf(path); got != want {
			t.Errorf("procMemOf(%q) = %d, want %d", path, got, want)
		}
	}
}
