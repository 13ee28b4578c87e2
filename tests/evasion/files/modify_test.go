//go:build linux && amd64

package files

import (
	"path/filepath"
	"testing"

	"github.com/lineaged/lineaged/sensor"
	"golang.org/x/sys/unix"
)

// Each file-modifying call a member makes is a KindFileModify record with
// its op, its path (the fd's file for fd calls, with its identity), and
// what the call sets.
// modifyRecords is how many file.modify records the "modify" member makes.
const modifyRecords = 14

func TestRootFileModifyOps(t *testing.T) {
	s, r := runSensor(t)
	// A kernel that skips runs of a program already running on that CPU
	// (7.x, see TestRootNameSwappedDuringCall) can lose one of the records,
	// reporting the skipped run: then the member runs again, up to three
	// times. A record missing with no skipped run reported fails at once.
	var (
		dir   string
		files []*sensor.File
		out   []string
	)
	for try := 1; ; try++ {
		dir = tempDir(t)
		base := r.skippedNow()
		files, out = member(t, s, r, "modify", dir)
		n := 0
		for _, f := range files {
			if f.Op >= sensor.FileTruncate {
				n++
			}
		}
		if n >= modifyRecords || try == 3 {
			break
		}
		if got := r.skippedAtLeast(base + uint64(modifyRecords-n)); got < base+uint64(modifyRecords-n) {
			break // not the kernel's skipping: checked below
		}
		t.Logf("run %d: %d of %d file.modify records, with skipped program runs reported: again", try, n, modifyRecords)
	}
	if len(out) != 2 {
		t.Fatalf("helper printed %q, want its two descriptors", out)
	}
	fd, dfd := out[0], out[1]
	tf := filepath.Join(dir, "t")
	type want struct {
		op      sensor.FileOp
		syscall uint16
		path    string
		check   func(f *sensor.File) bool
	}
	wants := []want{
		{sensor.FileTruncate, unix.SYS_TRUNCATE, tf, func(f *sensor.File) bool { return f.Length == 5 }},
		{sensor.FileTruncate, unix.SYS_FTRUNCATE, tf, func(f *sensor.File) bool {
			return f.Length == 3 && f.Ino != 0 && !f.PathUnresolved
		}},
		{sensor.FileUtimes, unix.SYS_UTIMENSAT, tf, nil},
		{sensor.FileChown, unix.SYS_FCHOWNAT, tf, func(f *sensor.File) bool { return f.UID == 1234 && f.GID == -1 }},
		{sensor.FileChown, unix.SYS_FCHOWN, tf, func(f *sensor.File) bool {
			return f.UID == -1 && f.GID == 4321 && f.Ino != 0
		}},
		{sensor.FileLink, unix.SYS_LINK, tf, func(f *sensor.File) bool { return f.NewPath == filepath.Join(dir, "l") }},
		{sensor.FileSymlink, unix.SYS_SYMLINK, filepath.Join(dir, "s"), func(f *sensor.File) bool {
			return f.Target == "/etc/shadow" && f.NewPath == ""
		}},
		{sensor.FileMknod, unix.SYS_MKNOD, filepath.Join(dir, "fifo"), func(f *sensor.File) bool {
			return f.Mode == unix.S_IFIFO|0o600
		}},
		{sensor.FileMkdir, unix.SYS_MKDIR, filepath.Join(dir, "d"), func(f *sensor.File) bool { return f.Mode == 0o700 }},
		{sensor.FileSetxattr, unix.SYS_SETXATTR, tf, func(f *sensor.File) bool { return f.Xattr == "trusted.lineaged" }},
		{sensor.FileRemovexattr, unix.SYS_REMOVEXATTR, tf, func(f *sensor.File) bool { return f.Xattr == "trusted.lineaged" }},
		{sensor.FileSetxattr, unix.SYS_FSETXATTR, tf, func(f *sensor.File) bool {
			return f.Xattr == "trusted.other" && f.Ino != 0
		}},
		{sensor.FileMkdir, unix.SYS_MKDIR, filepath.Join(dir, "p"), func(f *sensor.File) bool {
			return f.RawPath == "/proc/self/fd/"+dfd+"/p"
		}},
		{sensor.FileSymlink, unix.SYS_SYMLINK, filepath.Join(dir, "s2"), func(f *sensor.File) bool {
			return f.Target == "/proc/self/fd/"+fd && f.RawPath == ""
		}},
	}
	if len(wants) != modifyRecords {
		t.Fatalf("%d records wanted, modifyRecords says %d", len(wants), modifyRecords)
	}
	var mods []*sensor.File
	for _, f := range files {
		if f.Op >= sensor.FileTruncate {
			mods = append(mods, f)
		}
	}
	if len(mods) != len(wants) {
		for _, f := range mods {
			t.Logf("record: %s syscall %d", describe(f), f.Syscall)
		}
		t.Fatalf("%d file.modify records, want %d", len(mods), len(wants))
	}
	for i, w := range wants {
		f := mods[i]
		if f.Op != w.op || f.Syscall != w.syscall || f.Path != w.path || f.Result != 0 ||
			(w.check != nil && !w.check(f)) {
			t.Errorf("call %d (syscall %d): got %s syscall %d %+v", i, w.syscall, describe(f), f.Syscall, *f)
		}
	}
}

// The same calls through int $0x80 are reported as their x86_64 twins,
// marked ia32, with truncate64's length joined from its two registers and
// chown32's ids.
func TestRootFileModifyIA32(t *testing.T) {
	s, r := runSensor(t)
	dir := tempDir(t)
	files, out := member(t, s, r, "modify-ia32", dir)
	if len(out) > 0 && out[0] == "ia32 off" {
		t.Skip("this machine does not run int $0x80 system calls (ia32 emulation off, or the entry faults): the matrix guests cover them")
	}
	var mods []*sensor.File
	for _, f := range files {
		if f.Op >= sensor.FileTruncate {
			mods = append(mods, f)
		}
	}
	if len(mods) != 3 {
		t.Fatalf("%d file.modify records, want 3: %v", len(mods), mods)
	}
	t32 := filepath.Join(dir, "t32")
	for i, ok := range []bool{
		mods[0].Op == sensor.FileMkdir && mods[0].Path == filepath.Join(dir, "d32") && mods[0].Mode == 0o700,
		mods[1].Op == sensor.FileTruncate && mods[1].Path == t32 && mods[1].Length == 1<<32|7,
		mods[2].Op == sensor.FileChown && mods[2].Path == t32 && mods[2].UID == 99 && mods[2].GID == 98,
	} {
		if !ok || !mods[i].IA32 || mods[i].Result != 0 {
			t.Errorf("ia32 call %d: %s %+v", i, describe(mods[i]), *mods[i])
		}
	}
}
