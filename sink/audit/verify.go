package audit

import (
	"bytes"
	"cmp"
	"crypto"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"sort"
)

// Status is the outcome of a verification.
type Status int

// Statuses, from best to worst.
const (
	// Verified: every event is chained and covered by a checkpoint whose
	// signature chains back to a trusted key.
	Verified Status = iota
	// Unverified: nothing is wrong, but some events come after the last
	// checkpoint (a truncated or still growing tail, a crash) or cannot
	// be tied to a checkpoint.
	Unverified
	// Tampered: a line was edited, removed, inserted or forged.
	Tampered
)

func (s Status) String() string {
	return [...]string{"verified", "unverified", "tampered"}[s]
}

// Finding is one defect or remark, naming the event it is about.
type Finding struct {
	Status  Status // Verified for a remark
	Event   string // the event: seq, event_id, instance, file:line
	Message string
}

func (f Finding) String() string {
	label := map[Status]string{Verified: "note", Unverified: "UNVERIFIED", Tampered: "TAMPERED"}[f.Status]
	if f.Event == "" {
		return label + ": " + f.Message
	}
	return label + ": " + f.Event + ": " + f.Message
}

// Report is the result of Verify.
type Report struct {
	Findings    []Finding
	Lines       int // lines read
	Events      int // distinct events
	Runs        int // instances
	Checkpoints int // checkpoints whose signature was verified
	Covered     int // events covered by a verified checkpoint
}

// Status is the worst status of the findings.
func (r *Report) Status() Status {
	s := Verified
	for _, f := range r.Findings {
		s = max(s, f.Status)
	}
	return s
}

// Verifier walks the lines of chained streams: Add every line, in any
// order (Kafka partitions interleave), then Finish.
type Verifier struct {
	trusted map[string]crypto.PublicKey // by key id
	byInst  map[string][]*entry
	report  Report
}

// NewVerifier trusts keys: the root key that lineaged key printed, and any
// epoch's key the operator vouches for.
func NewVerifier(keys []crypto.PublicKey) (*Verifier, error) {
	v := &Verifier{trusted: map[string]crypto.PublicKey{}, byInst: map[string][]*entry{}}
	for _, k := range keys {
		id, err := KeyID(k)
		if err != nil {
			return nil, err
		}
		v.trusted[id] = k
	}
	return v, nil
}

// Add reads one line of src (its line number n), without its newline.
func (v *Verifier) Add(src string, n int, line []byte) {
	line = bytes.TrimRight(line, "\r\n")
	if len(bytes.TrimSpace(line)) == 0 {
		return
	}
	v.report.Lines++
	e, err := parseLine(line)
	if err != nil {
		v.tamper(fmt.Sprintf("%s:%d", src, n), err.Error())
		return
	}
	e.src, e.line = src, n
	v.byInst[e.instance] = append(v.byInst[e.instance], e)
}

func (v *Verifier) tamper(ev, msg string) {
	v.report.Findings = append(v.report.Findings, Finding{Tampered, ev, msg})
}
func (v *Verifier) unverified(ev, msg string) {
	v.report.Findings = append(v.report.Findings, Finding{Unverified, ev, msg})
}
func (v *Verifier) note(ev, msg string) {
	v.report.Findings = append(v.report.Findings, Finding{Verified, ev, msg})
}

func (e *entry) String() string {
	id := e.eventID
	if id == "" {
		id = "?"
	}
	return fmt.Sprintf("seq %d (event_id %s, instance %s, %s:%d)", e.seq, id, e.instance, e.src, e.line)
}

// run is one instance's events, in seq order.
type run struct {
	instance string
	entries  []*entry
	byHash   map[[sha256.Size]byte]*entry
	bridges  map[[sha256.Size]byte]*entry // a sensor.loss by its lost.last
	lost     [][2]uint64                  // accounted seq ranges
	minEpoch uint64
	hasCP    bool
}

// Finish walks what was added and returns the report.
func (v *Verifier) Finish() *Report {
	var runs []*run
	checkpoints := map[[sha256.Size]byte]*entry{}
	for inst, es := range v.byInst {
		r := v.order(inst, es)
		runs = append(runs, r)
		for _, e := range r.entries {
			if e.cp != nil {
				checkpoints[e.hash] = e
			}
		}
	}
	sort.Slice(runs, func(i, j int) bool { return runs[i].instance < runs[j].instance })
	v.signatures(runs)
	for _, r := range runs {
		v.walk(r, checkpoints)
	}
	v.runOrder(runs, checkpoints)
	for _, r := range runs {
		v.coverage(r)
	}
	v.report.Runs = len(runs)
	return &v.report
}

