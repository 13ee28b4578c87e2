//go:build linux

package kernel

import (
	"encoding/binary"
	"fmt"
	"net/netip"

	"github.com/lineaged/lineaged/sensor"
	"golang.org/x/sys/unix"
)

// Wire layout of bpf/fileio.h. The offsets are spelled out so the decoder
// builds on every architecture (captures are replayed anywhere); the
// generated structs exist only where the programs do, and
// TestFileIOWireLayout checks these numbers against them.
const (
	fileFixedSize     = 96
	fileOffResult     = 48
	fileOffFlags      = 52
	fileOffMode       = 56
	fileOffFmode      = 60
	fileOffPathLen    = 64
	fileOffNewLen     = 66
	fileOffSyscall    = 68
	fileOffFflags     = 70
	connectSize       = 368 // since the network operations; connectSizeV0 before (decode_net.go)
	connOffResult     = 48
	connOffFamily     = 52
	connOffProtocol   = 54
	connOffSockType   = 56
	connOffDport      = 58
	connOffSport      = 60
	connOffSkFamily   = 62
	connOffDaddr      = 64
	connOffSaddr      = 80
	filePathMax       = 4096 // FIO_PATH_MAX; a path is at most filePathMax-1 bytes
	headerSize        = 48
	fileFlagCreated   = 1 << 0
	fileFlagTrunc     = 1 << 1
	fileFlagUnres     = 1 << 2
	fileFlagNewTrunc  = 1 << 3
	fileFlagNewUnres  = 1 << 4
	fileFlagFDChanged = 1 << 5
	ipprotoMPTCP      = 262
)

// decodeFileIO parses one record of the file and network programs
// (bpf/fileio.bpf.c: kinds open, unlink, rename, chmod; connect, which also
// carries addressed sends and listen, decode_net.go) into ev,
// replacing its contents. It copies what it keeps, so b may be reused.
// Errors wrap ErrRecord and name what is wrong.
func decodeFileIO(b []byte, ev *sensor.Event) error {
	if len(b) < headerSize {
		return fmt.Errorf("%w: %d bytes, shorter than the %d-byte header", ErrRecord, len(b), headerSize)
	}
	*ev = sensor.Event{}
	k := sensor.Kind(b[0])
	switch k {
	case sensor.KindOpen, sensor.KindUnlink, sensor.KindRename, sensor.KindChmod, sensor.KindFileModify:
		return decodeFile(k, b, ev)
	case sensor.KindConnect:
		return decodeConnect(b, ev)
	case sensor.KindIOURing:
		return decodeIOURing(b, ev)
	}
	return fmt.Errorf("%w: kind %d is not a file or network record", ErrRecord, b[0])
}

// fileIOHeader decodes the common header; the caller has checked the length.
func fileIOHeader(b []byte) sensor.Header {
	le := binary.LittleEndian
	return sensor.Header{
		Kind:    sensor.Kind(b[0]),
		CPU:     le.Uint32(b[4:]),
		KtimeNs: le.Uint64(b[8:]),
		Proc:    key(le.Uint32(b[16:]), le.Uint64(b[24:])),
		TID:     le.Uint32(b[20:]),
		Session: sessionRef(le.Uint32(b[32:]), le.Uint64(b[40:]), b[1]),
	}
}

var fileOps = [...]sensor.FileOp{sensor.KindOpen: sensor.FileOpen, sensor.KindUnlink: sensor.FileUnlink, sensor.KindRename: sensor.FileRename, sensor.KindChmod: sensor.FileChmod}

func decodeFile(k sensor.Kind, b []byte, ev *sensor.Event) error {
	if len(b) < fileFixedSize {
		return short(k, len(b), fileFixedSize)
	}
	le := binary.LittleEndian
	pl := int(le.Uint16(b[fileOffPathLen:]))
	nl := int(le.Uint16(b[fileOffNewLen:]))
	if pl >= filePathMax || nl >= filePathMax {
		return fmt.Errorf("%w: %s record path lengths %d and %d, longer than %d", ErrRecord, k, pl, nl, filePathMax-1)
	}
	if nl != 0 && k != sensor.KindRename && k != sensor.KindFileModify {
		return fmt.Errorf("%w: %s record carries a new path", ErrRecord, k)
	}
	if need := fileFixedSize + pl + nl; len(b) < need {
		return fmt.Errorf("%w: %s record of %d bytes, its paths need %d", ErrRecord, k, len(b), need)
	}
	if err := checkFileExtras(k, b, pl, nl); err != nil {
		return err
	}
	ff := b[fileOffFflags]
	data := b[fileFixedSize:]
	op, err := fileOp(k, b)
	if err != nil {
		return err
	}
	f := &sensor.File{
		Op:             op,
		Path:           string(data[:pl]),
		PathTruncated:  ff&(fileFlagTrunc|fileFlagNewTrunc) != 0,
		PathUnresolved: ff&(fileFlagUnres|fileFlagNewUnres) != 0,
		Flags:          le.Uint32(b[fileOffFlags:]),
		Mode:           le.Uint32(b[fileOffMode:]),
		Created:        ff&fileFlagCreated != 0,
		FDChanged:      ff&fileFlagFDChanged != 0,
		Result:         int32(le.Uint32(b[fileOffResult:])),
		IA32:           le.Uint16(b[fileOffSyscall:])&fileSyscallIA32 != 0,
	}
	if k == sensor.KindRename {
		f.NewPath = string(data[pl : pl+nl])
	}
	decodeFileExtras(b, pl, nl, f)
	if k == sensor.KindFileModify {
		decodeFileModify(b, string(data[pl:pl+nl]), f)
	}
	ev.Header = fileIOHeader(b)
	ev.File = f
	return nil
}

// inetAddr reads an address in the record's 16-byte slot: IPv4 in the first
// four bytes, IPv6 (v4-mapped kept as such) in all sixteen.
func inetAddr(family uint16, b []byte) (netip.Addr, bool) {
	switch family {
	case unix.AF_INET:
		return netip.AddrFrom4([4]byte(b[:4])), true
	case unix.AF_INET6:
		return netip.AddrFrom16([16]byte(b[:16])), true
	}
	return netip.Addr{}, false
}
