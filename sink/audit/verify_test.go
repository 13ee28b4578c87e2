package audit

import (
	"bytes"
	"crypto"
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lineaged/lineaged/lineage/event"
	"github.com/lineaged/lineaged/sink/native"
	"github.com/lineaged/lineaged/sink/ocsf"
)

var testHost = &event.Host{Hostname: "h", MachineID: "0f4c1e2a9b8d4c7e8f6a5b4c3d2e1f00", BootID: "b", OS: "linux", Kernel: "6.18"}

// sensorRun writes the lines of one run through a real native encoder and
// the chain: sensor.start, events, a checkpoint every cpEvery events, and
// (if stop) sensor.stop and the final checkpoint.
type sensorRun struct {
	t        *testing.T
	dir      string
	instance string
	signer   *Signer
	chain    *Chain
	enc      Encoder
	seq      uint64
	lines    [][]byte
	prev     Previous
}

func startRun(t *testing.T, dir, instance string) *sensorRun {
	t.Helper()
	s, prev, err := Open(dir, AlgEd25519)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(instance); err != nil {
		t.Fatal(err)
	}
	c := NewChain(instance, prev.Checkpoint, s)
	r := &sensorRun{t: t, dir: dir, instance: instance, signer: s, chain: c, enc: c.Wrap(native.Encoder{}), prev: prev}
	end := ""
	if prev.Instance != "" {
		end = event.PreviousEndStop
		if prev.Crashed {
			end = event.PreviousEndCrash
		}
	}
	r.emit(&event.Event{Kind: event.KindSensorStart, Sensor: &event.Sensor{Version: "t", InstanceID: instance, PreviousInstanceID: prev.Instance, PreviousEnd: end}})
	return r
}

func (r *sensorRun) emit(ev *event.Event) []byte {
	r.t.Helper()
	r.seq++
	ev.Schema, ev.Seq = event.Schema, r.seq
	ev.Time = time.Date(2026, 12, 3, 6, 0, 0, int(r.seq), time.UTC)
	ev.EventID = event.NewEventID(ev.Time, r.instance, r.seq)
	if ev.Host == nil && ev.Kind != event.KindSensorCheckpoint {
		ev.Host = testHost
	}
	b, err := r.enc.Append(nil, ev)
	if err != nil {
		r.t.Fatal(err)
	}
	if err := r.chain.Err(); err != nil {
		r.t.Fatal(err)
	}
	r.lines = append(r.lines, b)
	return b
}

func (r *sensorRun) exec(n int) {
	for i := 0; i < n; i++ {
		r.emit(&event.Event{Kind: event.KindProcessExec, Process: &event.Process{
			ExecID: fmt.Sprintf("%032x", r.seq), PID: uint32(1000 + r.seq), Exe: "/usr/bin/true", Argv: []string{"true", fmt.Sprint(i)},
		}})
	}
}

func (r *sensorRun) checkpoint(reason string) {
	r.emit(&event.Event{Kind: event.KindSensorCheckpoint, Checkpoint: &event.Checkpoint{Reason: reason}})
}

func (r *sensorRun) stop() {
	r.emit(&event.Event{Kind: event.KindSensorStop, Sensor: &event.Sensor{Version: "t", InstanceID: r.instance}})
	r.checkpoint(event.CheckpointStop)
	if err := r.signer.Stop(); err != nil {
		r.t.Fatal(err)
	}
}

func rootKey(t *testing.T, dir string) []crypto.PublicKey {
	t.Helper()
	s, _, err := Open(dir, AlgEd25519)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := s.Public(false)
	if err != nil {
		t.Fatal(err)
	}
	return []crypto.PublicKey{pub}
}

func verify(t *testing.T, keys []crypto.PublicKey, lines [][]byte) *Report {
	t.Helper()
	v, err := NewVerifier(keys)
	if err != nil {
		t.Fatal(err)
	}
	for i, l := range lines {
		v.Add("stream", i+1, l)
	}
	rep := v.Finish()
	for _, f := range rep.Findings {
		t.Log(f)
	}
	return rep
}

