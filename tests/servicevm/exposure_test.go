package main

import (
	"io"
	"os"
	"path/filepath"
	"testing"
)

// The score check fails a guest score above the recorded one, or none.
func TestExposureAtMost(t *testing.T) {
	dir := t.TempDir()
	doc := filepath.Join(dir, "operations.md")
	if err := os.WriteFile(doc, []byte("the exposure level is **4.1 OK** with the unit\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	documented, err := documentedExposure(doc)
	if err != nil || documented != 4.1 {
		t.Fatalf("documentedExposure = %v, %v; want 4.1", documented, err)
	}
	for _, c := range []struct {
		results string
		want    bool
	}{
		{"SERVICE-SECURITY 4.1\r\n", true},
		{"SERVICE-INFO x\nSERVICE-SECURITY 3.9\n", true},
		{"SERVICE-SECURITY 4.2\n", false},
		{"SERVICE-SECURITY \n", false},
		{"SERVICE-DONE\n", false},
	} {
		res := filepath.Join(dir, "results.log")
		if err := os.WriteFile(res, []byte(c.results), 0o600); err != nil {
			t.Fatal(err)
		}
		if got := exposureAtMost(io.Discard, res, documented); got != c.want {
			t.Errorf("results %q: %v, want %v", c.results, got, c.want)
		}
	}
	if err := os.WriteFile(doc, []byte("no score here\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := documentedExposure(doc); err == nil {
		t.Errorf("a document without a score was accepted")
	}
}
