//go:build amd64

package testutil

// Int80 makes a syscall through the ia32 entry (int $0x80) from 64-bit
// code, as an evading process would (int80_amd64.s): i386 number nr,
// arguments a1-a4. It returns the raw result (-errno on failure).
func Int80(nr, a1, a2, a3, a4 uintptr) uintptr
