#include "textflag.h"

// func Int80(nr, a1, a2, a3, a4 uintptr) uintptr
//
// A syscall through the ia32 entry (int $0x80) from 64-bit code: i386
// number in eax, arguments in ebx, ecx, edx, esi. The kernel clears r8-r11
// on the way back; ABI0 code may lose them.
TEXT ·Int80(SB), NOSPLIT, $0-48
	MOVQ nr+0(FP), AX
	MOVQ a1+8(FP), BX
	MOVQ a2+16(FP), CX
	MOVQ a3+24(FP), DX
	MOVQ a4+32(FP), SI
	INT  $0x80
	MOVQ AX, ret+40(FP)
	RET
