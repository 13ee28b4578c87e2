//go:build linux && arm64

package kernel

import "golang.org/x/sys/unix"

// arm64 has no legacy file calls (open, creat, unlink, rename, chmod): its C
// libraries make the *at calls these stand for, which the file programs
// trace and report the same way.

func sysOpen(p string, flags, mode int) (int, error) {
	return unix.Openat(unix.AT_FDCWD, p, flags, uint32(mode))
}

func sysCreat(p string, mode int) (int, error) {
	return unix.Openat(unix.AT_FDCWD, p, unix.O_CREAT|unix.O_WRONLY|unix.O_TRUNC, uint32(mode))
}

func sysUnlink(p string) error { return unix.Unlinkat(unix.AT_FDCWD, p, 0) }

func sysRename(from, to string) error { return unix.Renameat(unix.AT_FDCWD, from, unix.AT_FDCWD, to) }

func sysChmod(p string, mode uintptr) error { return unix.Fchmodat(unix.AT_FDCWD, p, uint32(mode), 0) }
