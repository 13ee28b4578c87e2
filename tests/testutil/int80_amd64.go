//go:build amd64

package testutil

import (
	"os"
	"runtime/debug"
	"sync"
)

// Int80 makes a syscall through the ia32 entry (int $0x80) from 64-bit
// code, as an evading process would (int80_amd64.s): i386 number nr,
// arguments a1-a4. It returns the raw result (-errno on failure).
func Int80(nr, a1, a2, a3, a4 uintptr) uintptr

// IA32Works reports whether this machine runs system calls made through
// int $0x80: a kernel booted with ia32_emulation=false answers ENOSYS or,
// where the entry is not even installed (some hypervisors' guests), a
// general protection fault, which the probe recovers from.
func IA32Works() bool {
	ia32Once.Do(func() {
		defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
		defer func() {
			if recover() != nil {
				ia32OK = false
			}
		}()
		const ia32Getpid = 20
		ia32OK = int(Int80(ia32Getpid, 0, 0, 0, 0)) == os.Getpid()
	})
	return ia32OK
}

var (
	ia32Once sync.Once
	ia32OK   bool
)
