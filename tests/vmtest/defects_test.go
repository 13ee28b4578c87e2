package main

import (
	"os"
	"strings"
	"testing"
)

// Every known defect is described in docs/kernels.md, under "Known
// defects", with its test name and the series it fails on.
func TestKnownDefectsDocumented(t *testing.T) {
	b, err := os.ReadFile("../../docs/kernels.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	i := strings.Index(doc, "\n## Known defects\n")
	if i < 0 {
		t.Fatal(`docs/kernels.md has no "## Known defects" section`)
	}
	section := doc[i+1:]
	if j := strings.Index(section[3:], "\n## "); j >= 0 {
		section = section[:j+3]
	}
	for _, d := range knownDefects() {
		if d.Test == "" || len(d.Series) == 0 || d.Reason == "" {
			t.Errorf("incomplete known defect %+v", d)
		}
		row := ""
		for _, line := range strings.Split(section, "\n") {
			if strings.HasPrefix(line, "| `"+d.Test+"`") {
				row = line
			}
		}
		if row == "" {
			t.Errorf("docs/kernels.md Known defects has no table row for `%s`", d.Test)
			continue
		}
		for _, s := range d.Series {
			if !strings.Contains(row, s) {
				t.Errorf("docs/kernels.md row %q lacks series %s", row, s)
			}
		}
	}
}

func TestGuestSeries(t *testing.T) {
	for _, c := range []struct{ uname, selector, want string }{
		{"5.10.0-46-cloud-amd64", "5.10", "5.10"},
		{"6.1.0-56-cloud-amd64", "6.1-nolsm", "6.1"},
		{"7.3.4+deb13-cloud-amd64", "newest", "7.3"},
		{"6.18.44-fc-v1098", "", "6.18"},
		{"", "6.12-nolsm", "6.12"},
		{"", "newest", ""},
	} {
		if got := guestSeries(&guestRun{Uname: c.uname, Selector: c.selector}); got != c.want {
			t.Errorf("guestSeries(%q, %q) = %q, want %q", c.uname, c.selector, got, c.want)
		}
	}
}

// Known defects match a test by its go test name in any binary, subtests
// included, and only on the series listed.
func TestApplyKnownDefects(t *testing.T) {
	g := &guestRun{
		Uname: "6.1.0-56-cloud-amd64",
		Results: map[string]string{
			"sensor: TestA":         statusFail,
			"sensor_kernel: TestA":  statusFail, // the same test after a package move
			"smoke: TestB/sub":      statusPass,
			"smoke: TestB/other":    statusFail,
			"sensor: TestOnlyOn510": statusFail,
			"net: TestRacy":         statusPass,
			"net: TestRacy2":        statusFail,
		},
		Order:   []string{"sensor: TestA", "sensor_kernel: TestA", "smoke: TestB/sub", "smoke: TestB/other", "sensor: TestOnlyOn510", "net: TestRacy", "net: TestRacy2"},
		Defects: map[string]string{},
		Why:     map[string]string{},
	}
	applyKnownDefects(g, []knownDefect{
		{Test: "TestA", Series: []string{"6.1"}, Reason: "a"},
		{Test: "TestB/sub", Series: []string{"5.10", "6.1"}, Reason: "b"},
		{Test: "TestOnlyOn510", Series: []string{"5.10"}, Reason: "c"},
		{Test: "TestRacy", Series: []string{"6.1"}, Reason: "d", Intermittent: true},
		{Test: "TestRacy2", Series: []string{"6.1"}, Reason: "e", Intermittent: true},
	})
	for name, want := range map[string]string{
		"sensor: TestA":         statusXFail,
		"sensor_kernel: TestA":  statusXFail,
		"smoke: TestB/sub":      statusXPass,
		"smoke: TestB/other":    statusFail,
		"sensor: TestOnlyOn510": statusFail,
		"net: TestRacy":         statusPass, // intermittent: a pass is no news
		"net: TestRacy2":        statusXFail,
	} {
		if got := g.Results[name]; got != want {
			t.Errorf("%s = %s, want %s", name, got, want)
		}
	}
	if g.Defects["smoke: TestB/sub"] != "b" || len(g.Defects) != 5 || len(g.Problems) != 0 {
		t.Errorf("defects %v, problems %q", g.Defects, g.Problems)
	}
}
