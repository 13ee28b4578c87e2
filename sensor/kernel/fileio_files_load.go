//go:build 386 || amd64 || arm64

package kernel

import (
	"crypto/rand"
	"encoding/binary"
	"fmt"

	"github.com/cilium/ebpf"
)

// setNameHashKey gives the kernel's hash of re-read names
// (bpf/fileio_files.h) a random key, so a member cannot prepare a name
// that hashes like another.
func setNameHashKey(spec *ebpf.CollectionSpec) error {
	var k [8]byte
	if _, err := rand.Read(k[:]); err != nil {
		return fmt.Errorf("name hash key: %w", err)
	}
	return spec.Variables[fileioVarNameHashKey].Set(binary.LittleEndian.Uint64(k[:]))
}
