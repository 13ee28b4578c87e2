//go:build linux && (386 || amd64 || arm64)

package kernel

import (
	"encoding/binary"
	"errors"
	"io"
	"sync"

	"github.com/cilium/ebpf/link"

	"github.com/lineaged/lineaged/sensor"
)

// archObjects lists the objects built for this architecture: the file and
// network object (bpf/fileio.bpf.c), sharing sessions, ring buffer and loss
// counters.
//
// The io_uring object (bpf/iouring.bpf.c) is listed when the kernel has an
// io_uring submission tracepoint, with the program for that one.
func archObjects() []objectLoader {
	objs := []objectLoader{{
		name: "fileio",
		load: func(m sharedMaps, cfg Config) (io.Closer, error) {
			return loadFileIO(m, fileIOConfig{DedupeOpens: !cfg.RepeatOpens, DenyIOURing: cfg.DenyIOURing})
		},
		kinds:  []sensor.Kind{sensor.KindOpen, sensor.KindUnlink, sensor.KindRename, sensor.KindChmod, sensor.KindConnect, sensor.KindFileModify, sensor.KindIOURing},
		decode: decodeFileIO,
		bytes:  fileioBytes(),
		progs:  []string{fileioProgFileioSysEnter, fileioProgFileioSysExit},
		links: func(c io.Closer) map[string]link.Link {
			f, ok := c.(*fileIO)
			if !ok || len(f.links) != 2 {
				return nil
			}
			return map[string]link.Link{fileioProgFileioSysEnter: f.links[0], fileioProgFileioSysExit: f.links[1]}
		},
	}}
	if _, prog := iouringTracepoint(); prog != "" {
		objs = append(objs, objectLoader{
			name: "iouring",
			load: func(m sharedMaps, cfg Config) (io.Closer, error) {
				return loadIOURing(m)
			},
			kinds:  []sensor.Kind{sensor.KindIOURing},
			decode: decodeFileIO,
			bytes:  _IouringBytes,
			progs:  []string{prog},
			links: func(c io.Closer) map[string]link.Link {
				u, ok := c.(*ioURing)
				if !ok {
					return nil
				}
				return map[string]link.Link{u.name: u.link}
			},
		})
	}
	return objs
}

// iouringCheck says, for the doctor, which io_uring submission tracepoint
// the io_uring object attaches to, or that requests are not seen.
func iouringCheck() (string, error) {
	tp, prog := iouringTracepoint()
	if tp == "" {
		return "", errors.New(iouringWhyNot() + ": requests submitted through io_uring are not seen (io_uring_setup is)")
	}
	return "requests traced at raw_tp/" + tp + " (" + prog + ")", nil
}

// fileioBytes is the file object build this kernel takes (walker.go).
func fileioBytes() []byte {
	if loopWalker() {
		return _FileioLoopBytes
	}
	return _FileioBytes
}

// openArgsFull is the file object's count of members' opens and fchmods
// whose entry found the table of calls in flight full, decoded at exit
// from the registers instead (bpf/fileio.bpf.c fio_args_full); 0 when the
// file object is not loaded or the count cannot be read.
func (s *Sensor) openArgsFull() uint64 {
	off, err := fioArgsFullOffset()
	if err != nil {
		return 0
	}
	m, err := s.fileioMap(".bss")
	if err != nil {
		return 0
	}
	defer m.Close()
	buf := make([]byte, m.ValueSize())
	if err := m.Lookup(uint32(0), &buf); err != nil || int(off)+8 > len(buf) {
		return 0
	}
	return binary.NativeEndian.Uint64(buf[off:])
}

// fioArgsFullOffset is where fio_args_full is in the file object's .bss.
var fioArgsFullOffset = sync.OnceValues(func() (uint32, error) {
	spec, err := pickWalker(loadFileio, loadFileioLoop)
	if err != nil {
		return 0, err
	}
	v := spec.Variables[fileioVarFioArgsFull]
	if v == nil {
		return 0, errors.New("fileio: no fio_args_full")
	}
	return v.Offset, nil
})
