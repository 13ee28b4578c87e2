package lineage

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParsePasswd(t *testing.T) {
	got := ParsePasswd([]byte("root:x:0:0:root:/root:/bin/bash\n# comment\n+nis\nbad line\nalice:x:1000:1000::/home/alice:/bin/sh\n" +
		"alias:x:1000:1000::/:/bin/sh\nnum:x:notanumber:0::/:/bin/sh\n:x:5:5::/:/bin/sh\n"))
	if len(got) != 2 || got[0] != "root" || got[1000] != "alice" {
		t.Errorf("ParsePasswd = %v", got)
	}
}

func TestPasswdReloadsOnChange(t *testing.T) {
	p := filepath.Join(t.TempDir(), "passwd")
	if err := os.WriteFile(p, []byte("alice:x:1000:1000::/:/bin/sh\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	now := time.Unix(100, 0)
	r := &Passwd{Path: p, Recheck: time.Second, Now: func() time.Time { return now }}
	if n, ok := r.UserName(1000); !ok || n != "alice" {
		t.Errorf("1000 = %q %v", n, ok)
	}
	if _, ok := r.UserName(1001); ok {
		t.Error("1001 is unknown")
	}
	if err := os.WriteFile(p, []byte("alice:x:1000:1000::/:/bin/sh\nbob:x:1001:1001::/:/bin/sh\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	later := time.Now().Add(time.Hour)
	if err := os.Chtimes(p, later, later); err != nil {
		t.Fatal(err)
	}
	now = now.Add(2 * time.Second)
	if n, ok := r.UserName(1001); !ok || n != "bob" {
		t.Errorf("after reload 1001 = %q %v", n, ok)
	}
	missing := &Passwd{Path: filepath.Join(t.TempDir(), "none")}
	if _, ok := missing.UserName(0); ok {
		t.Error("a missing passwd file resolves nothing")
	}
}

func TestLocalHostAndBoot(t *testing.T) {
	h, err := LocalHost{}.Host()
	if err != nil {
		t.Fatal(err)
	}
	boot, _ := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if h.BootID != strings.TrimSpace(string(boot)) || h.Hostname == "" || h.Kernel == "" {
		t.Errorf("host = %+v", h)
	}
	if _, err := (LocalHost{Root: t.TempDir()}).Host(); err == nil || !strings.Contains(err.Error(), "boot id") {
		t.Errorf("missing boot id: %v", err)
	}
	bt, err := LocalBoot{}.BootTime()
	if err != nil {
		t.Fatal(err)
	}
	// Cross-check with /proc/stat btime (whole seconds).
	stat, err := os.ReadFile("/proc/stat")
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.SplitSeq(string(stat), "\n") {
		if v, ok := strings.CutPrefix(line, "btime "); ok {
			var sec int64
			for _, c := range v {
				sec = sec*10 + int64(c-'0')
			}
			if d := bt.Sub(time.Unix(sec, 0)); d < -2*time.Second || d > 2*time.Second {
				t.Errorf("boot time %v vs btime %v", bt, time.Unix(sec, 0))
			}
		}
	}
	if got := osRelease([]byte("NAME=\"Debian GNU/Linux\"\nPRETTY_NAME=\"Debian GNU/Linux 13 (trixie)\"\n")); got != "Debian GNU/Linux 13 (trixie)" {
		t.Errorf("osRelease = %q", got)
	}
}