// order sorts a run's events by seq, drops exact duplicates (a Kafka retry,
// a checkpoint also read from its second destination) and indexes them.
func (v *Verifier) order(inst string, es []*entry) *run {
	sort.SliceStable(es, func(i, j int) bool { return es[i].seq < es[j].seq })
	r := &run{instance: inst, byHash: map[[sha256.Size]byte]*entry{}, bridges: map[[sha256.Size]byte]*entry{}}
	for _, e := range es {
		if n := len(r.entries); n > 0 && r.entries[n-1].seq == e.seq {
			d := r.entries[n-1]
			if d.intact && e.intact && d.hash == e.hash && bytes.Equal(d.sig, e.sig) {
				continue
			}
			v.tamper(e.String(), fmt.Sprintf("another line has the same seq with different content (%s:%d)", d.src, d.line))
			continue
		}
		if !e.intact {
			v.tamper(e.String(), "the line's hash does not match its content: it was edited")
		}
		if o, dup := r.byHash[e.hash]; dup {
			v.tamper(e.String(), fmt.Sprintf("claims the chain hash of another event, %s", o))
		}
		r.entries = append(r.entries, e)
		r.byHash[e.hash] = e
		if e.loss != nil && e.loss.FirstSeq != 0 {
			r.lost = append(r.lost, [2]uint64{e.loss.FirstSeq, e.loss.LastSeq})
		}
		if e.lost != nil && e.intact {
			r.bridges[e.lost.last] = e
		}
		if e.cp != nil {
			if !r.hasCP || e.cp.Epoch < r.minEpoch {
				r.minEpoch = e.cp.Epoch
			}
			r.hasCP = true
		}
	}
	v.report.Events += len(r.entries)
	return r
}

// accounted reports whether every seq in [a, b] is in a reported loss.
func (r *run) accounted(a, b uint64) bool {
	for s := a; s <= b; {
		next := s
		for _, l := range r.lost {
			if l[0] <= s && s <= l[1] {
				next = l[1] + 1
				break
			}
		}
		if next == s {
			return false
		}
		s = next
	}
	return true
}

// walk checks a run's seqs and links.
func (v *Verifier) walk(r *run, checkpoints map[[sha256.Size]byte]*entry) {
	// The head: up to the run's first line that is not a checkpoint. Only
	// checkpoints before it means the input starts mid-run with the
	// earlier checkpoints from their copy (rotated files gone).
	head := 0
	for head < len(r.entries) && r.entries[head].cp != nil {
		head++
	}
	succ := map[[sha256.Size]byte]*entry{}
	for i, e := range r.entries {
		if i > 0 && i <= head && head < len(r.entries) {
			if p := r.entries[i-1].seq; e.seq > p+1 {
				v.note(e.String(), fmt.Sprintf("seq %d..%d before it are not in the input, only checkpoints: the input starts mid-run", p+1, e.seq-1))
			}
		} else if i > 0 {
			if p := r.entries[i-1].seq; e.seq > p+1 {
				if r.accounted(p+1, e.seq-1) {
					v.note(e.String(), fmt.Sprintf("seq %d..%d before it were lost and reported by sensor.loss", p+1, e.seq-1))
				} else {
					v.tamper(e.String(), fmt.Sprintf("seq %d..%d before it are missing and no sensor.loss accounts for them: events were removed", p+1, e.seq-1))
				}
			}
		}
		if o, fork := succ[e.prev]; fork {
			v.tamper(e.String(), fmt.Sprintf("links to the same previous line as %s: an event was inserted", o))
		}
		succ[e.prev] = e
		if _, ok := r.byHash[e.prev]; ok {
			continue
		}
		if i == 0 || i <= head {
			continue // the run's anchor (runOrder), or its head
		}
		if b, ok := r.bridges[e.prev]; ok {
			if _, ok := r.byHash[b.lost.after]; !ok && b.lost.after != r.entries[0].prev {
				v.tamper(e.String(), fmt.Sprintf("the loss reported by %s starts after a line that is not in the stream", b))
			}
			continue
		}
		if p := r.entries[i-1].seq; e.seq > p+1 && r.accounted(p+1, e.seq-1) {
			v.unverified(e.String(), "follows a reported loss whose chained lines cannot be bridged (no lost member): its link is unchecked")
			continue
		}
		v.tamper(e.String(), "broken link: the line before it in the chain is not in the stream (removed, reordered or altered)")
	}
}

