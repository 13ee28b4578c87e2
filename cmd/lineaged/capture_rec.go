package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"reflect"
	"sort"
	"strconv"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/lineaged/lineaged/capture"
	"github.com/lineaged/lineaged/lineage"
	"github.com/lineaged/lineaged/lineage/policy"
	"github.com/lineaged/lineaged/lineage/policy/redact"
	"github.com/lineaged/lineaged/sensor/procfs"
)

// Header meta keys a replay needs again (docs/capture.md).
const (
	metaInstance = "instance_id"
	metaSeqAfter = "seq_after"
	metaScope    = "scope"
	metaHooks    = "hooks"
	metaReason   = "hooks_reason"
	metaMountNS  = "mnt_ns"
)

// captureOpts are the capture flags of run (and of capture).
type captureOpts struct {
	path string
	raw  bool
}

// captureArgs takes --capture FILE and --raw out of run's arguments (they
// are not configuration keys).
func captureArgs(args []string) (captureOpts, []string, error) {
	var o captureOpts
	var rest []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--raw":
			o.raw = true
		case a == "--capture":
			if i+1 >= len(args) {
				return o, nil, &exitError{exitUsage, fmt.Errorf("--capture needs a file name")}
			}
			i++
			o.path = args[i]
		case len(a) > len("--capture=") && a[:len("--capture=")] == "--capture=":
			o.path = a[len("--capture="):]
		default:
			rest = append(rest, a)
		}
	}
	if o.raw && o.path == "" {
		return o, nil, &exitError{exitUsage, fmt.Errorf("--raw applies to --capture only")}
	}
	return o, rest, nil
}

// configDigest is the SHA-256 of the effective configuration: every field
// by name and value, in declaration order (functions left out).
func configDigest(cfg *Config) string {
	h := sha256.New()
	digestValue(h, "", reflect.ValueOf(cfg).Elem())
	return hex.EncodeToString(h.Sum(nil))
}

func digestValue(w io.Writer, name string, v reflect.Value) {
	switch v.Kind() {
	case reflect.Func, reflect.Chan, reflect.UnsafePointer, reflect.Invalid:
		return
	case reflect.Pointer, reflect.Interface:
		if v.IsNil() {
			fmt.Fprintf(w, "%s=nil;", name)
			return
		}
		digestValue(w, name, v.Elem())
	case reflect.Struct:
		for i := 0; i < v.NumField(); i++ {
			if f := v.Type().Field(i); f.IsExported() {
				digestValue(w, name+"."+f.Name, v.Field(i))
			}
		}
	case reflect.Slice, reflect.Array:
		fmt.Fprintf(w, "%s#%d;", name, v.Len())
		for i := 0; i < v.Len(); i++ {
			digestValue(w, fmt.Sprintf("%s[%d]", name, i), v.Index(i))
		}
	case reflect.Map:
		keys := v.MapKeys()
		sort.Slice(keys, func(i, j int) bool { return fmt.Sprint(keys[i]) < fmt.Sprint(keys[j]) })
		for _, k := range keys {
			digestValue(w, fmt.Sprintf("%s[%v]", name, k), v.MapIndex(k))
		}
	default:
		fmt.Fprintf(w, "%s=%q;", name, fmt.Sprint(v))
	}
}

func unameRelease() (host, kernel string) {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return "", ""
	}
	return unix.ByteSliceToString(u.Nodename[:]), unix.ByteSliceToString(u.Release[:])
}

// captureRec writes what the engine took in (steps) and looked up (facts)
// to a capture file.
type captureRec struct {
	w      recordWriter
	red    *redact.Redactor // nil: --raw
	log    *slog.Logger
	failed atomic.Bool
	closed atomic.Bool
}

// recordWriter takes capture records: a capture.Writer on a file, or a
// tee's bounded queue (tee.go).
type recordWriter interface {
	Add(t capture.Type, payload []byte) error
	Close() error
}

