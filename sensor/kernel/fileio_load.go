//go:build 386 || amd64 || arm64

package kernel

import (
	"errors"
	"fmt"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
)

// fileIOMaps are the maps (and the wakeup policy) the file/network object
// shares with the process object (bpf/maps.h). The loader creates them once
// and passes them here.
type fileIOMaps = sharedMaps

// fileIOConfig sizes the object's private maps; zero keeps the compiled
// default.
type fileIOConfig struct {
	// PendingEntries bounds the threads of session members that can be
	// inside unlink/rename/chmod at once (8 KiB of kernel memory each).
	PendingEntries uint32
	// DedupeOpens reports a read-only open once per process image, file
	// and flags; repeats are counted on the exit record (Config.RepeatOpens).
	DedupeOpens bool
	// ArgsEntries bounds the threads of session members that can be inside
	// open/fchmod at once. The network calls keep no per-thread state
	// (bpf/fileio_net.h).
	ArgsEntries uint32
	// DenyIOURing answers a member's io_uring_setup with SIGKILL
	// (bpf/fileio_iouring.h).
	DenyIOURing bool
}

// fileIO is the loaded and attached file/network object.
type fileIO struct {
	objs  fileioObjects
	links []link.Link
}

// loadFileIO loads bpf/fileio.bpf.c with the shared maps substituted for its
// own declarations and attaches its two programs (tp_btf sys_enter and
// sys_exit). Close detaches and frees it; the shared maps stay open.
func loadFileIO(shared fileIOMaps, cfg fileIOConfig) (*fileIO, error) {
	if shared.Sessions == nil || shared.Events == nil || shared.Lost == nil {
		return nil, errors.New("fileio: the sessions, events and ringbuf_lost maps are all required")
	}
	spec, err := pickWalker(loadFileio, loadFileioLoop)
	if err != nil {
		return nil, fmt.Errorf("fileio: %w", err)
	}
	// The shared maps were sized from config by whoever created them.
	repl, err := shared.prepare(spec)
	if err != nil {
		return nil, fmt.Errorf("fileio: %w", err)
	}
	if cfg.PendingEntries > 0 {
		spec.Maps[fileioMapFioPending].MaxEntries = cfg.PendingEntries
	}
	if cfg.ArgsEntries > 0 {
		spec.Maps[fileioMapFioArgs].MaxEntries = cfg.ArgsEntries
	}
	if err := setNameHashKey(spec); err != nil {
		return nil, fmt.Errorf("fileio: %w", err)
	}
	if cfg.DedupeOpens {
		if err := spec.Variables[fileioVarDedupeOpens].Set(uint8(1)); err != nil {
			return nil, fmt.Errorf("fileio: %w", err)
		}
	}
	if cfg.DenyIOURing {
		if err := spec.Variables[fileioVarDenyIoUring].Set(uint8(1)); err != nil {
			return nil, fmt.Errorf("fileio: %w", err)
		}
	}
	f := &fileIO{}
	opts := &ebpf.CollectionOptions{MapReplacements: repl}
	if err := spec.LoadAndAssign(&f.objs, opts); err != nil {
		var ve *ebpf.VerifierError
		if errors.As(err, &ve) {
			return nil, fmt.Errorf("fileio: verifier: %+v", ve)
		}
		return nil, fmt.Errorf("fileio: load: %w", err)
	}
	for _, p := range []*ebpf.Program{f.objs.FileioSysEnter, f.objs.FileioSysExit} {
		l, err := link.AttachTracing(link.TracingOptions{Program: p})
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("fileio: attach %s: %w", p, err)
		}
		f.links = append(f.links, l)
	}
	return f, nil
}

// programs returns the loaded programs, for verifier statistics.
func (f *fileIO) programs() map[string]*ebpf.Program {
	return map[string]*ebpf.Program{
		fileioProgFileioSysEnter: f.objs.FileioSysEnter,
		fileioProgFileioSysExit:  f.objs.FileioSysExit,
	}
}

// Close detaches the programs and releases the object's own maps.
func (f *fileIO) Close() error {
	errs := closeLinks(f.links)
	f.links = nil
	errs = append(errs, f.objs.Close())
	return errors.Join(errs...)
}
