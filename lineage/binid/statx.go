package binid

import (
	"golang.org/x/sys/unix"

	"github.com/lineaged/lineaged/sensor"
)

// fileID is a file's identity as statx(2) gives it: what the hash cache is
// keyed by (dev, inode, size, mtime, ctime) plus the birth time where the
// file system records one. ctime cannot be set from user space and btime
// not at all, so a file rewritten in place with its size and mtime put back
// (touch -d) still differs.
type fileID struct {
	stat     sensor.FileStat // user-space dev_t encoding, as stat(2)
	btimeNs  int64
	hasBtime bool
}

const statxMask = unix.STATX_TYPE | unix.STATX_INO | unix.STATX_SIZE | unix.STATX_MTIME | unix.STATX_CTIME | unix.STATX_BTIME

// statxPath is the identity of the regular file at path, not following a
// final symlink; ok is false for anything else or an error.
func statxPath(path string) (fileID, bool) {
	var sx unix.Statx_t
	if err := unix.Statx(unix.AT_FDCWD, path, unix.AT_SYMLINK_NOFOLLOW|unix.AT_STATX_SYNC_AS_STAT, statxMask, &sx); err != nil {
		return fileID{}, false
	}
	return idOf(&sx)
}

func idOf(sx *unix.Statx_t) (fileID, bool) {
	if sx.Mode&unix.S_IFMT != unix.S_IFREG {
		return fileID{}, false
	}
	id := fileID{stat: sensor.FileStat{
		Dev:     unix.Mkdev(sx.Dev_major, sx.Dev_minor),
		Inode:   sx.Ino,
		Size:    int64(sx.Size),
		MtimeNs: sx.Mtime.Sec*1e9 + int64(sx.Mtime.Nsec),
		CtimeNs: sx.Ctime.Sec*1e9 + int64(sx.Ctime.Nsec),
	}}
	if sx.Mask&unix.STATX_BTIME != 0 {
		id.btimeNs, id.hasBtime = sx.Btime.Sec*1e9+int64(sx.Btime.Nsec), true
	}
	return id, true
}

// kernelDev is the inverse of procfs.KernelDev: the kernel-internal dev_t
// (major<<20 | minor) that exec events carry, for a user-space one.
func kernelDev(dev uint64) uint64 {
	return uint64(unix.Major(dev))<<20 | uint64(unix.Minor(dev))
}
