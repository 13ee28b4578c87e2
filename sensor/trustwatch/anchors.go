// Package trustwatch watches the files the host's trust rests on (package
// databases, signature keys, lineaged's own files, the dynamic loader's
// preload list, sudoers) with fanotify, for every process, and reports a
// write by anything but the package manager as a sensor.Tamper record
// (TamperTrustAnchor). docs/threat-model.md, Trust anchors.
package trustwatch

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// Anchor classes.
const (
	ClassPackageDB  = "package-db"
	ClassSignatures = "signatures"
	ClassTrustedKey = "trusted-key"
	ClassLineaged   = "lineaged"
	ClassLDPreload  = "ld-preload"
	ClassSudoers    = "sudoers"
)

// Anchor is one watched file or directory (a directory: the files directly
// in it).
type Anchor struct {
	Path  string
	Class string
	// Dir is set when Path is a directory.
	Dir bool
}

// DefaultAnchors are the host's anchors that do not depend on lineaged's
// configuration.
func DefaultAnchors() []Anchor {
	return []Anchor{
		{Path: "/var/lib/dpkg/info", Class: ClassPackageDB, Dir: true},
		{Path: "/var/lib/dpkg/status", Class: ClassPackageDB},
		{Path: "/var/lib/rpm", Class: ClassPackageDB, Dir: true},
		{Path: "/usr/lib/sysimage/rpm", Class: ClassPackageDB, Dir: true},
		{Path: "/etc/ld.so.preload", Class: ClassLDPreload},
		{Path: "/etc/sudoers", Class: ClassSudoers},
		{Path: "/etc/sudoers.d", Class: ClassSudoers, Dir: true},
	}
}

// PackageManagers are the executables whose processes (and their
// descendants: maintainer scripts) may write the anchors. They are
// recognised by the identity (device, inode) of the file at these paths,
// not by name.
var PackageManagers = []string{
	"/usr/bin/dpkg", "/usr/bin/apt", "/usr/bin/apt-get", "/usr/bin/aptitude",
	"/usr/lib/apt/methods/http", "/usr/bin/unattended-upgrade",
	"/usr/bin/rpm", "/usr/bin/dnf", "/usr/bin/dnf5", "/usr/bin/yum",
	"/usr/bin/zypper", "/usr/bin/microdnf",
}

// fileID is a file's identity.
type fileID struct{ dev, ino uint64 }

func idOf(path string) (fileID, bool) {
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		return fileID{}, false
	}
	return fileID{uint64(st.Dev), st.Ino}, true
}

// identities resolves paths to their files' identities (those that exist).
func identities(paths []string) map[fileID]string {
	out := map[fileID]string{}
	for _, p := range paths {
		if id, ok := idOf(p); ok {
			out[id] = p
		}
	}
	return out
}

// match finds the anchor a written file belongs to.
func match(anchors []Anchor, path string) (Anchor, bool) {
	for _, a := range anchors {
		if a.Dir {
			if filepath.Dir(path) == a.Path {
				return a, true
			}
			continue
		}
		if path == a.Path {
			return a, true
		}
	}
	return Anchor{}, false
}

// marks lists the directories to mark: each directory anchor, and the
// parent of each file anchor (the file may not exist yet, and an editor
// replaces it by a new file). Anchors whose directory does not exist are
// returned apart.
func marks(anchors []Anchor) (dirs []string, missing []string) {
	seen := map[string]bool{}
	for _, a := range anchors {
		d := a.Path
		if !a.Dir {
			d = filepath.Dir(a.Path)
		}
		if seen[d] {
			continue
		}
		seen[d] = true
		if st, err := os.Stat(d); err != nil || !st.IsDir() {
			missing = append(missing, d)
			continue
		}
		dirs = append(dirs, d)
	}
	return dirs, missing
}

// Clean checks an anchor list: absolute, clean paths and a class.
func Clean(anchors []Anchor) ([]Anchor, error) {
	out := make([]Anchor, 0, len(anchors))
	for _, a := range anchors {
		if !filepath.IsAbs(a.Path) {
			return nil, fmt.Errorf("trust anchor %q: not an absolute path", a.Path)
		}
		if a.Class == "" {
			return nil, fmt.Errorf("trust anchor %q: no class", a.Path)
		}
		a.Path = filepath.Clean(a.Path)
		out = append(out, a)
	}
	return out, nil
}
