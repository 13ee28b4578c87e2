package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"sync"

	"github.com/lineaged/lineaged/capture"
	"github.com/lineaged/lineaged/lineage"
)

// loadBatchRecords is how many consecutive records one decoding task takes.
const loadBatchRecords = 2048

// loadBatch is a run of consecutive records, decoded together: the reader
// fills it, a worker decodes it, and the loader files it in order.
type loadBatch struct {
	first int // index of its first record among those read
	recs  []capture.Record
	items []item
	done  chan struct{}
}

// loadCapture reads a capture. A truncated file keeps every whole record
// and says where it stopped in endErr; other damage fails unless skipped.
// Records are decoded on every CPU while the file is still being read, and
// filed in their order.
func loadCapture(path string, skipCorrupt bool) (*loaded, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	r, err := capture.NewReader(f, capture.ReaderConfig{SkipCorrupt: skipCorrupt})
	if err != nil {
		if errors.Is(err, capture.ErrNotCapture) {
			return nil, fmt.Errorf("%s: not a lineaged capture file", path)
		}
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	defer r.Close()
	h := r.Header()
	l := &loaded{book: lineage.NewFactBook(), info: replayInfo{header: h, hooks: h.Meta[metaHooks], reason: h.Meta[metaReason]}}

	workers := max(runtime.GOMAXPROCS(0), 1)
	work := make(chan *loadBatch, 2*workers)
	ordered := make(chan *loadBatch, 4*workers)
	quit := make(chan struct{})
	defer close(quit)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d := newRecordDecoder()
			for b := range work {
				b.items = make([]item, len(b.recs))
				for i, rec := range b.recs {
					d.decode(rec, &b.items[i])
				}
				b.recs = nil
				close(b.done)
			}
		}()
	}
	var readErr error
	go func() {
		defer wg.Wait()
		defer close(work)
		defer close(ordered)
		send := func(b *loadBatch) bool {
			select {
			case ordered <- b:
			case <-quit:
				return false
			}
			select {
			case work <- b:
				return true
			case <-quit:
				return false
			}
		}
		n := 0
		b := &loadBatch{recs: make([]capture.Record, 0, loadBatchRecords), done: make(chan struct{})}
		for {
			rec, err := r.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if errors.Is(err, capture.ErrTruncated) {
				l.endErr = fmt.Errorf("%s: %w", path, err)
				break
			}
			if err != nil {
				readErr = fmt.Errorf("%s: %w (--skip-corrupt skips damaged records)", path, err)
				break
			}
			// The payload stays valid: it shares the decompressed
			// block, which the reader does not reuse.
			b.recs = append(b.recs, rec)
			n++
			if len(b.recs) == loadBatchRecords {
				if !send(b) {
					return
				}
				b = &loadBatch{first: n, recs: make([]capture.Record, 0, loadBatchRecords), done: make(chan struct{})}
			}
		}
		if len(b.recs) > 0 {
			send(b)
		}
		l.stats = r.Stats()
	}()

	// The first record that did not decode, unless skipped; the rest of
	// the file is still read, so damage the reader finds comes first, as
	// when the whole file was read before decoding.
	var decodeErr error
	for b := range ordered {
		<-b.done
		if decodeErr != nil {
			continue
		}
		for i := range b.items {
			it := &b.items[i]
			if it.err != nil {
				if !skipCorrupt {
					decodeErr = fmt.Errorf("%s: record %d: %w", path, b.first+i, it.err)
					break
				}
				l.undecodable++
				continue
			}
			switch {
			case it.isStep:
				l.steps = append(l.steps, it.step)
			case it.isFact:
				l.book.Add(it.fact)
			case it.snap != nil:
				l.addSnapshot(it.snap)
			case it.stop != "":
				l.info.stop = it.stop
			case it.reload:
				l.reloads++
			}
		}
		b.items = nil
	}
	if readErr != nil {
		return nil, readErr
	}
	if decodeErr != nil {
		return nil, decodeErr
	}
	return l, nil
}

// item is one decoded record.
type item struct {
	step   lineage.Step
	fact   lineage.Fact
	isStep bool
	isFact bool
	snap   *snapshotRecord
	stop   string
	reload bool
	err    error
}

// recordDecoder decodes records on one goroutine.
type recordDecoder struct {
	strs interner
}

func newRecordDecoder() *recordDecoder { return &recordDecoder{} }

// decode decodes rec into it.
func (d *recordDecoder) decode(rec capture.Record, it *item) {
	switch rec.Type {
	case capture.TypeEvent:
		ev, err := d.event(rec.Payload)
		if err != nil {
			it.err = fmt.Errorf("event: %w", err)
			return
		}
		it.step, it.isStep = lineage.Step{Kind: lineage.StepRaw, Raw: ev}, true
	case capture.TypeStep:
		if err := json.Unmarshal(rec.Payload, &it.step); err != nil {
			*it = item{err: fmt.Errorf("step: %w", err)}
			return
		}
		if s := &it.step; s.Ev != nil && s.Ev.Sensor != nil && s.Ev.Sensor.Source == "live" {
			s.Ev.Sensor.Source = "replay"
		}
		it.isStep = true
	case capture.TypeFact:
		if err := d.fact(rec.Payload, &it.fact); err != nil {
			*it = item{err: fmt.Errorf("fact: %w", err)}
			return
		}
		it.isFact = true
	case capture.TypeSnapshot:
		var sn snapshotRecord
		if err := json.Unmarshal(rec.Payload, &sn); err != nil {
			it.err = fmt.Errorf("snapshot: %w", err)
			return
		}
		it.snap = &sn
	case capture.TypeMark:
		var m stopMark
		if err := json.Unmarshal(rec.Payload, &m); err != nil {
			it.err = fmt.Errorf("mark: %w", err)
			return
		}
		it.stop, it.reload = m.Stop, !m.Reload.IsZero()
	}
	// Unknown types of the same format version are skipped.
}