// openCapture creates the capture file with its header.
func openCapture(o captureOpts, cfg *Config, meta map[string]string, log *slog.Logger) (*captureRec, error) {
	host, kern := unameRelease()
	c := &captureRec{log: log}
	if !o.raw {
		rc := cfg.Redact
		r, err := redact.New(rc)
		if err != nil {
			return nil, &exitError{exitUsage, fmt.Errorf("capture redaction: %w", err)}
		}
		c.red = r
	}
	w, err := capture.Create(o.path, capture.Header{
		SensorVersion: version, Host: host, Kernel: kern,
		ConfigDigest: configDigest(cfg), Raw: o.raw, Meta: meta,
	}, capture.WriterConfig{})
	if err != nil {
		return nil, &exitError{exitUsage, err}
	}
	c.w = w
	log.Info("capturing", "file", o.path, "raw", o.raw)
	return c, nil
}

func (c *captureRec) add(t capture.Type, v any) {
	if c.closed.Load() && t != capture.TypeMark {
		return
	}
	b, err := json.Marshal(v)
	if err == nil {
		err = c.w.Add(t, b)
	}
	if err != nil && c.failed.CompareAndSwap(false, true) {
		c.log.Error("capture: record lost; the capture is incomplete", "err", err)
	}
}

func (c *captureRec) argv(a []string) []string {
	if c.red == nil || a == nil {
		return a
	}
	return c.red.Argv(a)
}

// proc is p with its argv redacted, a copy: the fact may go to several
// recorders (run --capture and tees), each with its own redaction.
func (c *captureRec) proc(p *lineage.WiredProc) *lineage.WiredProc {
	if p == nil || c.red == nil {
		return p
	}
	q := *p
	q.Argv = c.argv(p.Argv)
	return &q
}

// fact records one provider answer, redacted unless --raw.
func (c *captureRec) fact(f lineage.Fact) {
	f.Proc = c.proc(f.Proc)
	if len(f.Procs) > 0 && c.red != nil {
		procs := make([]*lineage.WiredProc, len(f.Procs))
		for i, p := range f.Procs {
			procs[i] = c.proc(p)
		}
		f.Procs = procs
	}
	c.add(capture.TypeFact, f)
}

// step records one engine input.
func (c *captureRec) step(s lineage.Step) {
	if s.Kind == lineage.StepRaw && s.Raw != nil {
		ev := *s.Raw
		if ev.Exec != nil && c.red != nil {
			x := *ev.Exec
			x.Argv = c.argv(x.Argv)
			ev.Exec = &x
		}
		c.add(capture.TypeEvent, &ev)
		return
	}
	c.add(capture.TypeStep, s)
}

// seed records the /proc seed.
func (c *captureRec) seed(procs []*procfs.Proc) {
	f := lineage.Fact{Kind: lineage.FactSeed}
	for _, p := range procs {
		f.Procs = append(f.Procs, lineage.WireProc(p))
	}
	c.fact(f)
}

// snapshotRecord is the payload of a snapshot record (docs/capture.md):
// the engine's state, taken at a tee's first step on the engine's
// goroutine, or the state the pipeline's last stage keeps (the session
// roots' verdicts and the policy stage), taken there when the tee's mark
// reaches it. Each part is a head record that says how many images,
// parked events and open summaries it has, which follow in records of
// their own, a bounded number each: a busy host's table is larger than
// one record may be.
type snapshotRecord struct {
	Engine   *lineage.Snapshot     `json:"engine,omitempty"`
	Verdicts []lineage.SnapVerdict `json:"verdicts,omitempty"`
	Policy   *policy.Snapshot      `json:"policy,omitempty"`
	Counts   *snapshotCounts       `json:"counts,omitempty"`
	// Continuations, in order.
	Images  []lineage.SnapImage   `json:"images,omitempty"`
	Pending []lineage.SnapPending `json:"pending,omitempty"`
	Open    []policy.SnapSummary  `json:"open,omitempty"`
}

