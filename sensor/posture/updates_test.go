package posture

import "testing"

func TestAutoUpdatesApt(t *testing.T) {
	const d = "/etc/apt/apt.conf.d/"
	const bin = "/usr/bin/unattended-upgrade"
	auto := "APT::Periodic::Update-Package-Lists \"1\";\nAPT::Periodic::Unattended-Upgrade \"1\";\n"
	runCases(t, AutoUpdates{}, []checkCase{
		{"debian 20auto-upgrades", map[string]string{d + "20auto-upgrades": auto, bin: ""}, true, `Unattended-Upgrade "1" (/etc/apt/apt.conf.d/20auto-upgrades:2)`},
		{"not set", map[string]string{d + "70debconf": "DPkg::Pre-Install-Pkgs {\"/usr/sbin/dpkg-preconfigure --apt || true\";};\n", bin: ""}, false, "Unattended-Upgrade not set"},
		{"empty apt dir", map[string]string{d: ""}, false, "not set"},
		{"zero", map[string]string{d + "20auto-upgrades": "APT::Periodic::Unattended-Upgrade \"0\";\n", bin: ""}, false, `Unattended-Upgrade "0"`},
		{"garbage value", map[string]string{d + "20auto-upgrades": "APT::Periodic::Unattended-Upgrade \"sometimes\";\n", bin: ""}, false, `"sometimes"`},
		{"always", map[string]string{d + "20auto-upgrades": "APT::Periodic::Unattended-Upgrade \"always\";\n", bin: ""}, true, `"always"`},
		{"nested scopes, case-insensitive", map[string]string{d + "50unattended": "apt {\n  periodic {\n    // daily\n    unattended-upgrade \"7\";\n  };\n};\n", bin: ""}, true, `"7" (/etc/apt/apt.conf.d/50unattended:4)`},
		{"mixed scope and path", map[string]string{d + "50x": "APT::Periodic { Unattended-Upgrade \"1\"; };", bin: ""}, true, `"1"`},
		{"later file overrides", map[string]string{d + "20auto-upgrades": auto, d + "99off": "APT::Periodic::Unattended-Upgrade \"0\";\n", bin: ""}, false, `"0" (/etc/apt/apt.conf.d/99off:1)`},
		{"apt.conf read last", map[string]string{d + "20auto-upgrades": auto, "/etc/apt/apt.conf": "APT::Periodic::Unattended-Upgrade \"0\";\n", bin: ""}, false, "/etc/apt/apt.conf:1"},
		{"ignored file names", map[string]string{d + "20auto-upgrades.dpkg-old": auto, d + "x.disabled": auto, d + "bad~": auto, bin: ""}, false, "not set"},
		{".conf extension read", map[string]string{d + "20auto.conf": auto, bin: ""}, true, "20auto.conf:2"},
		{"periodic disabled", map[string]string{d + "20auto-upgrades": auto, d + "10periodic": "APT::Periodic::Enable \"0\";\n", bin: ""}, false, `APT::Periodic::Enable "0"`},
		{"not installed", map[string]string{d + "20auto-upgrades": auto}, false, "unattended-upgrades is not installed"},
		{"comments", map[string]string{d + "20auto-upgrades": "# hash\n/* block\n APT::Periodic::Unattended-Upgrade \"0\";\n*/\nAPT::Periodic::Unattended-Upgrade \"1\"; // after\n", bin: ""}, true, "20auto-upgrades:5"},
		{"clear", map[string]string{d + "20auto-upgrades": auto, d + "30clear": "#clear APT::Periodic;\n", bin: ""}, false, "not set"},
		{"include unsupported", map[string]string{d + "20auto-upgrades": "#include /etc/other.conf;\n" + auto, bin: ""}, false, "#include is not supported"},
		{"unterminated string", map[string]string{d + "20auto-upgrades": "APT::Periodic::Unattended-Upgrade \"1;\n", bin: ""}, false, "20auto-upgrades:1: unterminated string"},
		{"unterminated scope", map[string]string{d + "20auto-upgrades": "APT::Periodic {\n Unattended-Upgrade \"1\";\n", bin: ""}, false, "unterminated statement or scope"},
		{"unbalanced brace", map[string]string{d + "20auto-upgrades": "};\n", bin: ""}, false, "unexpected '}'"},
		{"unterminated comment", map[string]string{d + "20auto-upgrades": "/* open\n", bin: ""}, false, "unterminated comment"},
		{"too many words", map[string]string{d + "20auto-upgrades": "A B C;\n", bin: ""}, false, "too many words"},
	})
}

func TestAutoUpdatesDnf(t *testing.T) {
	const unit = "/usr/lib/systemd/system/"
	const wants = "/etc/systemd/system/timers.target.wants/"
	runCases(t, AutoUpdates{}, []checkCase{
		{"install timer enabled", map[string]string{unit + "dnf-automatic-install.timer": "[Timer]\n", wants + "dnf-automatic-install.timer": "->" + unit + "dnf-automatic-install.timer"}, true, "dnf-automatic-install.timer enabled"},
		{"timer enabled, applies", map[string]string{
			"/lib/systemd/system/dnf-automatic.timer": "[Timer]\n", wants + "dnf-automatic.timer": "[Timer]\n",
			"/etc/dnf/automatic.conf": "[commands]\nupgrade_type = security\napply_updates = yes\n",
		}, true, "apply_updates = yes (/etc/dnf/automatic.conf:3)"},
		{"timer enabled, download only", map[string]string{
			unit + "dnf-automatic.timer": "[Timer]\n", wants + "dnf-automatic.timer": "[Timer]\n",
			"/etc/dnf/automatic.conf": "[emitters]\napply_updates = yes\n[commands]\napply_updates = no\n",
		}, false, "updates are only downloaded"},
		{"timer enabled, no config", map[string]string{unit + "dnf5-automatic.timer": "", wants + "dnf5-automatic.timer": ""}, false, "no automatic.conf: default"},
		{"dnf5 config", map[string]string{
			unit + "dnf5-automatic.timer": "", wants + "dnf5-automatic.timer": "",
			"/etc/dnf/dnf5-plugins/automatic.conf": "[commands]\napply_updates=True\n",
		}, true, "dnf5-plugins/automatic.conf:2"},
		{"installed not enabled", map[string]string{unit + "dnf-automatic.timer": ""}, false, "dnf-automatic.timer installed but not enabled"},
		{"nothing", map[string]string{"/etc/": ""}, false, "no automatic updates found"},
	})
}
