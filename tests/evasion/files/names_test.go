//go:build linux && amd64

package files

import (
	"path/filepath"
	"runtime"
	"strconv"
	"testing"

	"github.com/lineaged/lineaged/sensor"
	"github.com/lineaged/lineaged/sensor/kernel"
)

// A sibling thread rewrites the name while unlink runs: the sensor reads
// the name at entry, the kernel copies it just after. Some records must
// say the name changed during the call; none may name a third file; and
// the same unlinks without a racer are never flagged (no false alarm).
func TestRootNameSwappedDuringCall(t *testing.T) {
	if runtime.NumCPU() < 2 {
		t.Skip("the racing writer needs a second CPU")
	}
	s, out := runSensor(t)
	dir := tempDir(t)
	decoy, victim := filepath.Join(dir, "decoy"), filepath.Join(dir, "victm")

	base := out.skippedNow()
	files, printed := member(t, s, out, "race-swap", dir)
	unlinks := ops(files, sensor.FileUnlink)
	calls, _ := strconv.Atoi(printed[0])
	recordsOrSkipped(t, s, out, base, len(unlinks), calls)
	changed, victims := 0, 0
	for _, f := range unlinks {
		if f.Path == victim {
			victims++
		}
		if f.Path != decoy && f.Path != victim {
			t.Errorf("unlink record names %s", describe(f))
		}
		if f.NameChanged {
			changed++
		}
		if f.NameUnreadable {
			t.Errorf("name unreadable in %s", describe(f))
		}
	}
	t.Logf("racing member: %d of %d unlinks flagged name_changed, %d named the second name; skipped program runs %v", changed, len(unlinks), victims, s.MissedRuns())
	if changed == 0 {
		t.Errorf("none of %d unlinks with a racing writer was flagged as a name changed during the call", len(unlinks))
	}

	base = out.skippedNow()
	files, _ = member(t, s, out, "no-race", dir)
	unlinks = ops(files, sensor.FileUnlink)
	recordsOrSkipped(t, s, out, base, len(unlinks), raceCalls)
	for _, f := range unlinks {
		if f.NameChanged || f.NameUnreadable || f.Path != decoy {
			t.Fatalf("no racer: %s", describe(f))
		}
	}
}

// Names on pages that are not resident at syscall entry (a file mapping
// never touched; one dropped with MADV_DONTNEED) cannot be read by the
// sensor there. The record names the file, read at exit, and says the
// name was unreadable at entry.
func TestRootNameOnNonResidentPage(t *testing.T) {
	s, out := runSensor(t)
	dir := tempDir(t)

	files, _ := member(t, s, out, "unreadable", dir)
	unlinks, renames := ops(files, sensor.FileUnlink), ops(files, sensor.FileRename)
	if len(unlinks) != 1 || len(renames) != 1 {
		t.Fatalf("%d unlink and %d rename records, want one each", len(unlinks), len(renames))
	}
	if u := unlinks[0]; u.Path != filepath.Join(dir, "target") || !u.NameUnreadable || u.NameChanged || u.Result != 0 {
		t.Errorf("unlink through an untouched mapping: %s, want path %s flagged unreadable", describe(u), filepath.Join(dir, "target"))
	}
	r := renames[0]
	if r.Path != filepath.Join(dir, "from") || r.NewPath != filepath.Join(dir, "to") || !r.NameUnreadable || r.NameChanged || r.Result != 0 {
		t.Errorf("rename through a dropped page: %s, want %s -> %s flagged unreadable", describe(r), filepath.Join(dir, "from"), filepath.Join(dir, "to"))
	}
}

// recordsOrSkipped checks that a member's got records of its want calls
// are all there, or that each missing one is covered by a skipped
// file-program run the sensor reported: where tracepoint callbacks can be
// preempted (7.3), the kernel skips a run of a program already running on
// that CPU, and the sensor reports it as sensor.loss where "skipped".
// base is the skipped runs reported before the member started.
func recordsOrSkipped(t *testing.T, s *kernel.Sensor, out *records, base uint64, got, want int) {
	t.Helper()
	missing := want - got
	switch {
	case missing < 0:
		t.Fatalf("%d records, the member made %d calls", got, want)
	case missing > 0:
		skipped := out.skippedAtLeast(base+uint64(missing)) - base
		if skipped < uint64(missing) {
			t.Fatalf("%d records, the member made %d calls, and sensor.loss reported %d skipped file-program runs; sensor counters %+v, skipped program runs %v",
				got, want, skipped, s.Stats(), s.MissedRuns())
		}
		t.Logf("%d of %d records missing, covered by %d reported skipped runs", missing, want, skipped)
	}
}