// snapshotCounts are what the continuations of a head hold in all.
type snapshotCounts struct {
	Images  int `json:"images,omitempty"`
	Pending int `json:"pending,omitempty"`
	Open    int `json:"open,omitempty"`
}

// Items per continuation record: each well under capture.MaxRecordBytes
// (an image's argv is bounded by the kernel's record, an open summary is
// two events).
const (
	snapImagesPerRecord  = 256
	snapPendingPerRecord = 256
	snapOpenPerRecord    = 64
)

// snapshot records the engine's state where a tee starts, argv redacted
// as the seed's is: a copy, the engine's own state untouched.
func (c *captureRec) snapshot(s *lineage.Snapshot) {
	head := *s
	head.Images, head.Pending = nil, nil
	c.add(capture.TypeSnapshot, snapshotRecord{Engine: &head, Counts: &snapshotCounts{Images: len(s.Images), Pending: len(s.Pending)}})
	for lo := 0; lo < len(s.Images); lo += snapImagesPerRecord {
		chunk := s.Images[lo:min(lo+snapImagesPerRecord, len(s.Images))]
		if c.red != nil {
			red := make([]lineage.SnapImage, len(chunk))
			for i, im := range chunk {
				im.Proc.Argv = c.argv(im.Proc.Argv)
				red[i] = im
			}
			chunk = red
		}
		c.add(capture.TypeSnapshot, snapshotRecord{Images: chunk})
	}
	for lo := 0; lo < len(s.Pending); lo += snapPendingPerRecord {
		chunk := s.Pending[lo:min(lo+snapPendingPerRecord, len(s.Pending))]
		if c.red != nil {
			red := make([]lineage.SnapPending, len(chunk))
			for i, p := range chunk {
				if p.Ev.Exec != nil {
					x := *p.Ev.Exec
					x.Argv = c.argv(x.Argv)
					p.Ev.Exec = &x
				}
				red[i] = p
			}
			chunk = red
		}
		c.add(capture.TypeSnapshot, snapshotRecord{Pending: chunk})
	}
}

// snapshotOut records the last stage's part of a tee's snapshot. Its
// events went through the output's redaction already.
func (c *captureRec) snapshotOut(verdicts []lineage.SnapVerdict, pol *policy.Snapshot) {
	head := *pol
	head.Open = nil
	c.add(capture.TypeSnapshot, snapshotRecord{Verdicts: verdicts, Policy: &head, Counts: &snapshotCounts{Open: len(pol.Open)}})
	for lo := 0; lo < len(pol.Open); lo += snapOpenPerRecord {
		c.add(capture.TypeSnapshot, snapshotRecord{Open: pol.Open[lo:min(lo+snapOpenPerRecord, len(pol.Open))]})
	}
}

// stopMark is the last record: why the sensor stopped. A reload mark says
// the rules were reloaded (SIGHUP) at that time.
type stopMark struct {
	Stop   string    `json:"stop,omitempty"`
	Reload time.Time `json:"reload,omitzero"`
	Rules  string    `json:"rules,omitempty"`
}

// noteReload records a reload of the rules in the capture.
func (p *pipeline) noteReload() {
	if c := p.capture; c != nil {
		c.add(capture.TypeMark, stopMark{Reload: time.Now().UTC(), Rules: p.cfg.Policy.Rules})
	}
}

// close writes the stop mark and closes the file; later records are
// dropped quietly, a second close is a no-op.
func (c *captureRec) close(reason string) error {
	if c.closed.Swap(true) {
		return nil
	}
	c.add(capture.TypeMark, stopMark{Stop: reason})
	return c.w.Close()
}

func captureMeta(p *pipeline) map[string]string {
	var after uint64
	if p.seqState != nil {
		after = p.seqState.Previous().Stamped
	}
	return map[string]string{
		metaInstance: p.instance,
		metaSeqAfter: strconv.FormatUint(after, 10),
		metaScope:    p.cfg.Scope,
		metaMountNS:  strconv.FormatUint(uint64(lineage.HostMountNS(procRoot)), 10),
	}
}
