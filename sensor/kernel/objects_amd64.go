//go:build linux && (386 || amd64)

package kernel

import (
	"io"

	"github.com/cilium/ebpf/link"

	"github.com/lineaged/lineaged/sensor"
)

// archObjects lists the objects built for this architecture: the file and
// network object (bpf/fileio.bpf.c), sharing sessions, ring buffer and loss
// counters.
func archObjects() []objectLoader {
	return []objectLoader{{
		name: "fileio",
		load: func(m sharedMaps, cfg Config) (io.Closer, error) {
			return loadFileIO(m, fileIOConfig{DedupeOpens: !cfg.RepeatOpens})
		},
		kinds:  []sensor.Kind{sensor.KindOpen, sensor.KindUnlink, sensor.KindRename, sensor.KindChmod, sensor.KindConnect, sensor.KindFileModify},
		decode: decodeFileIO,
		bytes:  _FileioBytes,
		progs:  []string{fileioProgFileioSysEnter, fileioProgFileioSysExit},
		links: func(c io.Closer) map[string]link.Link {
			f, ok := c.(*fileIO)
			if !ok || len(f.links) != 2 {
				return nil
			}
			return map[string]link.Link{fileioProgFileioSysEnter: f.links[0], fileioProgFileioSysExit: f.links[1]}
		},
	}}
}
