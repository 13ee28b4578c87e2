//go:build linux && (386 || amd64)

package kernel

import (
	"errors"
	"fmt"
	"sync"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"
	"github.com/cilium/ebpf/link"
)

// The io_uring submission tracepoints, newest first, with the program of
// bpf/iouring.bpf.c that reads each: io_uring_submit_req since 6.0,
// io_uring_submit_sqe from 5.5 to 5.19 (other arguments).
var iouringTracepoints = []struct{ tracepoint, prog string }{
	{"io_uring_submit_req", iouringProgIouringSubmitReq},
	{"io_uring_submit_sqe", iouringProgIouringSubmitSqe},
}

var (
	iouringOnce sync.Once
	iouringTP   string
	iouringProg string
)

// iouringTracepoint names the io_uring submission tracepoint this kernel
// has and the program attached to it; "" for both when it has neither
// (no CONFIG_IO_URING, or a kernel before 5.5): the object is then not
// loaded, and io_uring_setup is still reported (bpf/fileio_iouring.h).
// Every raw tracepoint has a btf_trace_<name> typedef in the kernel's BTF.
func iouringTracepoint() (tracepoint, prog string) {
	iouringOnce.Do(func() {
		spec, err := btf.LoadKernelSpec()
		if err != nil {
			return
		}
		for _, t := range iouringTracepoints {
			var td *btf.Typedef
			if spec.TypeByName("btf_trace_"+t.tracepoint, &td) == nil {
				iouringTP, iouringProg = t.tracepoint, t.prog
				return
			}
		}
	})
	return iouringTP, iouringProg
}

// ioURing is the loaded and attached io_uring submission program.
type ioURing struct {
	prog *ebpf.Program
	link link.Link
	name string
}

// loadIOURing loads the one program of bpf/iouring.bpf.c for this
// kernel's tracepoint (iouringTracepoint) on the shared maps and attaches
// it as a raw tracepoint. The other program is not loaded: its CO-RE
// reads are for another kernel generation.
func loadIOURing(shared sharedMaps) (*ioURing, error) {
	tp, name := iouringTracepoint()
	if tp == "" {
		return nil, errors.New("iouring: no io_uring submission tracepoint")
	}
	spec, err := loadIouring()
	if err != nil {
		return nil, fmt.Errorf("iouring: %w", err)
	}
	repl, err := shared.prepare(spec)
	if err != nil {
		return nil, fmt.Errorf("iouring: %w", err)
	}
	for p := range spec.Programs {
		if p != name {
			delete(spec.Programs, p)
		}
	}
	coll, err := ebpf.NewCollectionWithOptions(spec, ebpf.CollectionOptions{MapReplacements: repl})
	if err != nil {
		var ve *ebpf.VerifierError
		if errors.As(err, &ve) {
			return nil, fmt.Errorf("iouring: verifier: %+v", ve)
		}
		return nil, fmt.Errorf("iouring: load: %w", err)
	}
	prog := coll.DetachProgram(name)
	coll.Close() // the private maps live on through the program
	l, err := link.AttachRawTracepoint(link.RawTracepointOptions{Name: tp, Program: prog})
	if err != nil {
		prog.Close()
		return nil, fmt.Errorf("iouring: attach %s: %w", tp, err)
	}
	return &ioURing{prog: prog, link: l, name: name}, nil
}

// programs returns the loaded program, for verifier statistics.
func (u *ioURing) programs() map[string]*ebpf.Program {
	return map[string]*ebpf.Program{u.name: u.prog}
}

// Close detaches and frees the program.
func (u *ioURing) Close() error {
	var errs []error
	if u.link != nil {
		errs = append(errs, u.link.Close())
	}
	errs = append(errs, u.prog.Close())
	return errors.Join(errs...)
}
