package posture

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The parsers read files an attacker with write access to /etc (or a
// corrupt disk) controls: they must return an error, never panic or loop.

func FuzzMountinfo(f *testing.F) {
	f.Add(miProc + miVda)
	f.Add(miDM1)
	f.Add("26 1 0:31 /@ / rw - btrfs /dev/mapper/r\\040x rw\n")
	f.Add("1 2 3:4 / / - -\n")
	f.Fuzz(func(t *testing.T, s string) {
		m, err := rootMount([]byte(s))
		if err == nil && m.point != "/" {
			t.Fatalf("root mount at %q", m.point)
		}
	})
}

func FuzzSSHConfig(f *testing.F) {
	f.Add("Include /etc/ssh/sshd_config.d/*.conf\nPasswordAuthentication no\n")
	f.Add("Match User x\n PasswordAuthentication=yes\nMatch all\nUsePAM \"yes\" # c\n")
	f.Add("Banner \"unterminated\n")
	f.Fuzz(func(t *testing.T, s string) {
		dir := t.TempDir()
		p := filepath.Join(dir, "etc/ssh/sshd_config")
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Join(dir, "usr/sbin"), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "usr/sbin/sshd"), nil, 0o600); err != nil {
			t.Fatal(err)
		}
		r := SSHPasswordAuth{}.Run(t.Context(), Root(dir))
		if r.Detail == "" {
			t.Fatal("empty detail")
		}
	})
}

func FuzzAptConf(f *testing.F) {
	f.Add("APT::Periodic::Unattended-Upgrade \"1\";\n")
	f.Add("APT { Periodic { Enable \"0\"; }; };\n#clear APT;\n")
	f.Add("/* x */ A::B c; // y\n# z\n{ } ; \"")
	f.Fuzz(func(t *testing.T, s string) {
		conf := map[string]aptValue{}
		_ = parseAptConf("f", s, conf)
	})
}

func FuzzNetlink(f *testing.F) {
	f.Add([]byte{20, 0, 0, 0, 3, 0, 2, 0, 1, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0})
	f.Add([]byte{8, 0, 1, 0, 'a', 0, 0, 0, 5, 0, 4, 0, 1})
	f.Fuzz(func(t *testing.T, b []byte) {
		if msgs, err := parseNetlink(b); err == nil {
			for _, m := range msgs {
				if int(m.Header.Len) != len(m.Data)+16 {
					t.Fatalf("len %d, data %d", m.Header.Len, len(m.Data))
				}
			}
		}
		_ = forAttrs(b, func(typ uint16, v []byte) error {
			return forAttrs(v, func(uint16, []byte) error { return nil })
		})
	})
}

func FuzzAptHistory(f *testing.F) {
	f.Add("Start-Date: 2026-11-20  10:00:01\nCommandline: apt-get upgrade\nUpgrade: a:amd64 (1, 2)\nEnd-Date: 2026-11-20  10:00:05\n\n")
	f.Add("Upgrade: x\nError: y\nEnd-Date: \n")
	f.Add("End-Date: 2026-13-40  99:00:00\nUpgrade: z\n")
	f.Fuzz(func(t *testing.T, s string) {
		_, _ = aptLastUpgrade([]byte(s))
	})
}

func FuzzDnfRPMLog(f *testing.F) {
	f.Add("2026-11-20T10:00:05+0000 SUBDEBUG Upgrade: foo-1.1-1.x86_64\n")
	f.Add("2026-11-20T10:00:05Z SUBDEBUG Upgraded: foo\n")
	f.Add("x y Upgrade:\n")
	f.Fuzz(func(t *testing.T, s string) {
		_, _ = dnfLastUpgrade([]byte(s))
	})
}

func FuzzAppArmorProfiles(f *testing.F) {
	f.Add("/usr/bin/man (enforce)\nlsb_release (complain)\n")
	f.Add("/snap/x (1) y (kill)\n")
	f.Add("(\n)\n (\n")
	f.Fuzz(func(t *testing.T, s string) {
		modes, err := profileModes([]byte(s))
		if err == nil {
			for m, n := range modes {
				if n <= 0 || strings.ContainsRune(m, '\n') {
					t.Fatalf("mode %q counted %d", m, n)
				}
			}
		}
	})
}
