// Package jsonw holds the allocation-free JSON appenders shared by the
// encoders in sink/. Strings from the kernel are raw bytes, not necessarily
// UTF-8: AppendString writes valid UTF-8 (I-JSON, RFC 7493) with U+FFFD for
// each invalid byte and reports it, so the encoder can give the exact bytes
// in base64 beside (AppendBase64; docs/schema.md, "Invalid UTF-8").
package jsonw

import (
	"encoding/base64"
	"encoding/binary"
	"strconv"
	"time"
	"unicode/utf8"
)

const hex = "0123456789abcdef"

// replacement is U+FFFD REPLACEMENT CHARACTER in UTF-8.
const replacement = "\uFFFD"

// AppendBase64 appends s's exact bytes in standard base64 (RFC 4648,
// padded) as a JSON string literal.
func AppendBase64(dst []byte, s string) []byte {
	dst = append(dst, '"')
	dst = base64.StdEncoding.AppendEncode(dst, []byte(s))
	return append(dst, '"')
}

// TimeLayout is RFC 3339, UTC, with a fixed nine-digit fraction so that
// events sort lexically and SIEM parsers see one shape.
const TimeLayout = "2006-01-02T15:04:05.000000000Z07:00"

// AppendString appends s as a JSON string literal. Control characters, DEL,
// U+2028 and U+2029 are escaped so a line never breaks and a terminal never
// interprets the value. Each byte that is not part of a valid UTF-8
// sequence (surrogate encodings included) is written as U+FFFD, so the
// output is always valid UTF-8 without lone surrogates, as I-JSON requires.
// It reports whether such bytes were present, so the caller can mark the
// field and keep its exact bytes (AppendBase64).
func AppendString(dst []byte, s string) ([]byte, bool) {
	dst = append(dst, '"')
	dst, invalid := AppendStringBody(dst, s)
	return append(dst, '"'), invalid
}

const (
	ones  = 0x0101010101010101
	highs = 0x8080808080808080
)

// plain8 reports whether none of the 8 bytes of s needs escaping: each is
// ASCII from 0x20 to 0x7e and neither '"' nor '\\'. Word-at-a-time tests
// (a byte below n: (x - n*ones) &^ x & highs); one that fires without
// cause only sends the bytes through the byte loop.
func plain8(s string) bool {
	x := binary.LittleEndian.Uint64([]byte(s[:8]))
	q, bs := x^('"'*ones), x^('\\'*ones)
	special := (x - 0x20*ones) &^ x // a byte below 0x20
	special |= x | (x + ones)       // a byte of 0x7f or above
	special |= (q - ones) &^ q      // a '"'
	special |= (bs - ones) &^ bs    // a '\\'
	return special&highs == 0
}

// AppendStringBody is AppendString without the surrounding quotes.
func AppendStringBody(dst []byte, s string) ([]byte, bool) {
	invalid := false
	start := 0
	for i := 0; i < len(s); {
		// Eight bytes at a time while none needs escaping: argv elements
		// and paths are mostly plain ASCII.
		for i+8 <= len(s) && plain8(s[i:i+8]) {
			i += 8
		}
		if i >= len(s) {
			break
		}
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != 0x7f {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, replacement...)
			invalid = true
			i++
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hex[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	return append(dst, s[start:]...), invalid
}

// AppendKey appends a constant, already-safe object key followed by a colon.
// A leading comma is added unless dst ends with '{' or '['.
func AppendKey(dst []byte, key string) []byte {
	dst = Comma(dst)
	dst = append(dst, '"')
	dst = append(dst, key...)
	return append(dst, '"', ':')
}

// Comma appends a separator unless dst is at the start of an object or array.
func Comma(dst []byte) []byte {
	if n := len(dst); n > 0 && dst[n-1] != '{' && dst[n-1] != '[' {
		dst = append(dst, ',')
	}
	return dst
}

// AppendUint appends an unsigned integer.
func AppendUint(dst []byte, v uint64) []byte { return strconv.AppendUint(dst, v, 10) }

// AppendInt appends a signed integer.
func AppendInt(dst []byte, v int64) []byte { return strconv.AppendInt(dst, v, 10) }

// AppendBool appends true or false.
func AppendBool(dst []byte, v bool) []byte { return strconv.AppendBool(dst, v) }

// AppendTime appends t as a quoted RFC 3339 UTC timestamp with nanoseconds.
func AppendTime(dst []byte, t time.Time) []byte {
	t = t.UTC()
	y, mo, d := t.Date()
	if y < 0 || y > 9999 {
		dst = append(dst, '"')
		dst = t.AppendFormat(dst, TimeLayout)
		return append(dst, '"')
	}
	// TimeLayout by hand: time.Format interprets its layout at every
	// call, and every event carries several times (its own, the start of
	// each process in it, the posture's).
	h, mi, sec := t.Clock()
	dst = append(dst, '"')
	dst = appendDigits(dst, y, 4)
	dst = appendDigits(append(dst, '-'), int(mo), 2)
	dst = appendDigits(append(dst, '-'), d, 2)
	dst = appendDigits(append(dst, 'T'), h, 2)
	dst = appendDigits(append(dst, ':'), mi, 2)
	dst = appendDigits(append(dst, ':'), sec, 2)
	dst = appendDigits(append(dst, '.'), t.Nanosecond(), 9)
	return append(dst, 'Z', '"')
}

// appendDigits appends v (non-negative) as exactly n decimal digits.
func appendDigits(dst []byte, v, n int) []byte {
	var b [9]byte
	for i := n - 1; i >= 0; i-- {
		b[i] = byte('0' + v%10)
		v /= 10
	}
	return append(dst, b[:n]...)
}

// TruncateUTF8 returns the longest prefix of s of at most n bytes that does
// not split a valid UTF-8 sequence, so bounding a value never manufactures
// an invalid byte.
func TruncateUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n
	for k := 0; k < utf8.UTFMax && cut > 0; k++ {
		if utf8.RuneStart(s[cut]) {
			break
		}
		cut--
	}
	// No rune start within UTFMax bytes: the bytes are invalid anyway and
	// cutting at n is as good as any.
	if !utf8.RuneStart(s[cut]) {
		return s[:n]
	}
	return s[:cut]
}

// AppendJoined appends parts joined by sep as one JSON string literal,
// escaped as AppendString does, without building the joined string.
func AppendJoined(dst []byte, parts []string, sep byte) ([]byte, bool) {
	invalid := false
	dst = append(dst, '"')
	for i, p := range parts {
		if i > 0 {
			dst = append(dst, sep)
		}
		var bad bool
		dst, bad = AppendStringBody(dst, p)
		invalid = invalid || bad
	}
	return append(dst, '"'), invalid
}

// AppendJoinedMax is AppendJoined within limit bytes of parts (separators
// not counted): the part that crosses the limit is cut on a rune boundary
// and the rest are left out. cut reports whether anything was.
func AppendJoinedMax(dst []byte, parts []string, sep byte, limit int) (out []byte, invalid, cut bool) {
	dst = append(dst, '"')
	total := 0
	for i, p := range parts {
		if total >= limit {
			cut = true
			break
		}
		if total+len(p) > limit {
			p = TruncateUTF8(p, limit-total)
			cut = true
		}
		total += len(p)
		if i > 0 {
			dst = append(dst, sep)
		}
		var bad bool
		dst, bad = AppendStringBody(dst, p)
		invalid = invalid || bad
	}
	return append(dst, '"'), invalid, cut
}
