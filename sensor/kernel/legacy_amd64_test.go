//go:build linux && amd64

package kernel

import "golang.org/x/sys/unix"

// The legacy file calls, issued directly (x/sys routes Open, Unlink, Rename
// and Chmod through their *at forms): x86_64 has them, and the file
// programs trace them.

func sysOpen(p string, flags, mode int) (int, error) {
	fd, _, e := unix.Syscall(unix.SYS_OPEN, rawPath(p), uintptr(flags), uintptr(mode))
	if e != 0 {
		return -1, e
	}
	return int(fd), nil
}

func sysCreat(p string, mode int) (int, error) {
	fd, _, e := unix.Syscall(unix.SYS_CREAT, rawPath(p), uintptr(mode), 0)
	if e != 0 {
		return -1, e
	}
	return int(fd), nil
}

func sysUnlink(p string) error { return sys1(unix.SYS_UNLINK, rawPath(p)) }

func sysRename(from, to string) error { return sys1(unix.SYS_RENAME, rawPath(from), rawPath(to)) }

func sysChmod(p string, mode uintptr) error { return sys1(unix.SYS_CHMOD, rawPath(p), mode) }
