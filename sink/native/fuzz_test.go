package native

import (
	"encoding/json"
	"testing"
	"unicode/utf8"

	"github.com/lineaged/lineaged/lineage/event"
	"github.com/lineaged/lineaged/sink/internal/jsonw"
	"github.com/lineaged/lineaged/sink/internal/schematest"
	"github.com/lineaged/lineaged/sink/internal/testevents"
	"github.com/lineaged/lineaged/sink/internal/v1obj"
)

// FuzzStringRoundTrip: any byte string encodes to valid UTF-8 JSON without
// lone surrogates (I-JSON), that decodes to the string with U+FFFD for each
// invalid byte, and is marked iff it is not UTF-8; the marked value's exact
// bytes come back from its base64 companion.
func FuzzStringRoundTrip(f *testing.F) {
	for _, s := range testevents.HostileStrings {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out, bad := jsonw.AppendString(nil, s)
		if err := schematest.IJSON(out); err != nil {
			t.Fatalf("%v: %q for %q", err, out, s)
		}
		if bad == utf8.ValidString(s) {
			t.Fatalf("marked=%v for %q", bad, s)
		}
		var got string
		if err := json.Unmarshal(out, &got); err != nil {
			t.Fatal(err)
		}
		if got != replaced(s) {
			t.Fatalf("round trip: %q -> %q -> %q", s, out, got)
		}
		var m v1obj.Marks
		b := append(m.Str([]byte{'{'}, "k", "", s), '}')
		b = append(m.AppendList(b[:len(b)-1]), '}')
		var ev struct {
			K   string
			Raw []struct{ Value, Base64 string } `json:"invalid_utf8_base64"`
		}
		if err := json.Unmarshal(b, &ev); err != nil {
			t.Fatalf("%v: %s", err, b)
		}
		if bad != (len(ev.Raw) == 1) {
			t.Fatalf("invalid_utf8_base64 %+v for %q", ev.Raw, s)
		}
		if bad {
			if raw := exactBytes(t, ev.Raw)[ev.K]; raw != s {
				t.Fatalf("exact bytes %q, want %q", raw, s)
			}
		}
	})
}

// FuzzArgv: hostile argv and bounds never produce a line that is not
// strict I-JSON.
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
		if err := schematest.IJSON(out); err != nil {
			t.Fatalf("%v: %q", err, out)
		}
	})
}
