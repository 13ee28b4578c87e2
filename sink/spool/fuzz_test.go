package spool

import (
	"bytes"
	"context"
	"encoding/binary"
	"hash/crc32"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// FuzzRecover: whatever bytes a segment holds, Open recovers without
// panicking and every record it then returns passed its checksum.
func FuzzRecover(f *testing.F) {
	var good []byte
	for _, p := range [][]byte{[]byte("one"), []byte("two"), {}} {
		var h [8]byte
		binary.LittleEndian.PutUint32(h[0:], uint32(len(p)))
		binary.LittleEndian.PutUint32(h[4:], crc32.Checksum(p, castagnoli))
		good = append(append(good, h[:]...), p...)
	}
	f.Add(good)
	f.Add(good[:len(good)-3])
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, seg []byte) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, segName(0)), seg, 0o600); err != nil {
			t.Fatal(err)
		}
		s, err := Open(Options{Dir: dir, MaxBytes: 1 << 20, Log: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		n := s.Stats().Pending
		if n == 0 {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		var got uint64
		for got < n {
			recs, err := s.Next(ctx, 100, 1<<20)
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range recs {
				if !bytes.Contains(seg, r.Data) {
					t.Fatalf("record %d not from the segment", r.Offset)
				}
			}
			got += uint64(len(recs))
		}
	})
}
