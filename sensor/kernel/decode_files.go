//go:build linux

package kernel

import (
	"encoding/binary"
	"fmt"

	"github.com/lineaged/lineaged/sensor"
)

// The file record's fields after fflags (bpf/fileio.h, bpf/fileio_files.h):
// the re-read names and the /proc links the kernel resolved.
const (
	fileOffXflags    = 71
	fileOffSplit     = 72
	fileOffNewSplit  = 74
	fileOffRawLen    = 76
	fileOffNewRawLen = 77
	fileRawMax       = 32 // FIO_RAW_MAX: a literal /proc prefix is shorter
	fileOffIno       = 80
	fileOffDev       = 88
	fileOffMntID     = 92

	fileXNameChanged    = 1 << 0
	fileXNameUnreadable = 1 << 1
	fileXProc           = 1 << 2
	fileXNewProc        = 1 << 3
	fileXAsGiven        = 1 << 4
	fileXNewAsGiven     = 1 << 5
	fileXAtEntry        = 1 << 6
	fileXByHandle       = 1 << 7
)

// checkFileExtras validates the literal /proc prefixes of a file record
// whose paths are pl and nl bytes long.
func checkFileExtras(k sensor.Kind, b []byte, pl, nl int) error {
	le := binary.LittleEndian
	x := b[fileOffXflags]
	rl, nrl := int(b[fileOffRawLen]), int(b[fileOffNewRawLen])
	if rl >= fileRawMax || nrl >= fileRawMax {
		return fmt.Errorf("%w: %s record /proc prefix lengths %d and %d, longer than %d", ErrRecord, k, rl, nrl, fileRawMax-1)
	}
	if (x&fileXProc != 0) != (rl != 0) || (x&fileXNewProc != 0) != (nrl != 0) {
		return fmt.Errorf("%w: %s record /proc prefix lengths %d and %d disagree with its flags %#x", ErrRecord, k, rl, nrl, x)
	}
	if s := int(le.Uint16(b[fileOffSplit:])); s > pl {
		return fmt.Errorf("%w: %s record splits its %d-byte path at %d", ErrRecord, k, pl, s)
	}
	if s := int(le.Uint16(b[fileOffNewSplit:])); s > nl {
		return fmt.Errorf("%w: %s record splits its %d-byte new path at %d", ErrRecord, k, nl, s)
	}
	if need := fileFixedSize + pl + nl + rl + nrl; len(b) < need {
		return fmt.Errorf("%w: %s record of %d bytes, its paths and /proc prefixes need %d", ErrRecord, k, len(b), need)
	}
	return nil
}

// decodeFileExtras fills f's raw paths and name flags; checkFileExtras has
// passed.
func decodeFileExtras(b []byte, pl, nl int, f *sensor.File) {
	le := binary.LittleEndian
	x := b[fileOffXflags]
	data := b[fileFixedSize:]
	raw := data[pl+nl:]
	if rl := int(b[fileOffRawLen]); rl != 0 {
		f.RawPath = string(raw[:rl]) + f.Path[le.Uint16(b[fileOffSplit:]):]
		raw = raw[rl:]
	}
	if nrl := int(b[fileOffNewRawLen]); nrl != 0 {
		f.NewRawPath = string(raw[:nrl]) + f.NewPath[le.Uint16(b[fileOffNewSplit:]):]
	}
	if ino := le.Uint64(b[fileOffIno:]); ino != 0 {
		f.Ino = ino
		f.Dev = userDev(uint64(le.Uint32(b[fileOffDev:])))
		f.MountID = int32(le.Uint32(b[fileOffMntID:]))
	}
	f.PathAsGiven = x&(fileXAsGiven|fileXNewAsGiven) != 0
	f.NameChanged = x&fileXNameChanged != 0
	f.NameUnreadable = x&fileXNameUnreadable != 0
	f.AtEntry = x&fileXAtEntry != 0
	f.ByHandle = x&fileXByHandle != 0
}
