//go:build linux && (386 || amd64 || arm64)

package kernel

import (
	"errors"
	"fmt"
	"os"
	"sync"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"
	"github.com/cilium/ebpf/link"
)

// The io_uring submission tracepoints and their arguments (TP_PROTO),
// which decide the program of bpf/iouring.bpf.c that reads them:
//   - io_uring_submit_req(req), 6.4+: iouring_submit_req;
//   - io_uring_submit_sqe(req, force_nonblock), 6.0 to 6.3: the same
//     prepared request first, so iouring_submit_req too;
//   - io_uring_submit_sqe(ctx, [req,] opcode, user_data, ...), 5.5 to
//     5.19: iouring_submit_sqe, which reads up to the fourth argument.
//
// A raw tracepoint program that reads an argument past the tracepoint's
// count is refused at attach (EINVAL), so the count, from the
// btf_trace_<name> typedef every raw tracepoint has in the kernel's BTF,
// chooses; a layout none of these is left untraced, with the reason.
var (
	iouringMu   sync.Mutex
	iouringDone bool
	iouringTP   string
	iouringProg string
	iouringWhy  string
	// iouringSpec is the object's spec (a variable so that a test can
	// hand in a program the kernel refuses).
	iouringSpec = loadIouring
)

// iouringTracepoint names the io_uring submission tracepoint this kernel
// has and the program attached to it; "" for both when it has neither
// (no CONFIG_IO_URING, or a kernel before 5.5) or its arguments are laid
// out in a way this build does not know (iouringWhy says which): the
// object is then not loaded, and io_uring_setup is still reported
// (bpf/fileio_iouring.h).
//
// The chosen program is tried once, on maps of its own, before it is
// listed: a program this kernel's verifier refuses, or a tracepoint that
// refuses it, leaves io_uring requests untraced with the reason instead
// of failing the sensor's start (every other object still loads).
func iouringTracepoint() (tracepoint, prog string) {
	iouringMu.Lock()
	defer iouringMu.Unlock()
	if !iouringDone {
		iouringDone = true
		iouringTP, iouringProg, iouringWhy = iouringDecide()
	}
	return iouringTP, iouringProg
}

// iouringWhyNot is why io_uring requests are not traced ("" when they are).
func iouringWhyNot() string {
	iouringTracepoint()
	iouringMu.Lock()
	defer iouringMu.Unlock()
	return iouringWhy
}

// iouringForget makes the next iouringTracepoint decide again (tests).
func iouringForget() {
	iouringMu.Lock()
	iouringDone = false
	iouringMu.Unlock()
}

func iouringDecide() (tp, prog, why string) {
	kspec, err := btf.LoadKernelSpec()
	if err != nil {
		return "", "", fmt.Sprintf("kernel BTF: %v", err)
	}
	tp, prog, why = iouringChoose(func(name string) (int, bool) {
		var td *btf.Typedef
		if kspec.TypeByName("btf_trace_"+name, &td) != nil {
			return 0, false
		}
		return tracepointArgs(td)
	})
	if tp == "" {
		return "", "", why
	}
	if err := iouringTry(tp, prog); err != nil {
		return "", "", err.Error()
	}
	return tp, prog, ""
}

// iouringTry loads prog with small maps of its own and attaches it to tp,
// then lets both go. Nothing is a session member in its own sessions map,
// so it reports nothing while attached.
func iouringTry(tp, prog string) error {
	spec, err := iouringSpec()
	if err != nil {
		return fmt.Errorf("the io_uring object: %s", oneLine(err))
	}
	if _, ok := spec.Programs[prog]; !ok {
		return fmt.Errorf("the io_uring object has no program %s", prog)
	}
	for p := range spec.Programs {
		if p != prog {
			delete(spec.Programs, p)
		}
	}
	for _, m := range spec.Maps {
		switch m.Type {
		case ebpf.RingBuf:
			m.MaxEntries = uint32(os.Getpagesize())
		case ebpf.Hash, ebpf.LRUHash, ebpf.PerCPUHash, ebpf.LRUCPUHash:
			m.MaxEntries = 1
		}
	}
	coll, err := ebpf.NewCollection(spec)
	if err != nil {
		return fmt.Errorf("the kernel refused %s: %s", prog, oneLine(err))
	}
	defer coll.Close()
	l, err := link.AttachRawTracepoint(link.RawTracepointOptions{Name: tp, Program: coll.Programs[prog]})
	if err != nil {
		return fmt.Errorf("%s refused at raw_tp/%s: %s", prog, tp, oneLine(err))
	}
	return l.Close()
}

// iouringChoose picks the tracepoint and program from args, which gives a
// tracepoint's argument count and whether the kernel has it.
func iouringChoose(args func(name string) (int, bool)) (tp, prog, why string) {
	if n, ok := args("io_uring_submit_req"); ok {
		if n >= 1 {
			return "io_uring_submit_req", iouringProgIouringSubmitReq, ""
		}
		return "", "", fmt.Sprintf("io_uring_submit_req has %d arguments, a layout this build does not know", n)
	}
	n, ok := args("io_uring_submit_sqe")
	switch {
	case !ok:
		return "", "", "no io_uring_submit_req or io_uring_submit_sqe tracepoint"
	case n == 2:
		return "io_uring_submit_sqe", iouringProgIouringSubmitReq, ""
	case n >= 4:
		return "io_uring_submit_sqe", iouringProgIouringSubmitSqe, ""
	}
	return "", "", fmt.Sprintf("io_uring_submit_sqe has %d arguments, a layout this build does not know", n)
}

// tracepointArgs counts a raw tracepoint's arguments from its
// btf_trace_<name> typedef: a pointer to a function whose first parameter
// is the probe's data, not an argument.
func tracepointArgs(td *btf.Typedef) (int, bool) {
	ptr, ok := td.Type.(*btf.Pointer)
	if !ok {
		return 0, false
	}
	fp, ok := ptr.Target.(*btf.FuncProto)
	if !ok || len(fp.Params) == 0 {
		return 0, false
	}
	return len(fp.Params) - 1, true
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
		return nil, errors.New("iouring: " + iouringWhyNot())
	}
	spec, err := iouringSpec()
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
