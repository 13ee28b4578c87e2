package lineage

import (
	"testing"

	"github.com/lineaged/lineaged/lineage/event"
	"github.com/lineaged/lineaged/sensor"
)

// file.path_source, raw_path and the name flags follow the kernel's record
// (docs/schema.md#file).
func TestFileSourceMapping(t *testing.T) {
	for _, c := range []struct {
		name string
		in   sensor.File
		want event.File
	}{
		{"open resolved from the file", sensor.File{Op: sensor.FileOpen, Path: "/etc/passwd", Dev: 2049, Ino: 77, MountID: 29, ByHandle: true},
			event.File{Path: "/etc/passwd", Mode: event.ModeRead, PathSource: event.PathSourceKernel, Dev: 2049, Inode: 77, MountID: 29, ByHandle: true}},
		{"unlink of a name", sensor.File{Op: sensor.FileUnlink, Path: "/tmp/x", PathUnresolved: true},
			event.File{Path: "/tmp/x", PathSource: event.PathSourceName}},
		{"rename through /proc/self/fd/N", sensor.File{Op: sensor.FileRename, Path: "/p/a", NewPath: "/p/b", PathUnresolved: true,
			RawPath: "/proc/self/fd/3/a", NewRawPath: "/proc/self/fd/3/b", NameChanged: true, AtEntry: true},
			event.File{Path: "/p/a", NewPath: "/p/b", PathSource: event.PathSourceName, RawPath: "/proc/self/fd/3/a", NewRawPath: "/proc/self/fd/3/b", NameChanged: true, AtEntry: true}},
		{"exchange", sensor.File{Op: sensor.FileRename, Path: "/a", NewPath: "/b", Flags: 2, PathUnresolved: true},
			event.File{Path: "/a", NewPath: "/b", Flags: 2, PathSource: event.PathSourceName, Exchange: true}},
		{"unlink with flag bit 2 is no exchange", sensor.File{Op: sensor.FileUnlink, Path: "/a", Flags: 2, PathUnresolved: true},
			event.File{Path: "/a", Flags: 2, PathSource: event.PathSourceName}},
		{"another process's cwd", sensor.File{Op: sensor.FileUnlink, Path: "/proc/1/cwd/x", PathUnresolved: true, PathAsGiven: true, NameUnreadable: true},
			event.File{Path: "/proc/1/cwd/x", PathSource: event.PathSourceAsGiven, NameUnreadable: true}},
	} {
		_, got := fileEvent(&c.in)
		if *got != c.want {
			t.Errorf("%s: %+v, want %+v", c.name, *got, c.want)
		}
	}
}
