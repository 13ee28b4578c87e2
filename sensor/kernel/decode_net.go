//go:build linux

package kernel

import (
	"encoding/binary"
	"fmt"
	"net/netip"

	"github.com/lineaged/lineaged/sensor"
	"golang.org/x/sys/unix"
)

// Wire layout of struct connect_event's network-operation part
// (bpf/fileio.h), after the 96 bytes a connect record had before it.
// TestNetWireLayout checks these against the generated struct.
const (
	connectSizeV0   = 96
	connOffOp       = 96
	connOffNflags   = 98
	connOffSyscall  = 100
	connOffPathLen  = 102
	connOffCount    = 104
	connOffPath     = 112
	netPathMax      = 256 // NET_PATH_MAX
	netOpMax        = sensor.NetListen
	netFromCaller   = 1 << 0
	netRewritten    = 1 << 1
	netUnreadable   = 1 << 2
	netAbstract     = 1 << 3
	netPathTrunc    = 1 << 4
	netPathAsGiven  = 1 << 5
	netIA32         = 1 << 6
	netSocketcall   = 1 << 7
	netFastOpen     = 1 << 8
	netFDChanged    = 1 << 9
	netFlagsDefined = 1<<10 - 1
	// fileSyscallIA32 is FIO_SYSCALL_IA32 in struct file_event.syscall
	// (bpf/fileio_compat.h).
	fileSyscallIA32 = 0x8000
)

// decodeConnect parses an EV_CONNECT record: a connect, an addressed send
// or a listen. A record of connectSizeV0 bytes (a capture from before the
// network operations) is a connect of AF_INET or AF_INET6.
func decodeConnect(b []byte, ev *sensor.Event) error {
	if len(b) < connectSizeV0 {
		return short(sensor.KindConnect, len(b), connectSizeV0)
	}
	le := binary.LittleEndian
	c := &sensor.Connect{
		Family:   le.Uint16(b[connOffFamily:]),
		Result:   int32(le.Uint32(b[connOffResult:])),
		SockType: le.Uint16(b[connOffSockType:]),
	}
	switch p := le.Uint16(b[connOffProtocol:]); {
	case p == ipprotoMPTCP:
		// Multipath TCP is TCP on the wire; Protocol is a byte.
		c.Protocol = unix.IPPROTO_TCP
	case p > 0xff:
		return fmt.Errorf("%w: connect record protocol %d", ErrRecord, p)
	default:
		c.Protocol = uint8(p)
	}
	if len(b) >= connectSize {
		if err := decodeNetOp(b, c); err != nil {
			return err
		}
	} else if len(b) != connectSizeV0 {
		return fmt.Errorf("%w: connect record of %d bytes, neither %d nor %d", ErrRecord, len(b), connectSizeV0, connectSize)
	}
	switch {
	case c.Family == unix.AF_UNIX:
	case c.Op == sensor.NetListen:
	case c.Family == 0 && c.Unreadable:
		// A send whose sockaddr vanished before it could be read.
	default:
		daddr, ok := inetAddr(c.Family, b[connOffDaddr:connOffDaddr+16])
		if !ok {
			return fmt.Errorf("%w: %s record family %d is neither AF_INET, AF_INET6 nor AF_UNIX", ErrRecord, c.Op, c.Family)
		}
		c.Dst = netip.AddrPortFrom(daddr, le.Uint16(b[connOffDport:]))
	}
	// The source exists once the socket is bound: explicitly, or by the
	// autobind connect does (also when it returns EINPROGRESS).
	if sport := le.Uint16(b[connOffSport:]); sport != 0 {
		if saddr, ok := inetAddr(le.Uint16(b[connOffSkFamily:]), b[connOffSaddr:connOffSaddr+16]); ok {
			c.Src = netip.AddrPortFrom(saddr, sport)
		}
	}
	ev.Header = fileIOHeader(b)
	ev.Connect = c
	return nil
}

func decodeNetOp(b []byte, c *sensor.Connect) error {
	le := binary.LittleEndian
	op := le.Uint16(b[connOffOp:])
	if op > uint16(netOpMax) {
		return fmt.Errorf("%w: connect record operation %d", ErrRecord, op)
	}
	fl := le.Uint16(b[connOffNflags:])
	if fl&^netFlagsDefined != 0 {
		return fmt.Errorf("%w: connect record flags %#x", ErrRecord, fl)
	}
	pl := int(le.Uint16(b[connOffPathLen:]))
	if pl > netPathMax {
		return fmt.Errorf("%w: connect record path length %d, longer than %d", ErrRecord, pl, netPathMax)
	}
	c.Op = sensor.NetOp(op)
	c.Path = string(b[connOffPath : connOffPath+pl])
	c.Abstract = fl&netAbstract != 0
	c.PathAsGiven = fl&netPathAsGiven != 0
	c.PathTruncated = fl&netPathTrunc != 0
	c.FromCaller = fl&netFromCaller != 0
	c.Rewritten = fl&netRewritten != 0
	c.Unreadable = fl&netUnreadable != 0
	c.IA32 = fl&netIA32 != 0
	c.Socketcall = fl&netSocketcall != 0
	c.FastOpen = fl&netFastOpen != 0
	c.FDChanged = fl&netFDChanged != 0
	c.Syscall = le.Uint16(b[connOffSyscall:])
	c.Count = le.Uint32(b[connOffCount:])
	return nil
}
