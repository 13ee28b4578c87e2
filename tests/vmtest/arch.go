package main

import (
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
)

// guestArch is what differs between the guest architectures: the Debian
// packages the kernels and the guest userland come from, the Go
// architecture the test binaries are built for, and how qemu boots the
// guest and where its results port is.
type guestArch struct {
	Name    string      // -arch value, Debian architecture and GOARCH: amd64, arm64
	Qemu    string      // default -qemu
	QemuPkg string      // the Debian package that has Qemu
	Machine elf.Machine // of every executable packed into the guest
	// Console is the kernel console (console=); ResultsDev the guest
	// device the generated /init writes the results to, a second port
	// of its own so kernel messages never split a test line.
	Console, ResultsDev string
	// LibDirs is where DT_NEEDED libraries are looked up, as ld.so does
	// on Debian for this architecture.
	LibDirs []string
	// FromHost: the guest's busybox and executables are the host's own;
	// otherwise they come from this architecture's Debian packages,
	// unpacked into a sysroot under the cache (userland.go).
	FromHost bool

	imageRE  *regexp.Regexp
	binaryRE *regexp.Regexp
}

var (
	archAMD64 = newArch(guestArch{
		Name: "amd64", Qemu: "qemu-system-x86_64", QemuPkg: "qemu-system-x86", Machine: elf.EM_X86_64,
		Console: "ttyS0", ResultsDev: "/dev/ttyS1",
		LibDirs:  []string{"/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib64", "/usr/lib64", "/lib", "/usr/lib"},
		FromHost: true,
	})
	// arm64: qemu's virt machine has one PL011 UART, the console. The
	// results go to a 16550 on its PCI bus (pci-serial), ttyS0 in the
	// guest: 8250_PCI and the generic PCI host are built into every
	// cloud-arm64 kernel, while VIRTIO_CONSOLE (hvc0) is a module in 6.1's.
	archARM64 = newArch(guestArch{
		Name: "arm64", Qemu: "qemu-system-aarch64", QemuPkg: "qemu-system-arm", Machine: elf.EM_AARCH64,
		Console: "ttyAMA0", ResultsDev: "/dev/ttyS0",
		LibDirs: []string{"/lib/aarch64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/lib", "/usr/lib"},
	})
	arches = map[string]*guestArch{archAMD64.Name: archAMD64, archARM64.Name: archARM64}
)

// newArch fills in the package-name patterns of an architecture.
func newArch(a guestArch) *guestArch {
	// Debian's cloud kernel image packages (signed or the 7.x meta
	// layout), not their -dbg or -unsigned siblings.
	a.imageRE = regexp.MustCompile(`^linux-image-([0-9]+)\.([0-9]+)[.-][0-9A-Za-z.+~-]*-cloud-` + a.Name + `$`)
	// The package that holds vmlinuz when the image package is only a
	// meta package (trixie-backports 6.19 and later).
	a.binaryRE = regexp.MustCompile(`linux-binary-[0-9][0-9A-Za-z.+~-]*-cloud-` + a.Name + `\b`)
	return &a
}

// archNames lists the -arch values, sorted.
func archNames() []string {
	names := make([]string, 0, len(arches))
	for n := range arches {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// lookupArch returns the architecture named by -arch.
func lookupArch(name string) (*guestArch, error) {
	if a, ok := arches[name]; ok {
		return a, nil
	}
	return nil, fmt.Errorf("-arch %q: want one of %s", name, strings.Join(archNames(), ", "))
}

// GOARCH is the Go architecture the guest's binaries are built for.
func (a *guestArch) GOARCH() string { return a.Name }

// searchPattern is the apt-cache search pattern of the cloud images.
func (a *guestArch) searchPattern() string { return `^linux-image-.*-cloud-` + a.Name + `$` }

// objectArchs maps the suffix bpf2go gives an object built for one target
// architecture (-target amd64 gives fileio_x86_bpfel.o) to the Go
// architectures it is built for. Objects without one (-target bpfel) are
// for every architecture.
var objectArchs = map[string][]string{
	"x86":   {"amd64", "386"},
	"arm64": {"arm64"},
}

// hasObject reports whether a little-endian BPF object file belongs in this
// architecture's guests: arch-independent, or built for this architecture.
func (a *guestArch) hasObject(name string) bool {
	base, ok := strings.CutSuffix(name, "_bpfel.o")
	if !ok {
		return false
	}
	i := strings.LastIndexByte(base, '_')
	if i < 0 {
		return true
	}
	goarchs, ok := objectArchs[base[i+1:]]
	return !ok || slices.Contains(goarchs, a.GOARCH())
}

// checkImage refuses a kernel image qemu cannot boot with -kernel. amd64
// boots the bzImage as it is. arm64 takes the Image itself (Debian's
// vmlinuz, signed or not, from 6.1 to 7.3) or a gzip-compressed one, which
// qemu unpacks; not an EFI zboot image (a PE file around a compressed
// Image), which qemu 7.2 does not unpack.
func (a *guestArch) checkImage(path string) error {
	if a != archARM64 {
		return nil
	}
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	var h [64]byte
	if _, err := io.ReadFull(f, h[:]); err != nil {
		return fmt.Errorf("kernel image %s: %w", filepath.Base(path), err)
	}
	return arm64ImageKind(h[:])
}

// arm64ImageKind checks the first 64 bytes of an arm64 kernel image.
func arm64ImageKind(h []byte) error {
	switch {
	case len(h) >= 2 && h[0] == 0x1f && h[1] == 0x8b:
		return nil // gzip: qemu's arm loader unpacks it
	case len(h) >= 0x3c && string(h[0x38:0x3c]) == "ARM\x64":
		return nil // the arm64 Image header's magic
	case len(h) >= 8 && string(h[0:2]) == "MZ" && string(h[4:8]) == "zimg":
		return errors.New("EFI zboot kernel image (compressed payload): qemu-system-aarch64 cannot boot it with -kernel")
	}
	return errors.New("not an arm64 kernel Image (no ARM\\x64 magic) nor gzip-compressed")
}
