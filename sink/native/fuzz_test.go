package native

import (
	"encoding/json"
	"testing"
	"unicode/utf8"

	"github.com/lineaged/lineaged/lineage/event"
	"github.com/lineaged/lineaged/sink/internal/jsonw"
	"github.com/lineaged/lineaged/sink/internal/testevents"
)

// FuzzStringRoundTrip: any byte string encodes to valid UTF-8 JSON that
// decodes back to exactly the same bytes, and is marked iff it is not UTF-8.
func FuzzStringRoundTrip(f *testing.F) {
	for _, s := range []string{"", "plain", "\xff", "a\x00b\n\x1b", "\xed\xa0\x80", "\u2028", "é\xc3", "\"\\"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out, bad := jsonw.AppendString(nil, s)
		if !utf8.Valid(out) || !json.Valid(out) {
			t.Fatalf("invalid output %q for %q", out, s)
		}
		if bad == utf8.ValidString(s) {
			t.Fatalf("marked=%v for %q", bad, s)
		}
		if got := decodeLiteral(t, string(out)); got != s {
			t.Fatalf("round trip: %q -> %q -> %q", s, out, got)
		}
	})
}

// FuzzArgv: hostile argv and bounds never produce invalid JSON.
func FuzzArgv(f *testing.F) {
	f.Add("sh", "-c\xff", 3, 10)
	f.Fuzz(func(t *testing.T, a, b string, maxArgs, maxArg int) {
		ev := testevents.New(event.KindProcessExec, 1, "s")
		ev.Process.Argv = []string{a, b, a + b}
		enc := Encoder{MaxArgs: maxArgs % 8, MaxArgBytes: maxArg % 64}
		out, err := enc.Append(nil, ev)
		if err != nil {
			t.Fatal(err)
		}
		if !json.Valid(out) || !utf8.Valid(out) {
			t.Fatalf("invalid output %q", out)
		}
	})
}
