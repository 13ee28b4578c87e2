package lineage

import (
	"context"
	"sync"
	"time"

	"github.com/lineaged/lineaged/lineage/event"
	"github.com/lineaged/lineaged/sensor"
)

// binaries hands out binary identities as futures, computed off the table
// goroutine: one inspection per file and path in flight, shared by every
// image that runs it. Its map of futures is the only engine state another
// goroutine writes.
type binaries struct {
	src      BinaryInspector
	mu       sync.Mutex
	inflight map[binKey]*binFuture
}

type binKey struct {
	stat sensor.FileStat
	path string
}

// binFuture is a binary identity being computed.
type binFuture struct {
	done chan struct{}
	res  *event.Binary
	req  BinaryRequest
}

func newBinaries(src BinaryInspector) *binaries {
	return &binaries{src: src, inflight: make(map[binKey]*binFuture)}
}

// inspect returns the (possibly shared, possibly finished) future of a
// binary's identity, starting the work off this goroutine on a miss.
func (b *binaries) inspect(req BinaryRequest) *binFuture {
	k := binKey{stat: req.Stat, path: req.Path}
	b.mu.Lock()
	if f := b.inflight[k]; f != nil && (!f.req.Background || req.Background) {
		b.mu.Unlock()
		return f
	}
	// A live event does not wait behind the seed's background queue: it
	// gets its own foreground request (the file is read twice at most).
	f := &binFuture{done: make(chan struct{}), req: req}
	if res, ok := b.src.Cached(req); ok {
		f.res = res
		close(f.done)
		b.mu.Unlock()
		return f
	}
	b.inflight[k] = f
	b.mu.Unlock()
	go func() {
		res := b.src.Inspect(context.Background(), req)
		if res == nil {
			res = errorBinary(req, "inspector returned nothing")
		}
		f.res = res
		b.mu.Lock()
		if b.inflight[k] == f {
			delete(b.inflight, k)
		}
		b.mu.Unlock()
		close(f.done)
	}()
	return f
}

// ready returns the identity when it is computed, without waiting.
func (f *binFuture) ready() (*event.Binary, bool) {
	select {
	case <-f.done:
		return f.res, true
	default:
		return nil, false
	}
}

func errorBinary(req BinaryRequest, reason string) *event.Binary {
	return &event.Binary{
		Path: req.Path, Size: req.Stat.Size, Inode: req.Stat.Inode, Dev: req.Stat.Dev,
		Mtime: time.Unix(0, req.Stat.MtimeNs).UTC(), Verdict: event.VerdictError, Reason: reason,
	}
}
