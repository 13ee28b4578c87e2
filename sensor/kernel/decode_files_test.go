//go:build linux && (386 || amd64 || arm64)

package kernel

import (
	"bytes"
	"encoding/binary"
	"errors"
	"strings"
	"testing"

	"github.com/lineaged/lineaged/sensor"
)

// procRec builds a rename record whose paths had /proc link prefixes
// resolved, the way bpf/fileio_files.h emits it: path, new_path, then the
// two literal prefixes.
func procRec(t *testing.T, path, newPath, raw, newRaw string, split, newSplit int, x uint8) []byte {
	t.Helper()
	var r fileioFileEvent
	setHdr(&r, sensor.KindRename)
	r.PathLen, r.NewPathLen = uint16(len(path)), uint16(len(newPath))
	r.RawLen, r.NewRawLen = uint8(len(raw)), uint8(len(newRaw))
	r.Split, r.NewSplit = uint16(split), uint16(newSplit)
	r.Xflags = x
	r.Fflags = fileFlagUnres | fileFlagNewUnres
	all := path + newPath + raw + newRaw
	for i, c := range []byte(all) {
		r.Data[i] = int8(c)
	}
	var buf bytes.Buffer
	if err := binary.Write(&buf, binary.LittleEndian, &r); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()[:fileFixedSize+len(all)]
}

func TestDecodeFileProcLinksAndNameFlags(t *testing.T) {
	b := procRec(t, "/home/u/p/out.tmp", "/home/u/p/out.txt", "/proc/self/fd/13", "/proc/self/fd/13", 9, 9,
		fileXProc|fileXNewProc|fileXNameChanged)
	var ev sensor.Event
	if err := decodeFileIO(b, &ev); err != nil {
		t.Fatal(err)
	}
	f := ev.File
	if f.Path != "/home/u/p/out.tmp" || f.RawPath != "/proc/self/fd/13/out.tmp" ||
		f.NewPath != "/home/u/p/out.txt" || f.NewRawPath != "/proc/self/fd/13/out.txt" ||
		!f.NameChanged || f.NameUnreadable || f.PathAsGiven || !f.PathUnresolved {
		t.Fatalf("decoded %+v", f)
	}

	// A bare link resolved to the root: "/" whose literal is the prefix.
	b = procRec(t, "/", "", "/proc/self/root", "", 1, 0, fileXProc|fileXNameUnreadable|fileXNewAsGiven)
	if err := decodeFileIO(b, &ev); err != nil {
		t.Fatal(err)
	}
	if f := ev.File; f.RawPath != "/proc/self/root" || f.NewRawPath != "" || !f.NameUnreadable || !f.PathAsGiven {
		t.Fatalf("decoded %+v", f)
	}
}

func TestDecodeFileProcLinkErrors(t *testing.T) {
	good := procRec(t, "/a/b", "", "/proc/self/cwd", "", 2, 0, fileXProc)
	mut := func(f func([]byte)) []byte {
		b := bytes.Clone(good)
		f(b)
		return b
	}
	for _, tc := range []struct {
		name string
		b    []byte
		want string
	}{
		{"prefix past the end", good[:len(good)-1], "and /proc prefixes need"},
		{"prefix too long", mut(func(b []byte) { b[fileOffRawLen] = fileRawMax }), "longer than 31"},
		{"prefix without its flag", mut(func(b []byte) { b[fileOffXflags] = 0 }), "disagree with its flags"},
		{"flag without a prefix", mut(func(b []byte) { b[fileOffXflags] |= fileXNewProc }), "disagree with its flags"},
		{"split past the path", mut(func(b []byte) { binary.LittleEndian.PutUint16(b[fileOffSplit:], 5) }), "splits its 4-byte path at 5"},
		{"split past the new path", mut(func(b []byte) { binary.LittleEndian.PutUint16(b[fileOffNewSplit:], 1) }), "splits its 0-byte new path at 1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var ev sensor.Event
			err := decodeFileIO(tc.b, &ev)
			if !errors.Is(err, ErrRecord) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want ErrRecord mentioning %q", err, tc.want)
			}
		})
	}
}