// runOrder ties each run's first event to the previous run's last
// checkpoint.
func (v *Verifier) runOrder(runs []*run, checkpoints map[[sha256.Size]byte]*entry) {
	earliest := ^uint64(0)
	for _, r := range runs {
		if r.hasCP {
			earliest = min(earliest, r.minEpoch)
		}
	}
	for _, r := range runs {
		if len(r.entries) == 0 {
			continue
		}
		first := r.entries[0]
		switch cp, ok := checkpoints[first.prev]; {
		case first.prev == Zero:
			v.note(first.String(), "the first run on this host")
		case ok && cp.instance != r.instance:
			prevRun := v.byInst[cp.instance]
			last := prevRun[len(prevRun)-1]
			if last.hash == cp.hash {
				v.note(first.String(), fmt.Sprintf("run %s follows run %s, which stopped at its checkpoint epoch %d", r.instance, cp.instance, cp.cp.Epoch))
			} else {
				v.note(first.String(), fmt.Sprintf("run %s follows run %s's checkpoint epoch %d; that run went on after it (a crash)", r.instance, cp.instance, cp.cp.Epoch))
			}
		case r.hasCP && r.minEpoch == earliest || !r.hasCP && len(runs) == 1:
			v.note(first.String(), "the input starts here: what came before (earlier runs, rotated files) is not in it")
		default:
			v.tamper(first.String(), fmt.Sprintf("the run starts after checkpoint %s, which is not in the input: events were removed between runs",
				hex.EncodeToString(first.prev[:8])))
		}
	}
}

// signatures checks every checkpoint, in epoch order, against the key its
// epoch was announced with (or a trusted key).
func (v *Verifier) signatures(runs []*run) {
	var cps []*entry
	for _, r := range runs {
		for _, e := range r.entries {
			if e.sig != nil && e.intact {
				if e.cp == nil {
					v.tamper(e.String(), "signed line without a checkpoint body")
					continue
				}
				cps = append(cps, e)
			}
		}
	}
	slices.SortStableFunc(cps, func(a, b *entry) int { return cmp.Compare(a.cp.Epoch, b.cp.Epoch) })
	announced := map[uint64]crypto.PublicKey{}
	seen := map[uint64]*entry{}
	for _, e := range cps {
		cp := e.cp
		if o, dup := seen[cp.Epoch]; dup {
			v.tamper(e.String(), fmt.Sprintf("a second checkpoint of epoch %d (the first: %s)", cp.Epoch, o))
			continue
		}
		seen[cp.Epoch] = e
		key, ok := announced[cp.Epoch]
		if ok {
			if id, _ := KeyID(key); id != cp.KeyID {
				v.tamper(e.String(), fmt.Sprintf("checkpoint epoch %d names key %s, not the key the previous checkpoint announced", cp.Epoch, short(cp.KeyID)))
				continue
			}
		} else if key, ok = v.trusted[cp.KeyID]; !ok {
			v.tamper(e.String(), fmt.Sprintf("checkpoint epoch %d is signed by key %s, which is neither trusted (--key) nor announced by a checkpoint in the input", cp.Epoch, short(cp.KeyID)))
			continue
		}
		if err := checkSig(key, e); err != nil {
			v.tamper(e.String(), fmt.Sprintf("bad checkpoint signature: %v", err))
			continue
		}
		if cp.Head != hex.EncodeToString(e.prev[:]) || cp.InstanceID != e.instance {
			v.tamper(e.String(), "the checkpoint's head or instance is not its own chain's")
			continue
		}
		e.verified = true
		v.report.Checkpoints++
		next, err := parseB64Key(cp.NextKey)
		if err != nil {
			v.tamper(e.String(), err.Error())
			continue
		}
		announced[cp.Epoch+1] = next
	}
}

func checkSig(pub crypto.PublicKey, e *entry) error {
	ver, err := LoadVerifier(pub)
	if err != nil {
		return err
	}
	return ver.VerifySignature(bytes.NewReader(e.sig), bytes.NewReader(signedMessage(e.hash)))
}

func short(id string) string {
	if len(id) > 16 {
		return id[:16]
	}
	return id
}

// coverage marks the events each verified checkpoint vouches for: the chain
// back from it, across reported losses, to the previous covered event.
func (v *Verifier) coverage(r *run) {
	for _, e := range r.entries {
		if !e.verified {
			continue
		}
		for cur := e; cur != nil && !cur.covered; {
			cur.covered = true
			p, ok := r.byHash[cur.prev]
			if !ok {
				if b, ok := r.bridges[cur.prev]; ok {
					p = r.byHash[b.lost.after]
				}
			}
			cur = p
		}
	}
	var tail []*entry
	for _, e := range r.entries {
		if e.covered && e.intact {
			v.report.Covered++
			continue
		}
		if e.intact {
			tail = append(tail, e)
		}
	}
	if len(tail) > 0 {
		msg := fmt.Sprintf("%d events (seq %d..%d) are not covered by a signed checkpoint: unverified", len(tail), tail[0].seq, tail[len(tail)-1].seq)
		if last := r.entries[len(r.entries)-1]; last.cp == nil && tail[len(tail)-1] == last {
			msg += " (the stream ends after its last checkpoint: a truncated tail, a crash or a run still going)"
		}
		v.unverified(tail[0].String(), msg)
	}
}
