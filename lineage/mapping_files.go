package lineage

import (
	"github.com/lineaged/lineaged/lineage/event"
	"github.com/lineaged/lineaged/sensor"
)

// renameExchange is renameat2's RENAME_EXCHANGE (linux/fs.h).
const renameExchange = 1 << 1

// fileSource fills what out says about where its path comes from and how
// far it can be trusted: the path's source, the literal name when the
// kernel resolved a /proc link in it, and whether the caller's memory held
// the name steadily during the call (bpf/fileio_files.h); and the opened
// file's identity.
func fileSource(f *sensor.File, out *event.File) {
	switch {
	case f.PathAsGiven:
		out.PathSource = event.PathSourceAsGiven
	case f.PathUnresolved:
		out.PathSource = event.PathSourceName
	default:
		out.PathSource = event.PathSourceKernel
	}
	out.RawPath = f.RawPath
	out.NewRawPath = f.NewRawPath
	out.NameChanged = f.NameChanged
	out.NameUnreadable = f.NameUnreadable
	out.AtEntry = f.AtEntry
	out.ByHandle = f.ByHandle
	out.FDChanged = f.FDChanged
	out.Exchange = f.Op == sensor.FileRename && f.Flags&renameExchange != 0
	out.Dev, out.Inode, out.MountID = f.Dev, f.Ino, f.MountID
}

// The file.modify ops and the names of their calls (x86_64 numbers,
// bpf/fileio_modify.h).
var (
	fileModOps = map[sensor.FileOp]string{
		sensor.FileTruncate: event.FileOpTruncate, sensor.FileUtimes: event.FileOpUtimes,
		sensor.FileChown: event.FileOpChown, sensor.FileLink: event.FileOpLink,
		sensor.FileSymlink: event.FileOpSymlink, sensor.FileMknod: event.FileOpMknod,
		sensor.FileMkdir: event.FileOpMkdir, sensor.FileSetxattr: event.FileOpSetxattr,
		sensor.FileRemovexattr: event.FileOpRemovexattr,
	}
	fileModSyscalls = map[uint16]string{
		76: "truncate", 77: "ftruncate", 132: "utime", 235: "utimes", 261: "futimesat",
		280: "utimensat", 92: "chown", 93: "fchown", 94: "lchown", 260: "fchownat",
		86: "link", 265: "linkat", 88: "symlink", 266: "symlinkat", 133: "mknod",
		259: "mknodat", 83: "mkdir", 258: "mkdirat", 188: "setxattr", 189: "lsetxattr",
		190: "fsetxattr", 463: "setxattrat", 197: "removexattr", 198: "lremovexattr",
		199: "fremovexattr", 466: "removexattrat",
	}
)

// fileModify fills out from a file.modify op; false when f's op is not
// one.
func fileModify(f *sensor.File, out *event.File) bool {
	op, ok := fileModOps[f.Op]
	if !ok {
		return false
	}
	out.Op = op
	out.Syscall = fileModSyscalls[f.Syscall&^0x8000]
	switch f.Op {
	case sensor.FileTruncate:
		n := f.Length
		out.Length = &n
	case sensor.FileChown:
		u, g := f.UID, f.GID
		out.UID, out.GID = &u, &g
	case sensor.FileMknod, sensor.FileMkdir:
		m := f.Mode
		out.Perm = &m
		out.Rdev = f.Rdev
	case sensor.FileLink:
		out.NewPath = f.NewPath
	case sensor.FileSymlink:
		out.Target = f.Target
	case sensor.FileSetxattr, sensor.FileRemovexattr:
		out.Xattr = f.Xattr
	}
	return true
}
