//go:build linux

package kernel

import (
	"encoding/binary"
	"fmt"
	"net/netip"

	"github.com/lineaged/lineaged/sensor"
	"golang.org/x/sys/unix"
)

// Wire layout of struct iouring_event (bpf/fileio.h), spelled out like
// fileio.go's; TestIOURingWireLayout checks it against the generated struct.
const (
	iouSize         = 1136
	iouOffResult    = 48
	iouOffEntries   = 52
	iouOffSetupFl   = 56
	iouOffFD        = 60
	iouOffDFD       = 64
	iouOffOpenFlags = 68
	iouOffMode      = 72
	iouOffUflags    = 76
	iouOffOp        = 78
	iouOffOpcode    = 79
	iouOffUserData  = 80
	iouOffFamily    = 88
	iouOffPort      = 90
	iouOffPathLen   = 92
	iouOffNewLen    = 94
	iouOffAddr      = 96
	iouOffPath      = 112
	iouOffNewPath   = 624
	iouPathMax      = 512 // IOU_PATH_MAX

	iouFlagSQPoll      = 1 << 0
	iouFlagAsGiven     = 1 << 1
	iouFlagPathTrunc   = 1 << 2
	iouFlagNewTrunc    = 1 << 3
	iouFlagIA32        = 1 << 4
	iouFlagFromCaller  = 1 << 5
	iouFlagTPSqe       = 1 << 6
	iouFlagUnreadable  = 1 << 7
	iouFlagSendUnknown = 1 << 8
	iouFlagFixedFile   = 1 << 9
	iouFlagKilled      = 1 << 10
)

// decodeIOURing parses an EV_IOURING record (bpf/fileio_iouring.h,
// bpf/iouring.bpf.c).
func decodeIOURing(b []byte, ev *sensor.Event) error {
	if len(b) < iouSize {
		return short(sensor.KindIOURing, len(b), iouSize)
	}
	le := binary.LittleEndian
	pl := int(le.Uint16(b[iouOffPathLen:]))
	nl := int(le.Uint16(b[iouOffNewLen:]))
	if pl >= iouPathMax || nl >= iouPathMax {
		return fmt.Errorf("%w: iouring record path lengths %d and %d, longer than %d", ErrRecord, pl, nl, iouPathMax-1)
	}
	op := sensor.IOURingOp(b[iouOffOp])
	if op != sensor.IOURingSetup && op != sensor.IOURingSubmit {
		return fmt.Errorf("%w: iouring record of unknown op %d", ErrRecord, op)
	}
	uf := le.Uint16(b[iouOffUflags:])
	u := &sensor.IOURing{
		Op:               op,
		Result:           int32(le.Uint32(b[iouOffResult:])),
		Entries:          le.Uint32(b[iouOffEntries:]),
		SetupFlags:       le.Uint32(b[iouOffSetupFl:]),
		Opcode:           b[iouOffOpcode],
		FD:               int32(le.Uint32(b[iouOffFD:])),
		FixedFile:        uf&iouFlagFixedFile != 0,
		UserData:         le.Uint64(b[iouOffUserData:]),
		DirFD:            int32(le.Uint32(b[iouOffDFD:])),
		OpenFlags:        le.Uint32(b[iouOffOpenFlags:]),
		Mode:             le.Uint32(b[iouOffMode:]),
		Family:           le.Uint16(b[iouOffFamily:]),
		PathAsGiven:      uf&iouFlagAsGiven != 0,
		PathTruncated:    uf&iouFlagPathTrunc != 0,
		NewPathTruncated: uf&iouFlagNewTrunc != 0,
		AddrFromCaller:   uf&iouFlagFromCaller != 0,
		SendUnknown:      uf&iouFlagSendUnknown != 0,
		SQPoll:           uf&iouFlagSQPoll != 0,
		Unprepared:       uf&iouFlagTPSqe != 0,
		IA32:             uf&iouFlagIA32 != 0,
		Unreadable:       uf&iouFlagUnreadable != 0,
		Killed:           uf&iouFlagKilled != 0,
		Path:             string(b[iouOffPath : iouOffPath+pl]),
		NewPath:          string(b[iouOffNewPath : iouOffNewPath+nl]),
	}
	if op == sensor.IOURingSetup {
		u.Opcode, u.FD = 0, -1
	}
	port := le.Uint16(b[iouOffPort:])
	switch u.Family {
	case unix.AF_INET:
		u.Addr = netip.AddrPortFrom(netip.AddrFrom4([4]byte(b[iouOffAddr:iouOffAddr+4])), port)
	case unix.AF_INET6:
		u.Addr = netip.AddrPortFrom(netip.AddrFrom16([16]byte(b[iouOffAddr:iouOffAddr+16])), port)
	}
	ev.Header = fileIOHeader(b)
	ev.IOURing = u
	return nil
}
