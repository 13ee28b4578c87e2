// Package capture is the capture file format (docs/capture.md): a versioned
// header, then blocks of framed records, each block one zstd frame with its
// own length and CRC32C, each record with its own CRC32C. A writer flushes
// a block per batch, so a file is readable while it grows and, after the
// writer is killed, up to its last whole block. The package knows bytes and
// record types only; what a record's payload means is its user's business.
package capture

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"time"
)

// FormatVersion is the version this package writes and the newest it reads.
// Version 2 added the snapshot record (TypeSnapshot); a reader reads
// versions 1 and 2.
const FormatVersion = 2

// Magic opens every capture file; BlockMagic opens every block.
var (
	Magic      = [8]byte{'L', 'N', 'G', 'D', 'C', 'A', 'P', 0}
	BlockMagic = [4]byte{'L', 'C', 'B', 'K'}
)

// Limits that keep a corrupt length from allocating the machine away.
const (
	// MaxHeaderBytes bounds the JSON header.
	MaxHeaderBytes = 1 << 20
	// MaxBlockBytes bounds one block, compressed and decompressed.
	MaxBlockBytes = 16 << 20
	// MaxRecordBytes bounds one record's payload.
	MaxRecordBytes = 8 << 20
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// crc is CRC32C (Castagnoli).
func crc(b ...[]byte) uint32 {
	var c uint32
	for _, p := range b {
		c = crc32.Update(c, castagnoli, p)
	}
	return c
}

// Type tags a record. Values are part of the format: never renumber.
type Type uint8

// Record types.
const (
	// TypeEvent is one raw sensor event (sensor.Event as JSON).
	TypeEvent Type = 1
	// TypeFact is one answer a fact provider gave the engine.
	TypeFact Type = 2
	// TypeMark is a note about the capture itself (end, config reload).
	TypeMark Type = 3
	// TypeStep is an engine input other than a raw event (an external
	// event, a timer tick), in the order the engine took it.
	TypeStep Type = 4
	// TypeSnapshot is the state of the engine where a capture starts
	// (a tee of a running sensor), in place of the /proc seed. Version 2
	// on: a version 1 file holding one is corrupt (Reader.Next).
	TypeSnapshot Type = 5
)

func (t Type) String() string {
	switch t {
	case TypeEvent:
		return "event"
	case TypeFact:
		return "fact"
	case TypeMark:
		return "mark"
	case TypeStep:
		return "step"
	case TypeSnapshot:
		return "snapshot"
	}
	return fmt.Sprintf("type-%d", uint8(t))
}

// Record is one framed record.
type Record struct {
	Type    Type
	Payload []byte
}

// Header describes a capture; it is written once, uncompressed, after the
// magic and format version.
type Header struct {
	// FormatVersion is the version of the format the file was written in.
	FormatVersion int `json:"format_version"`
	// SensorVersion is the lineaged version that wrote it.
	SensorVersion string `json:"sensor_version"`
	// Host and Kernel name the machine (hostname, uname release).
	Host   string `json:"host"`
	Kernel string `json:"kernel"`
	// ConfigDigest is the SHA-256 of the effective configuration.
	ConfigDigest string `json:"config_digest"`
	// Raw is true when argv, environment and transcript text were kept
	// unredacted (--raw); false means they were redacted as the output is.
	Raw bool `json:"raw"`
	// Created is when the capture was opened.
	Created time.Time `json:"created"`
	// Meta carries what the writer's user needs again to replay (the
	// instance id, the first seq).
	Meta map[string]string `json:"meta,omitempty"`
}

// Errors a reader returns; each is wrapped with where it happened.
var (
	// ErrNotCapture: the file does not start with the capture magic.
	ErrNotCapture = errors.New("not a lineaged capture file")
	// ErrNewerVersion: written by a newer format than this reader knows.
	ErrNewerVersion = errors.New("capture format version is newer than this lineaged reads")
	// ErrTruncated: the file ends inside a block (a writer killed or
	// still writing).
	ErrTruncated = errors.New("capture truncated")
	// ErrCorrupt: a checksum or length does not hold.
	ErrCorrupt = errors.New("capture corrupt")
)

// VersionError refuses a file written by a newer format.
type VersionError struct {
	File, Reader int
}

func (e *VersionError) Error() string {
	return fmt.Sprintf("capture format version %d is newer than this lineaged reads (version %d): use a newer lineaged", e.File, e.Reader)
}

func (e *VersionError) Unwrap() error { return ErrNewerVersion }

// PositionError says where reading stopped and why.
type PositionError struct {
	// Offset is the file offset of the block (or header) at fault.
	Offset int64
	// Record is the index of the record within the block, -1 for the
	// block itself.
	Record int
	Reason string
	Err    error // ErrTruncated or ErrCorrupt
}

func (e *PositionError) Error() string {
	if e.Record >= 0 {
		return fmt.Sprintf("%v: block at byte offset %d, record %d: %s", e.Err, e.Offset, e.Record, e.Reason)
	}
	return fmt.Sprintf("%v at byte offset %d: %s", e.Err, e.Offset, e.Reason)
}

func (e *PositionError) Unwrap() error { return e.Err }

// encodeHeader lays out magic, version (uint16), length (uint32), JSON,
// CRC32C of the JSON.
func encodeHeader(h Header) ([]byte, error) {
	js, err := json.Marshal(h)
	if err != nil {
		return nil, fmt.Errorf("capture header: %w", err)
	}
	if len(js) > MaxHeaderBytes {
		return nil, fmt.Errorf("capture header: %d bytes, over %d", len(js), MaxHeaderBytes)
	}
	b := make([]byte, 0, len(Magic)+2+4+len(js)+4)
	b = append(b, Magic[:]...)
	b = binary.LittleEndian.AppendUint16(b, uint16(h.FormatVersion))
	b = binary.LittleEndian.AppendUint32(b, uint32(len(js)))
	b = append(b, js...)
	b = binary.LittleEndian.AppendUint32(b, crc(js))
	return b, nil
}

// appendRecord frames one record: uvarint length of the payload, type,
// payload, CRC32C over type and payload.
func appendRecord(b []byte, r Record) []byte {
	b = binary.AppendUvarint(b, uint64(len(r.Payload)))
	b = append(b, byte(r.Type))
	b = append(b, r.Payload...)
	c := crc32.Update(crc32.Update(0, castagnoli, []byte{byte(r.Type)}), castagnoli, r.Payload)
	return binary.LittleEndian.AppendUint32(b, c)
}

// blockHeaderLen: magic, compressed length, record count, CRC32C of the
// compressed bytes.
const blockHeaderLen = 4 + 4 + 4 + 4
