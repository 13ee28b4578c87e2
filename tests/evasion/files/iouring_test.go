//go:build linux && amd64

package files

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"unsafe"

	"github.com/lineaged/lineaged/sensor"
	"github.com/lineaged/lineaged/tests/testutil"
	"golang.org/x/sys/unix"
)

func init() {
	helpers["iouring"] = func(dir string) error { return ringOps(dir, false) }
	helpers["iouring-sqpoll"] = func(dir string) error { return ringOps(dir, true) }
}

// ringOps opens, creates and removes names through an io_uring only: an
// openat of "secret" relative to a dirfd, an openat creating "dropped",
// an unlinkat of "victim". None of it is a system call the file programs
// trace.
func ringOps(dir string, sqpoll bool) error {
	r, err := testutil.NewIOURing(sqpoll)
	if err != nil {
		return err
	}
	defer r.Close()
	dfd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY, 0)
	if err != nil {
		return err
	}
	defer unix.Close(dfd)
	for i, op := range []struct {
		code  uint8
		name  string
		flags uint32
	}{
		{testutil.IOURingOpOpenat, "secret", unix.O_RDONLY},
		{testutil.IOURingOpOpenat, "dropped", unix.O_CREAT | unix.O_WRONLY},
		{testutil.IOURingOpUnlinkat, "victim", 0},
	} {
		name := cstr(op.name)
		sqe := testutil.IOURingSQE{Opcode: op.code, FD: int32(dfd), Addr: uint64(uintptr(unsafe.Pointer(&name[0]))), UserData: uint64(i + 1)}
		if op.code == testutil.IOURingOpOpenat {
			sqe.OpFlags, sqe.Len = op.flags, 0o600
		}
		res, err := r.Do(sqe)
		runtime.KeepAlive(name)
		if err != nil {
			return err
		}
		if res < 0 {
			return unix.Errno(-res)
		}
		if op.code == testutil.IOURingOpOpenat {
			unix.Close(int(res))
		}
	}
	return nil
}

// TestRootIOURingOps: a session member's opens and unlink through an
// io_uring, with and without a kernel submission thread, come out of the
// whole sensor as io_uring records of the member with the opcodes and the
// names; before, the sensor reported nothing of them.
func TestRootIOURingOps(t *testing.T) {
	var u unix.Utsname
	if unix.Uname(&u) == nil {
		var major, minor int
		fmt.Sscanf(unix.ByteSliceToString(u.Release[:]), "%d.%d", &major, &minor)
		if major < 6 {
			t.Skip("the names of submitted requests are read from 6.0")
		}
	}
	s, r := runSensor(t)
	for _, mode := range []string{"iouring", "iouring-sqpoll"} {
		t.Run(mode, func(t *testing.T) {
			dir := tempDir(t)
			for _, f := range []string{"secret", "victim"} {
				if err := os.WriteFile(filepath.Join(dir, f), []byte("x"), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			h := startMember(t, s, r, mode, dir)
			files, _ := h.finish(t, r, dir)
			for _, f := range files {
				if strings.HasSuffix(f.Path, "/secret") || strings.HasSuffix(f.Path, "/dropped") || strings.HasSuffix(f.Path, "/victim") {
					t.Errorf("a syscall record of a ring's request: %s", describe(f))
				}
			}
			r.mu.Lock()
			rings := r.rings[h.pid]
			r.mu.Unlock()
			var got []string
			for _, u := range rings {
				if u.Op == sensor.IOURingSetup {
					got = append(got, "setup")
					continue
				}
				got = append(got, sensor.IOURingOpName(u.Opcode)+" "+u.Path)
				if !u.PathAsGiven || u.SQPoll != (mode == "iouring-sqpoll") || u.DirFD < 0 {
					t.Errorf("%s: %+v", sensor.IOURingOpName(u.Opcode), u)
				}
			}
			if want := "setup|openat secret|openat dropped|unlinkat victim"; strings.Join(got, "|") != want {
				t.Errorf("io_uring records %q, want %q", strings.Join(got, "|"), want)
			}
		})
	}
}
