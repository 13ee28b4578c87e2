//go:build linux && amd64

package net

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/lineaged/lineaged/sensor"
	"golang.org/x/sys/unix"
)

// TestUnixConnect: AF_UNIX connects are how a member hands work to a
// daemon (docker, the systemd bus, tmux, ssh-agent). Each is a record
// naming the socket: a filesystem socket by its real path, resolved from
// the socket file in the kernel whatever name the member used (relative,
// through a symlink); an abstract one by its name; a failed one by the
// name the member gave, labelled as such.
func TestUnixConnect(t *testing.T) {
	e := newEnv(t)
	dir, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "daemon.sock")
	listenUnix(t, sock)
	if err := os.Symlink(sock, filepath.Join(dir, "link.sock")); err != nil {
		t.Fatal(err)
	}
	abstract := fmt.Sprintf("lineaged-netev-%d", os.Getpid())
	listenUnix(t, "@"+abstract)
	missing := filepath.Join(dir, "missing.sock")

	_, evs := e.runMember(t, "unix", dir, sock, "daemon.sock", filepath.Join(dir, "link.sock"), "@"+abstract, missing)
	cs := netRecords(evs)
	want := []struct {
		name                      string
		path                      string
		abstract, asGiven, caller bool
		result                    int32
	}{
		{"absolute", sock, false, false, false, 0},
		{"relative", sock, false, false, false, 0},
		{"symlink", sock, false, false, false, 0},
		{"abstract", abstract, true, true, false, 0},
		{"missing", missing, false, true, true, -int32(unix.ENOENT)},
	}
	if len(cs) != len(want) {
		t.Fatalf("%d network records, want %d:\n%s", len(cs), len(want), describe(cs))
	}
	for i, w := range want {
		c := cs[i]
		if c.Op != sensor.NetConnect || c.Family != unix.AF_UNIX || c.Path != w.path || c.Abstract != w.abstract ||
			c.PathAsGiven != w.asGiven || c.FromCaller != w.caller || c.Result != w.result || c.Rewritten || c.SockType != unix.SOCK_STREAM {
			t.Errorf("%s: %+v\nwant path %q abstract %v as-given %v from-caller %v result %d", w.name, *c, w.path, w.abstract, w.asGiven, w.caller, w.result)
		}
	}
}

// listenUnix listens on name ("@x" for an abstract name) in the test
// process, which is not a session member.
func listenUnix(t *testing.T, name string) {
	t.Helper()
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	if err := unix.Bind(fd, &unix.SockaddrUnix{Name: name}); err != nil {
		t.Fatal(err)
	}
	if err := unix.Listen(fd, 16); err != nil {
		t.Fatal(err)
	}
}

// unixConnects runs in the member: args are the directory to work in,
// then the names to connect to, in order.
func unixConnects(args []string) (result, error) {
	if err := os.Chdir(args[0]); err != nil {
		return result{}, err
	}
	for _, name := range args[1:] {
		fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM, 0)
		if err != nil {
			return result{}, err
		}
		err = unix.Connect(fd, &unix.SockaddrUnix{Name: name})
		if err != nil && err != unix.ENOENT {
			return result{}, fmt.Errorf("connect %s: %w", name, err)
		}
		unix.Close(fd)
	}
	return result{}, nil
}
