package posture

import (
	"strings"
	"testing"
)

func TestSSHPasswordAuth(t *testing.T) {
	const bin = "/usr/sbin/sshd"
	const cfg = "/etc/ssh/sshd_config"
	debian := "Include /etc/ssh/sshd_config.d/*.conf\n#PasswordAuthentication yes\nKbdInteractiveAuthentication no\nUsePAM yes\n"
	runCases(t, SSHPasswordAuth{}, []checkCase{
		{"not installed", map[string]string{"/etc/ssh/ssh_config": "Host *\n"}, true, "sshd not installed"},
		{"leftover config, no binary", map[string]string{cfg: "PasswordAuthentication yes\n"}, true, "sshd not installed"},
		{"no config: default yes", map[string]string{bin: ""}, false, "PasswordAuthentication defaults to yes"},
		{"debian default", map[string]string{bin: "", cfg: debian, "/etc/ssh/sshd_config.d/": ""}, false, "PasswordAuthentication yes (default)"},
		{"disabled", map[string]string{bin: "", cfg: "PasswordAuthentication no\nKbdInteractiveAuthentication no\n"}, true, "PasswordAuthentication no (/etc/ssh/sshd_config:1)"},
		{"other binary path", map[string]string{"/usr/bin/sshd": "", cfg: "passwordauthentication NO\n"}, true, "PasswordAuthentication no"},
		{"equals syntax", map[string]string{bin: "", cfg: "  PasswordAuthentication=no\nKbdInteractiveAuthentication = no # trailing comment\n"}, true, "sshd_config:1"},
		{"first value wins", map[string]string{bin: "", cfg: "PasswordAuthentication no\nPasswordAuthentication yes\n"}, true, "sshd_config:1"},
		{"drop-in before main value wins", map[string]string{
			bin: "", cfg: debian + "PasswordAuthentication no\n",
			"/etc/ssh/sshd_config.d/50-cloud-init.conf": "PasswordAuthentication yes\n",
		}, false, "PasswordAuthentication yes (/etc/ssh/sshd_config.d/50-cloud-init.conf:1)"},
		{"drop-ins in lexical order", map[string]string{
			bin: "", cfg: debian,
			"/etc/ssh/sshd_config.d/10-harden.conf":     "PasswordAuthentication no\n",
			"/etc/ssh/sshd_config.d/50-cloud-init.conf": "PasswordAuthentication yes\n",
		}, true, "10-harden.conf:1"},
		{"non-.conf drop-in ignored", map[string]string{
			bin: "", cfg: debian + "PasswordAuthentication no\n",
			"/etc/ssh/sshd_config.d/00-old.conf.bak": "PasswordAuthentication yes\n",
		}, true, "sshd_config:5"},
		{"relative include", map[string]string{
			bin: "", cfg: "Include extra/*.conf\n",
			"/etc/ssh/extra/a.conf": "PasswordAuthentication no\n",
		}, true, "/etc/ssh/extra/a.conf:1"},
		{"match block enables", map[string]string{
			bin: "", cfg: "PasswordAuthentication no\nMatch Address 10.0.0.0/8\n  PasswordAuthentication yes\n",
		}, false, "PasswordAuthentication yes in Match block (/etc/ssh/sshd_config:3)"},
		{"match block disables only some", map[string]string{
			bin: "", cfg: "Match User bob\n  PasswordAuthentication no\n",
		}, false, "PasswordAuthentication yes (default)"},
		{"match all overrides global", map[string]string{
			bin: "", cfg: "PasswordAuthentication yes\nMatch all\nPasswordAuthentication no\n",
		}, true, "sshd_config:3"},
		{"match in included file ends with the file", map[string]string{
			bin: "", cfg: "Include /etc/ssh/sshd_config.d/*.conf\nPasswordAuthentication no\n",
			"/etc/ssh/sshd_config.d/users.conf": "Match User alice\n  X11Forwarding yes\n",
		}, true, "sshd_config:2"},
		{"challenge-response alias with PAM", map[string]string{
			bin: "", cfg: "PasswordAuthentication no\nChallengeResponseAuthentication yes\nUsePAM yes\n",
		}, false, "KbdInteractiveAuthentication with UsePAM yes"},
		{"kbd-interactive default with PAM", map[string]string{
			bin: "", cfg: "PasswordAuthentication no\nUsePAM yes\n",
		}, false, "accepts passwords"},
		{"kbd-interactive without PAM", map[string]string{
			bin: "", cfg: "PasswordAuthentication no\n",
		}, true, "PasswordAuthentication no"},
		{"invalid value", map[string]string{bin: "", cfg: "PasswordAuthentication maybe\n"}, false, `invalid passwordauthentication value "maybe"`},
		{"missing argument", map[string]string{bin: "", cfg: "PasswordAuthentication\n"}, false, `no argument after keyword "PasswordAuthentication"`},
		{"unterminated quote", map[string]string{bin: "", cfg: "Banner \"/etc/x\n"}, false, "sshd_config:1: unterminated quote"},
		{"quoted value", map[string]string{bin: "", cfg: "PasswordAuthentication \"no\"\n"}, true, "PasswordAuthentication no"},
		{"include loop", map[string]string{bin: "", cfg: "Include /etc/ssh/sshd_config\n"}, false, "Include nested deeper than 16"},
		{"unreadable include", map[string]string{bin: "", cfg: "Include /etc/ssh/d/*\n", "/etc/ssh/d/sub/": ""}, false, "is a directory"},
	})
}

func TestSSHSplit(t *testing.T) {
	for in, want := range map[string]string{
		"":                        "",
		"   # comment":            "",
		"Port 22":                 "Port|22",
		"Port=22":                 "Port|22",
		"Port = 22":               "Port|22",
		"\tAllowUsers a b  c\r":   "AllowUsers|a|b|c",
		`Banner "/etc/my banner"`: "Banner|/etc/my banner",
		"UsePAM yes #no":          "UsePAM|yes",
		"Keyword":                 "Keyword",
	} {
		got, err := sshSplit(in)
		if err != nil {
			t.Errorf("sshSplit(%q): %v", in, err)
			continue
		}
		if strings.Join(got, "|") != want {
			t.Errorf("sshSplit(%q) = %q, want %q", in, got, want)
		}
	}
}
