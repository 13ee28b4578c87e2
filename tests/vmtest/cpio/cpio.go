// Package cpio writes newc ("070701") cpio archives, the format the kernel
// unpacks as an initramfs: the kernel matrix's test guests and the systemd
// guest of the service test are booted from one.
package cpio

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strings"
)

// New returns a Writer writing to w.
func New(w io.Writer) *Writer { return &Writer{w: w} }

// Writer writes a newc ("070701") cpio archive, the format the kernel
// unpacks as an initramfs. Paths are relative, without a leading slash.
type Writer struct {
	w   io.Writer
	ino uint32
	err error
}

// The file type bits of a cpio header's mode.
const (
	ModeDir     = 0o040000
	ModeFile    = 0o100000
	ModeChar    = 0o020000
	ModeSymlink = 0o120000
)

func (c *Writer) header(name string, mode, size, rdevMajor, rdevMinor uint32) {
	if c.err != nil {
		return
	}
	c.ino++
	nlink := uint32(1)
	if mode&0o170000 == ModeDir {
		nlink = 2
	}
	hdr := fmt.Sprintf("070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X",
		c.ino, mode, 0, 0, nlink, 0, size, 0, 0, rdevMajor, rdevMinor, len(name)+1, 0)
	c.write([]byte(hdr + name + "\x00"))
	c.pad(len(hdr) + len(name) + 1)
}

func (c *Writer) write(b []byte) {
	if c.err == nil {
		_, c.err = c.w.Write(b)
	}
}

// pad aligns to 4 bytes after n bytes written.
func (c *Writer) pad(n int) {
	if r := n % 4; r != 0 {
		c.write(make([]byte, 4-r))
	}
}

// Dir adds a directory.
func (c *Writer) Dir(name string, perm uint32) {
	c.header(name, ModeDir|perm, 0, 0, 0)
}

// File adds a regular file with the given contents.
func (c *Writer) File(name string, perm uint32, data []byte) {
	c.header(name, ModeFile|perm, uint32(len(data)), 0, 0)
	c.write(data)
	c.pad(len(data))
}

// CopyFile adds a regular file read from src; perm 0 keeps src's mode.
func (c *Writer) CopyFile(name string, perm uint32, src string) {
	if c.err != nil {
		return
	}
	data, err := os.ReadFile(src)
	if err != nil {
		c.err = err
		return
	}
	if perm == 0 {
		info, err := os.Stat(src)
		if err != nil {
			c.err = err
			return
		}
		perm = uint32(info.Mode().Perm())
	}
	c.File(name, perm, data)
}

// Symlink adds a symbolic link to target.
func (c *Writer) Symlink(name, target string) {
	c.header(name, ModeSymlink|0o777, uint32(len(target)), 0, 0)
	c.write([]byte(target))
	c.pad(len(target))
}

// CharDev adds a character device node.
func (c *Writer) CharDev(name string, perm, major, minor uint32) {
	c.header(name, ModeChar|perm, 0, major, minor)
}

// Close writes the trailer and returns the first error.
func (c *Writer) Close() error {
	c.header("TRAILER!!!", 0, 0, 0, 0)
	return c.err
}

// AddTar adds every entry of a tar archive (a root file system), under the
// same names without a leading "./" or "/". Hard links become symbolic
// links to their target (an initramfs has no link table); FIFOs, block
// devices and sockets are left out.
func (c *Writer) AddTar(r io.Reader) error {
	tr := tar.NewReader(r)
	for c.err == nil {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("read tar: %w", err)
		}
		name := strings.TrimPrefix(strings.TrimPrefix(path.Clean(h.Name), "./"), "/")
		if name == "." || name == "" {
			continue
		}
		perm := uint32(h.Mode) & 0o7777
		switch h.Typeflag {
		case tar.TypeDir:
			c.Dir(name, perm)
		case tar.TypeReg:
			data, err := io.ReadAll(tr)
			if err != nil {
				return fmt.Errorf("read tar %s: %w", h.Name, err)
			}
			c.File(name, perm, data)
		case tar.TypeSymlink:
			c.Symlink(name, h.Linkname)
		case tar.TypeLink:
			c.Symlink(name, "/"+strings.TrimPrefix(strings.TrimPrefix(path.Clean(h.Linkname), "./"), "/"))
		case tar.TypeChar:
			c.CharDev(name, perm, uint32(h.Devmajor), uint32(h.Devminor))
		}
	}
	return c.err
}
