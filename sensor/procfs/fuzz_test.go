package procfs

import (
	"strings"
	"testing"
)

// FuzzParse feeds arbitrary stat/status/cmdline/cgroup contents to the
// parsers: they may refuse, never panic, and a parsed stat keeps its
// invariants.
func FuzzParse(f *testing.F) {
	f.Add([]byte(statLine(42, "a) (b", 1, 34816, 0, 99)), []byte(statusTmpl))
	f.Add([]byte("1 (x"), []byte("Uid:\t1\nGid:\t2"))
	f.Add([]byte("1 () S 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 -5"), []byte("Uid:\t-1\t0\nGid:\t0\t0\n"))
	f.Fuzz(func(t *testing.T, stat, status []byte) {
		var p Proc
		if err := parseStat(stat, &p); err == nil {
			if p.Key.StartNs != p.StartTicks*TicksToNs || strings.Count(string(stat), "(") == 0 {
				t.Fatalf("inconsistent parse of %q: %+v", stat, p)
			}
		}
		_ = parseStatus(status, &p)
		_ = SplitCmdline(stat)
		_ = parseCgroup(status)
		_ = TTYName(p.TTYNr)
	})
}