// wantFinding checks the report's status and that a finding of status st
// names the event with seq (st Verified: a note, whatever the status).
func wantFinding(t *testing.T, rep *Report, st Status, seq uint64, words string) {
	t.Helper()
	if st != Verified && rep.Status() != st {
		t.Fatalf("status %v, want %v", rep.Status(), st)
	}
	name := fmt.Sprintf("seq %d (", seq)
	for _, f := range rep.Findings {
		if f.Status == st && strings.HasPrefix(f.Event, name) && strings.Contains(f.Message, words) {
			return
		}
	}
	t.Fatalf("no %v finding naming seq %d with %q", st, seq, words)
}

func cleanStream(t *testing.T) (string, [][]byte) {
	dir := t.TempDir()
	r := startRun(t, dir, "run1")
	r.exec(5)
	r.checkpoint(event.CheckpointInterval)
	r.exec(5)
	r.stop()
	return dir, r.lines
}

func clone(lines [][]byte) [][]byte {
	out := make([][]byte, len(lines))
	for i, l := range lines {
		out[i] = bytes.Clone(l)
	}
	return out
}

func TestVerifyCleanStream(t *testing.T) {
	dir, lines := cleanStream(t)
	rep := verify(t, rootKey(t, dir), lines)
	if rep.Status() != Verified || rep.Covered != len(lines) || rep.Checkpoints != 2 {
		t.Fatalf("status %v, covered %d of %d, checkpoints %d", rep.Status(), rep.Covered, len(lines), rep.Checkpoints)
	}
	// Line order is not evidence: Kafka partitions interleave.
	shuffled := clone(lines)
	for i, j := 0, len(shuffled)-1; i < j; i, j = i+1, j-1 {
		shuffled[i], shuffled[j] = shuffled[j], shuffled[i]
	}
	if rep := verify(t, rootKey(t, dir), shuffled); rep.Status() != Verified {
		t.Fatalf("shuffled lines: %v", rep.Status())
	}
	// A duplicate (Kafka retry) is not a defect.
	if rep := verify(t, rootKey(t, dir), append(clone(lines), lines[3])); rep.Status() != Verified {
		t.Fatalf("duplicate line: %v", rep.Status())
	}
}

func TestVerifyEditedField(t *testing.T) {
	dir, lines := cleanStream(t)
	lines = clone(lines)
	lines[3] = bytes.Replace(lines[3], []byte(`/usr/bin/true`), []byte(`/usr/bin/nope`), 1)
	wantFinding(t, verify(t, rootKey(t, dir), lines), Tampered, 4, "edited")
}

func TestVerifyDeletedEvent(t *testing.T) {
	dir, lines := cleanStream(t)
	lines = append(clone(lines[:3]), lines[4:]...) // seq 4 removed
	rep := verify(t, rootKey(t, dir), lines)
	wantFinding(t, rep, Tampered, 5, "missing")
	wantFinding(t, rep, Tampered, 5, "broken link")
}

func TestVerifyReorderedPair(t *testing.T) {
	dir, lines := cleanStream(t)
	lines = clone(lines)
	// Events 3 and 4 swap places in the sequence: each takes the other's
	// seq (the order a reader reconstructs from).
	a, b := lines[2], lines[3]
	a2 := bytes.Replace(a, []byte(`"seq":3,`), []byte(`"seq":4,`), 1)
	b2 := bytes.Replace(b, []byte(`"seq":4,`), []byte(`"seq":3,`), 1)
	a2 = bytes.Replace(a2, []byte(`"seq":3,"prev"`), []byte(`"seq":4,"prev"`), 1)
	b2 = bytes.Replace(b2, []byte(`"seq":4,"prev"`), []byte(`"seq":3,"prev"`), 1)
	lines[2], lines[3] = b2, a2
	rep := verify(t, rootKey(t, dir), lines)
	wantFinding(t, rep, Tampered, 3, "edited")
	wantFinding(t, rep, Tampered, 4, "edited")
}

