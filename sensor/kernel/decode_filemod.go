//go:build linux

package kernel

import (
	"encoding/binary"
	"fmt"

	"github.com/lineaged/lineaged/sensor"
)

// fileModOps maps the x86_64 syscall number of a KindFileModify record
// (bpf/fileio_modify.h; i386 calls arrive as their x86_64 twin) to its op.
var fileModOps = map[uint16]sensor.FileOp{
	76: sensor.FileTruncate, 77: sensor.FileTruncate, // truncate, ftruncate
	132: sensor.FileUtimes, 235: sensor.FileUtimes, 261: sensor.FileUtimes, 280: sensor.FileUtimes, // utime, utimes, futimesat, utimensat
	92: sensor.FileChown, 93: sensor.FileChown, 94: sensor.FileChown, 260: sensor.FileChown, // chown, fchown, lchown, fchownat
	86: sensor.FileLink, 265: sensor.FileLink, // link, linkat
	88: sensor.FileSymlink, 266: sensor.FileSymlink, // symlink, symlinkat
	133: sensor.FileMknod, 259: sensor.FileMknod, // mknod, mknodat
	83: sensor.FileMkdir, 258: sensor.FileMkdir, // mkdir, mkdirat
	188: sensor.FileSetxattr, 189: sensor.FileSetxattr, 190: sensor.FileSetxattr, 463: sensor.FileSetxattr, // [lf]setxattr, setxattrat
	197: sensor.FileRemovexattr, 198: sensor.FileRemovexattr, 199: sensor.FileRemovexattr, 466: sensor.FileRemovexattr, // [lf]removexattr, removexattrat
}

// fileOp is the op of a file record of kind k.
func fileOp(k sensor.Kind, b []byte) (sensor.FileOp, error) {
	if k != sensor.KindFileModify {
		return fileOps[k], nil
	}
	nr := binary.LittleEndian.Uint16(b[fileOffSyscall:]) &^ fileSyscallIA32
	op, ok := fileModOps[nr]
	if !ok {
		return 0, fmt.Errorf("%w: %s record of syscall %d, not a file-modifying call", ErrRecord, k, nr)
	}
	return op, nil
}

// decodeFileModify fills the op-specific fields of a KindFileModify record
// (the meaning of mode, fmode and the second name per op:
// bpf/fileio_modify.h); second is the second name's bytes.
func decodeFileModify(b []byte, second string, f *sensor.File) {
	le := binary.LittleEndian
	mode, fmode := le.Uint32(b[fileOffMode:]), le.Uint32(b[fileOffFmode:])
	f.Syscall = le.Uint16(b[fileOffSyscall:])
	f.Mode = 0
	f.NewPath = ""
	switch f.Op {
	case sensor.FileTruncate:
		f.Length = int64(uint64(fmode)<<32 | uint64(mode))
	case sensor.FileChown:
		f.UID, f.GID = chownID(mode), chownID(fmode)
	case sensor.FileMknod:
		f.Mode, f.Rdev = mode, fmode
	case sensor.FileMkdir:
		f.Mode = mode
	case sensor.FileLink:
		f.NewPath = second
	case sensor.FileSymlink:
		f.Target = second
	case sensor.FileSetxattr, sensor.FileRemovexattr:
		f.Xattr = second
	}
}

// chownID is a chown id as reported: -1 (unchanged) or the id.
func chownID(v uint32) int64 {
	if v == ^uint32(0) {
		return -1
	}
	return int64(v)
}
