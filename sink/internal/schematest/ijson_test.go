package schematest

import "testing"

func TestIJSONRejects(t *testing.T) {
	for _, bad := range []string{
		`{"a":"\udcff"}`,         // lone low surrogate
		`{"a":"\ud800x"}`,        // lone high surrogate
		`{"a":"\ud800\u0041"}`,   // high surrogate without its low half
		"{\"a\":\"\xff\"}",       // not UTF-8
		`{"a":1,"a":2}`,          // duplicate member
		`{"o":{"b":1,"b":1}}`,    // duplicate member, nested
		`{"n":9007199254740993}`, // beyond 2^53-1
		`{"n":1e999}`,            // not a finite double
		`{"a":`,                  // not JSON
	} {
		if err := IJSON([]byte(bad)); err == nil {
			t.Errorf("IJSON accepted %q", bad)
		}
	}
	for _, good := range []string{
		`{"a":"\ud83d\ude00","b":"\ufffd","c":[1,2,{"a":1}],"n":9007199254740991}`,
		"{\"a\":\"caf\u00e9 \ufffd\"}",
	} {
		if err := IJSON([]byte(good)); err != nil {
			t.Errorf("IJSON rejected %q: %v", good, err)
		}
	}
	if n, err := PythonIJSON([][]byte{[]byte(`{"a":"\ud83d\ude00"}`)}); err != nil || n != 1 {
		t.Errorf("python rejected a valid line: %d %v", n, err)
	}
	if _, err := PythonIJSON([][]byte{[]byte(`{"a":"\udcff"}`)}); err == nil {
		t.Error("python accepted a lone surrogate")
	}
}