func TestVerifyInsertedEvent(t *testing.T) {
	dir, lines := cleanStream(t)
	// A well-formed event with a correct hash, chained after seq 3 and
	// given seq 4: the real seq 4 is then a second line with that seq and
	// the forged one forks the chain.
	r := &sensorRun{t: t, instance: "run1"}
	r.chain = NewChain("run1", entryHash(t, lines[2]), nil)
	r.enc = r.chain.Wrap(native.Encoder{})
	r.seq = 3
	r.exec(1)
	forged := r.lines[0]
	rep := verify(t, rootKey(t, dir), append(clone(lines), forged))
	wantFinding(t, rep, Tampered, 4, "same seq")

	// Inserted with a new seq past the end of the run, linked to the
	// middle: it forks the chain.
	r.seq = 99
	r.lines = nil
	r.chain = NewChain("run1", entryHash(t, lines[5]), nil)
	r.enc = r.chain.Wrap(native.Encoder{})
	r.exec(1)
	rep = verify(t, rootKey(t, dir), append(clone(lines), r.lines[0]))
	wantFinding(t, rep, Tampered, 100, "inserted")
}

func entryHash(t *testing.T, line []byte) [sha256.Size]byte {
	t.Helper()
	e, err := parseLine(line)
	if err != nil {
		t.Fatal(err)
	}
	return e.hash
}

func TestVerifyForgedCheckpoint(t *testing.T) {
	dir, lines := cleanStream(t)
	// The attacker has a key of their own (another state directory) and
	// re-signs the first checkpoint (seq 7) after changing nothing else.
	other, _, err := Open(t.TempDir(), AlgEd25519)
	if err != nil {
		t.Fatal(err)
	}
	e, err := parseLine(lines[6])
	if err != nil || e.sig == nil {
		t.Fatalf("line 7 is not a checkpoint: %v", err)
	}
	sig, err := other.sign(e.hash)
	if err != nil {
		t.Fatal(err)
	}
	lines = clone(lines)
	i := bytes.LastIndex(lines[6], []byte(sigKey))
	lines[6] = append(append(append(lines[6][:i:i], sigKey...), sig...), `"}}`...)
	wantFinding(t, verify(t, rootKey(t, dir), lines), Tampered, 7, "bad checkpoint signature")

	// Signing the whole checkpoint anew under the attacker's key id is
	// caught by the key the previous epoch announced (here: the root).
	id, _ := KeyID(other.key.Public())
	forged := bytes.Replace(lines[6], []byte(e.cp.KeyID), []byte(id), 1)
	lines[6] = resign(t, forged, other)
	wantFinding(t, verify(t, rootKey(t, dir), lines), Tampered, 7, "neither trusted")
}

// resign recomputes a line's chain hash and signs it with s.
func resign(t *testing.T, line []byte, s *Signer) []byte {
	t.Helper()
	i := bytes.LastIndex(line, []byte(hashKey))
	body := append(bytes.Clone(line[:i+len(hashKey)]), zeros[:]...)
	body = append(body, `"}}`...)
	sum := sha256.Sum256(body)
	sig, err := s.sign(sum)
	if err != nil {
		t.Fatal(err)
	}
	out := append(bytes.Clone(line[:i+len(hashKey)]), fmt.Sprintf("%x", sum)...)
	out = append(append(append(out, `"`+sigKey...), sig...), `"}}`...)
	return out
}

func TestVerifyTruncatedTail(t *testing.T) {
	dir, lines := cleanStream(t)
	// Cut after seq 10: the events after the first checkpoint are there
	// but no checkpoint covers them.
	rep := verify(t, rootKey(t, dir), clone(lines[:10]))
	wantFinding(t, rep, Unverified, 8, "truncated tail")
	if rep.Covered != 7 {
		t.Fatalf("covered %d, want 7", rep.Covered)
	}
}

