package kafka

import (
	"bytes"
	"testing"
)

// FuzzParseRecord: spool records are decoded without panicking, and a
// record that parses carries the value as its tail.
func FuzzParseRecord(f *testing.F) {
	f.Add([]byte{1, 0, 0, 0, 0, 0, 0, 0, 0, 3, 'a', 'b', 'c', 1, 'h', 0, '{', '}'})
	f.Add([]byte{1, 1, 2, 3, 4, 5, 6, 7, 8, 0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := parseRecord(b)
		if err != nil {
			return
		}
		if !bytes.HasSuffix(b, r.value) || len(r.schema)+len(r.host)+len(r.key)+len(r.value) > len(b) {
			t.Fatalf("fields outside the record: %+v", r)
		}
	})
}
