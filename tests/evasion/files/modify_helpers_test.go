//go:build linux && amd64

package files

import (
	"fmt"
	"os"
	"path/filepath"
	"unsafe"

	"github.com/lineaged/lineaged/tests/testutil"
	"golang.org/x/sys/unix"
)

func init() {
	helpers["modify"] = modify
	helpers["modify-ia32"] = modifyIA32
}

// sys makes a raw syscall, so the test names the very call made (x/sys
// maps some of these to their *at forms).
func sys(nr uintptr, args ...uintptr) error {
	var a [6]uintptr
	copy(a[:], args)
	if _, _, e := unix.Syscall6(nr, a[0], a[1], a[2], a[3], a[4], a[5]); e != 0 {
		return fmt.Errorf("syscall %d: %w", nr, e)
	}
	return nil
}

func ptr(s string) uintptr {
	b := cstr(s)
	return uintptr(unsafe.Pointer(&b[0]))
}

// modify: each file-modifying call once, on files in dir (the cwd).
func modify(dir string) error {
	t := filepath.Join(dir, "t")
	if err := os.WriteFile(t, []byte("0123456789"), 0o600); err != nil {
		return err
	}
	fd, err := unix.Open(t, unix.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	dfd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		return err
	}
	defer unix.Close(dfd)
	fmt.Println(fd)
	fmt.Println(dfd)
	neg := ^uintptr(0)
	atFDCWD := uintptr(0xffffffffffffff9c)
	val := []byte("x")
	steps := []func() error{
		func() error { return sys(unix.SYS_TRUNCATE, ptr(t), 5) },
		func() error { return sys(unix.SYS_FTRUNCATE, uintptr(fd), 3) },
		func() error { return sys(unix.SYS_UTIMENSAT, atFDCWD, ptr("t"), 0, 0) },
		func() error { return sys(unix.SYS_FCHOWNAT, atFDCWD, ptr(t), 1234, neg, 0) },
		func() error { return sys(unix.SYS_FCHOWN, uintptr(fd), neg, 4321) },
		func() error { return sys(unix.SYS_LINK, ptr(t), ptr(filepath.Join(dir, "l"))) },
		func() error { return sys(unix.SYS_SYMLINK, ptr("/etc/shadow"), ptr(filepath.Join(dir, "s"))) },
		func() error {
			return sys(unix.SYS_MKNOD, ptr(filepath.Join(dir, "fifo")), unix.S_IFIFO|0o600, 0)
		},
		func() error { return sys(unix.SYS_MKDIR, ptr(filepath.Join(dir, "d")), 0o700) },
		// trusted.* rather than user.*: tmpfs (the kernel matrix guests'
		// root) takes user.* xattrs only from 6.6 (EOPNOTSUPP before), and
		// trusted.* for CAP_SYS_ADMIN on every kernel the matrix boots.
		func() error {
			return sys(unix.SYS_SETXATTR, ptr(t), ptr("trusted.lineaged"), uintptr(unsafe.Pointer(&val[0])), 1, 0)
		},
		func() error { return sys(unix.SYS_REMOVEXATTR, ptr(t), ptr("trusted.lineaged")) },
		func() error {
			return sys(unix.SYS_FSETXATTR, uintptr(fd), ptr("trusted.other"), uintptr(unsafe.Pointer(&val[0])), 1, 0)
		},
		// Through a /proc link (resolved), and a symlink whose content is
		// one (a literal: not resolved).
		func() error {
			return sys(unix.SYS_MKDIR, ptr(fmt.Sprintf("/proc/self/fd/%d/p", dfd)), 0o700)
		},
		func() error {
			return sys(unix.SYS_SYMLINK, ptr(fmt.Sprintf("/proc/self/fd/%d", fd)), ptr(filepath.Join(dir, "s2")))
		},
	}
	for _, s := range steps {
		if err := s(); err != nil {
			return err
		}
	}
	return nil
}

// i386 numbers (arch/x86/entry/syscalls/syscall_32.tbl).
const (
	ia32Mkdir      = 39
	ia32Truncate64 = 193
	ia32Chown32    = 212
)

// modifyIA32: mkdir, truncate64 (a 64-bit length in two registers) and
// chown32 through int $0x80, names below 4 GiB. Prints "ia32 off" when the
// kernel refuses ia32 calls.
func modifyIA32(dir string) error {
	if !testutil.IA32Works() {
		fmt.Println("ia32 off")
		return nil
	}
	mem, err := unix.Mmap(-1, 0, unix.Getpagesize(), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_32BIT)
	if err != nil {
		return err
	}
	at := 0
	cs := func(s string) uintptr {
		p := uintptr(unsafe.Pointer(&mem[at]))
		at += copy(mem[at:], cstr(s))
		return p
	}
	d, t := cs(filepath.Join(dir, "d32")), cs(filepath.Join(dir, "t32"))
	if err := os.WriteFile(filepath.Join(dir, "t32"), nil, 0o600); err != nil {
		return err
	}
	for _, c := range []struct {
		name        string
		nr, a, b, c uintptr
	}{
		{"mkdir", ia32Mkdir, d, 0o700, 0},
		{"truncate64", ia32Truncate64, t, 7, 1}, // 1<<32 | 7
		{"chown32", ia32Chown32, t, 99, 98},
	} {
		if r := int32(testutil.Int80(c.nr, c.a, c.b, c.c, 0)); r < 0 {
			return fmt.Errorf("%s: %w", c.name, unix.Errno(-r))
		}
	}
	return nil
}
