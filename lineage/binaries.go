package lineage

import (
	"context"
	"time"

	"github.com/lineaged/lineaged/lineage/event"
	"github.com/lineaged/lineaged/sensor"
)

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

// inspect returns the (possibly shared, possibly finished) future of a
// binary's identity, starting the work off this goroutine on a miss.
func (e *Engine) inspect(req BinaryRequest) *binFuture {
	k := binKey{stat: req.Stat, path: req.Path}
	e.binMu.Lock()
	if f := e.inflight[k]; f != nil && (!f.req.Background || req.Background) {
		e.binMu.Unlock()
		return f
	}
	// A live event does not wait behind the seed's background queue: it
	// gets its own foreground request (the file is read twice at most).
	f := &binFuture{done: make(chan struct{}), req: req}
	if b, ok := e.deps.Binaries.Cached(req); ok {
		f.res = b
		close(f.done)
		e.binMu.Unlock()
		return f
	}
	e.inflight[k] = f
	e.binMu.Unlock()
	go func() {
		b := e.deps.Binaries.Inspect(context.Background(), req)
		if b == nil {
			b = errorBinary(req, "inspector returned nothing")
		}
		f.res = b
		e.binMu.Lock()
		if e.inflight[k] == f {
			delete(e.inflight, k)
		}
		e.binMu.Unlock()
		close(f.done)
	}()
	return f
}

func errorBinary(req BinaryRequest, reason string) *event.Binary {
	return &event.Binary{
		Path: req.Path, Size: req.Stat.Size, Inode: req.Stat.Inode, Dev: req.Stat.Dev,
		Mtime: time.Unix(0, req.Stat.MtimeNs).UTC(), Verdict: event.VerdictError, Reason: reason,
	}
}