func TestVerifyAccountedLoss(t *testing.T) {
	dir := t.TempDir()
	r := startRun(t, dir, "run1")
	r.exec(6) // seq 2..7
	// seq 4..6 are dropped after they were chained (the Kafka spool),
	// and reported with their range.
	r.emit(&event.Event{Kind: event.KindSensorLoss, Loss: &event.Loss{Where: "kafka-spool", Of: "events dropped: spool full", Count: 3, FirstSeq: 4, LastSeq: 6}})
	r.exec(2)
	r.stop()
	lines := append(clone(r.lines[:3]), r.lines[6:]...)
	rep := verify(t, rootKey(t, dir), lines)
	if rep.Status() != Verified || rep.Covered != len(lines) {
		t.Fatalf("status %v, covered %d of %d", rep.Status(), rep.Covered, len(lines))
	}
	// The checkpoint counts the loss.
	last, _ := parseLine(lines[len(lines)-1])
	if last.cp == nil || last.cp.Loss["kafka-spool"] != 3 {
		t.Fatalf("checkpoint loss %+v", last.cp)
	}
	// The same gap without its report is removal.
	noReport := keepLines(lines, func(l []byte) bool { return !bytes.Contains(l, []byte(`"sensor.loss"`)) })
	rep = verify(t, rootKey(t, dir), noReport)
	if rep.Status() != Tampered {
		t.Fatalf("gap without report: %v", rep.Status())
	}
}

func keepLines(lines [][]byte, keep func([]byte) bool) [][]byte {
	var out [][]byte
	for _, l := range lines {
		if keep(l) {
			out = append(out, l)
		}
	}
	return out
}

func TestVerifyAcrossRestart(t *testing.T) {
	dir := t.TempDir()
	r1 := startRun(t, dir, "run1")
	r1.exec(3)
	r1.stop()
	r2 := startRun(t, dir, "run2")
	if r2.prev.Instance != "run1" || r2.prev.Crashed {
		t.Fatalf("previous run %+v", r2.prev)
	}
	r2.exec(3)
	r2.stop()
	all := append(clone(r1.lines), r2.lines...)
	rep := verify(t, rootKey(t, dir), all)
	if rep.Status() != Verified || rep.Covered != len(all) || rep.Runs != 2 {
		t.Fatalf("status %v covered %d of %d runs %d", rep.Status(), rep.Covered, len(all), rep.Runs)
	}
	// Without run1, run2 cannot be tied to the root key's epoch: its
	// checkpoint's key was announced by run1's.
	if rep := verify(t, rootKey(t, dir), clone(r2.lines)); rep.Status() != Tampered {
		t.Fatalf("run2 alone: %v", rep.Status())
	}
	// A run removed between two others is named.
	r3 := startRun(t, dir, "run3")
	r3.exec(1)
	r3.stop()
	rep = verify(t, rootKey(t, dir), append(clone(r1.lines), r3.lines...))
	wantFinding(t, rep, Tampered, 1, "between runs")
}

func TestVerifyCrashIsReported(t *testing.T) {
	dir := t.TempDir()
	r1 := startRun(t, dir, "run1")
	r1.exec(2)
	r1.checkpoint(event.CheckpointInterval)
	r1.exec(2) // then killed: no stop, no final checkpoint
	r2 := startRun(t, dir, "run2")
	if !r2.prev.Crashed || !bytes.Contains(r2.lines[0], []byte(`"previous_end":"crash"`)) {
		t.Fatalf("sensor.start after a crash: %s", r2.lines[0])
	}
	r2.stop()
	rep := verify(t, rootKey(t, dir), append(clone(r1.lines), r2.lines...))
	wantFinding(t, rep, Unverified, 5, "not covered")
	wantFinding(t, rep, Verified, 1, "a crash")
}

func TestStateFileModesAndErasure(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "audit")
	r := startRun(t, dir, "run1")
	before, err := os.ReadFile(filepath.Join(dir, StateFile))
	if err != nil {
		t.Fatal(err)
	}
	r.checkpoint(event.CheckpointInterval)
	after, err := os.ReadFile(filepath.Join(dir, StateFile))
	if err != nil {
		t.Fatal(err)
	}
	keyOf := func(b []byte) string {
		i := bytes.Index(b, []byte(`"key":"`))
		j := bytes.Index(b[i+7:], []byte(`"`))
		return string(b[i+7 : i+7+j])
	}
	if keyOf(before) == keyOf(after) {
		t.Fatal("the epoch's key was not replaced after its checkpoint")
	}
	for _, p := range []string{dir, filepath.Join(dir, StateFile)} {
		st, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		want := os.FileMode(0o600)
		if st.IsDir() {
			want = 0o700
		}
		if st.Mode().Perm() != want {
			t.Fatalf("%s: mode %v, want %v", p, st.Mode().Perm(), want)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, StateFile+".new")); !os.IsNotExist(err) {
		t.Fatalf("temporary state left: %v", err)
	}
}

