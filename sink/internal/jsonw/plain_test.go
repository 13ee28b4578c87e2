package jsonw

import "testing"

// plain8 against the byte-by-byte definition: every byte value at every
// position of otherwise plain words, and next to the other special bytes
// (borrows and carries cross byte boundaries in the word-at-a-time tests).
func TestPlain8(t *testing.T) {
	plain := func(c byte) bool { return c >= 0x20 && c < 0x7f && c != '"' && c != '\\' }
	for _, fill := range []byte{'a', ' ', '~', '!', '#', '[', ']', '"', 0x1f, 0x80} {
		for pos := 0; pos < 8; pos++ {
			for v := 0; v < 256; v++ {
				w := []byte{fill, fill, fill, fill, fill, fill, fill, fill}
				w[pos] = byte(v)
				if got, want := plain8(string(w)), plain(byte(v)) && plain(fill); got != want {
					t.Fatalf("plain8(%q) = %v, want %v", w, got, want)
				}
				if pos < 7 {
					for _, n := range []byte{0, 0x1f, 0x20, 0x21, 0x22, 0x5b, 0x5c, 0x5d, 0x7e, 0x7f, 0x80, 0xff} {
						w[pos+1] = n
						want := plain(byte(v)) && plain(n) && plain(fill)
						if got := plain8(string(w)); got != want {
							t.Fatalf("plain8(%q) = %v, want %v", w, got, want)
						}
					}
				}
			}
		}
	}
}

// The fast path changes nothing of what is written: strings with each
// special byte at each offset around word boundaries.
func TestAppendStringBodyAroundWords(t *testing.T) {
	slow := func(s string) string {
		var out []byte
		for i := 0; i < len(s); i++ {
			out, _ = AppendStringBody(out, s[i:i+1])
		}
		return string(out)
	}
	for _, sp := range []string{"\"", "\\", "\n", "\x00", "\x7f", "é", "\xff", "\u2028"} {
		for n := 0; n < 20; n++ {
			for at := 0; at <= n; at++ {
				s := make([]byte, 0, n+4)
				for i := 0; i < n; i++ {
					if i == at {
						s = append(s, sp...)
					}
					s = append(s, byte('a'+i%26))
				}
				got, _ := AppendStringBody(nil, string(s))
				// Multi-byte runes cannot be split for the slow path.
				if len(sp) == 1 {
					if want := slow(string(s)); string(got) != want {
						t.Fatalf("%q: %q, want %q", s, got, want)
					}
				}
				if len(got) < len(s) {
					t.Fatalf("%q: %q is shorter than its input", s, got)
				}
			}
		}
	}
}
