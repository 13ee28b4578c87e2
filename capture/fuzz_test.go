package capture

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

// FuzzReader: whatever the bytes, the reader ends with io.EOF or one of its
// errors, never panics or loops, and with SkipCorrupt never returns a
// corrupt error.
func FuzzReader(f *testing.F) {
	good, starts := build(f, 40, 10)
	f.Add(good)
	f.Add(good[:starts[2]+7])
	flipped := bytes.Clone(good)
	flipped[starts[1]+20] ^= 0x55
	f.Add(flipped)
	f.Add([]byte("LNGDCAP\x00\x02\x00"))
	f.Add([]byte("not a capture"))
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, skip := range []bool{false, true} {
			r, err := NewReader(bytes.NewReader(b), ReaderConfig{SkipCorrupt: skip})
			if err != nil {
				var ve *VersionError
				var pe *PositionError
				if !errors.Is(err, ErrNotCapture) && !errors.As(err, &ve) && !errors.As(err, &pe) {
					t.Fatalf("header error of unknown kind: %v", err)
				}
				continue
			}
			for i := 0; ; i++ {
				if i > len(b)+1 {
					t.Fatal("more records than bytes")
				}
				_, err := r.Next()
				if err == nil {
					continue
				}
				if errors.Is(err, io.EOF) {
					break
				}
				if skip && errors.Is(err, ErrCorrupt) {
					t.Fatalf("corrupt error while skipping: %v", err)
				}
				if !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrTruncated) {
					t.Fatalf("error of unknown kind: %v", err)
				}
				break
			}
			r.Close()
		}
	})
}