// A stream whose first file is gone verifies with the checkpoint copy: the
// copy's checkpoints tie the remaining events to the root key.
func TestVerifyWithCheckpointCopy(t *testing.T) {
	dir := t.TempDir()
	var copyBuf bytes.Buffer
	r := startRun(t, dir, "run1")
	r.chain.CopyCheckpoints(CopyTo(&copyBuf))
	r.exec(4)
	r.checkpoint(event.CheckpointRotation) // seq 6: the end of the first file
	r.exec(4)
	r.stop()
	second := clone(r.lines[6:]) // the first file (seq 1..6) is deleted
	// Without the copy the second file's checkpoint key is unknown.
	if rep := verify(t, rootKey(t, dir), second); rep.Status() != Tampered {
		t.Fatalf("without the copy: %v", rep.Status())
	}
	copies := bytes.Split(bytes.TrimSpace(copyBuf.Bytes()), []byte("\n"))
	if len(copies) != 2 {
		t.Fatalf("%d checkpoint copies, want 2", len(copies))
	}
	rep := verify(t, rootKey(t, dir), append(second, copies...))
	if rep.Status() != Verified {
		t.Fatalf("with the copy: %v", rep.Status())
	}
	// An event removed after the head is still caught.
	cut := append(clone(second[:2]), second[3:]...)
	if rep := verify(t, rootKey(t, dir), append(cut, copies...)); rep.Status() != Tampered {
		t.Fatalf("removal with the copy: %v", rep.Status())
	}
}

// The OCSF stream has its own chain and verifies the same way, an
// accounted loss included.
func TestVerifyOCSFStream(t *testing.T) {
	dir := t.TempDir()
	s, _, err := Open(dir, AlgEd25519)
	if err != nil {
		t.Fatal(err)
	}
	c := NewChain("run1", Zero, s)
	r := &sensorRun{t: t, instance: "run1", signer: s, chain: c, enc: c.Wrap(ocsf.Encoder{ProductVersion: "t"})}
	r.emit(&event.Event{Kind: event.KindSensorStart, Sensor: &event.Sensor{Version: "t", InstanceID: "run1"}})
	r.exec(4)
	r.emit(&event.Event{Kind: event.KindSensorLoss, Loss: &event.Loss{Where: "kafka-spool", Count: 2, FirstSeq: 3, LastSeq: 4}})
	r.stop()
	lines := append(clone(r.lines[:2]), r.lines[4:]...)
	rep := verify(t, rootKey(t, dir), lines)
	if rep.Status() != Verified || rep.Covered != len(lines) {
		t.Fatalf("status %v, covered %d of %d", rep.Status(), rep.Covered, len(lines))
	}
	lines[1] = bytes.Replace(lines[1], []byte(`/usr/bin/true`), []byte(`/usr/bin/nope`), 1)
	wantFinding(t, verify(t, rootKey(t, dir), lines), Tampered, 2, "edited")
}

// A loss report encoded again (the Kafka sink saving an undelivered one at
// close) gives the same line and is chained once.
func TestLossReportEncodedTwice(t *testing.T) {
	dir := t.TempDir()
	r := startRun(t, dir, "run1")
	r.exec(2)
	loss := &event.Event{Kind: event.KindSensorLoss, Loss: &event.Loss{Where: "kafka-spool", Count: 1, FirstSeq: 2, LastSeq: 2}}
	first := r.emit(loss)
	head := r.chain.Head()
	again, err := r.enc.Append([]byte("prefix"), loss)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(again, append([]byte("prefix"), first...)) || r.chain.Head() != head {
		t.Fatalf("re-encoded loss report differs or moved the chain:\n%s\n%s", first, again)
	}
	r.stop()
	if rep := verify(t, rootKey(t, dir), append(clone(r.lines), again[len("prefix"):])); rep.Status() != Verified {
		t.Fatalf("status %v", rep.Status())
	}
}
