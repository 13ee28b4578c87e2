//go:build linux && (386 || amd64 || arm64)

package kernel

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"

	"github.com/lineaged/lineaged/sensor"
)

// modRec builds a KindFileModify record of syscall nr as
// bpf/fileio_modify.h emits it.
func modRec(t *testing.T, nr uint16, mode, fmode uint32, path, second string) []byte {
	t.Helper()
	var r fileioFileEvent
	setHdr(&r, sensor.KindFileModify)
	r.Syscall = nr
	r.Mode, r.Fmode = mode, fmode
	r.PathLen, r.NewPathLen = uint16(len(path)), uint16(len(second))
	r.Fflags = fileFlagUnres
	for i, c := range []byte(path + second) {
		r.Data[i] = int8(c)
	}
	var buf bytes.Buffer
	if err := binary.Write(&buf, binary.LittleEndian, &r); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()[:fileFixedSize+len(path)+len(second)]
}

func TestDecodeFileModify(t *testing.T) {
	for _, c := range []struct {
		name  string
		b     []byte
		check func(f *sensor.File) bool
	}{
		{"truncate64", modRec(t, 76|fileSyscallIA32, 7, 1, "/w/t", ""), func(f *sensor.File) bool {
			return f.Op == sensor.FileTruncate && f.Length == 1<<32|7 && f.IA32
		}},
		{"chown", modRec(t, 260, 0xffffffff, 0, "/w/t", ""), func(f *sensor.File) bool {
			return f.Op == sensor.FileChown && f.UID == -1 && f.GID == 0
		}},
		{"symlink", modRec(t, 266, 0, 0, "/w/s", "/etc/shadow"), func(f *sensor.File) bool {
			return f.Op == sensor.FileSymlink && f.Path == "/w/s" && f.Target == "/etc/shadow" && f.NewPath == ""
		}},
		{"link", modRec(t, 86, 0, 0, "/w/a", "/w/b"), func(f *sensor.File) bool {
			return f.Op == sensor.FileLink && f.NewPath == "/w/b"
		}},
		{"setxattr", modRec(t, 190, 1, 0, "/w/t", "security.capability"), func(f *sensor.File) bool {
			return f.Op == sensor.FileSetxattr && f.Xattr == "security.capability" && f.Mode == 0
		}},
		{"mknod", modRec(t, 259, 0o20600, 0x500003, "/w/n", ""), func(f *sensor.File) bool {
			return f.Op == sensor.FileMknod && f.Mode == 0o20600 && f.Rdev == 0x500003
		}},
	} {
		var ev sensor.Event
		if err := decodeFileIO(c.b, &ev); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if ev.Kind != sensor.KindFileModify || !c.check(ev.File) {
			t.Errorf("%s: decoded %+v", c.name, *ev.File)
		}
	}
	// A syscall that is not a file-modifying one is a bad record.
	var ev sensor.Event
	if err := decodeFileIO(modRec(t, 2, 0, 0, "/w/t", ""), &ev); !errors.Is(err, ErrRecord) {
		t.Fatalf("open's number in a file.modify record: %v, want ErrRecord", err)
	}
}
