//go:build linux

package kernel

import (
	"strconv"
	"strings"

	"github.com/lineaged/lineaged/sensor"
)

// procMemTamper reports a session member's open for writing of the
// sensor's memory file, /proc/<sensor pid>/mem or
// /proc/<sensor pid>/task/<tid>/mem: a write there patches the sensor's
// code or data as ptrace would, without ptrace. It is seen in the open
// record (the file program resolves the opened file's path, so
// /proc/self/... and /proc/<pid>/fd/... links name the process they lead
// to); a refused open (EACCES, EPERM) is reported too, with -errno in
// Code (0 when it succeeded), unless lsmRefuses: where the BPF LSM runs,
// it refused the open itself (ptrace_access_check) and reported that. The
// returned event, if any, goes before ev.
func procMemTamper(ev *sensor.Event, self sensor.ProcKey, lsmRefuses bool) *sensor.Event {
	if ev.Kind != sensor.KindOpen || ev.File == nil || self.PID == 0 || !ev.Session.InSession() {
		return nil
	}
	if lsmRefuses && ev.File.Result < 0 {
		return nil
	}
	if a := ev.File.Access(); a != sensor.AccessWrite && a != sensor.AccessReadWrite {
		return nil
	}
	if procMemOf(ev.File.Path) != self.PID {
		return nil
	}
	h := ev.Header
	h.Kind = sensor.KindTamper
	code := ev.File.Result // the descriptor, or -errno
	if code > 0 {
		code = 0
	}
	return &sensor.Event{Header: h, Tamper: &sensor.Tamper{Op: sensor.TamperProcMem, Target: self,
		Path: ev.File.Path, Code: code}}
}

// procMemOf is the pid whose memory file path names, or 0.
func procMemOf(path string) uint32 {
	rest, ok := strings.CutPrefix(path, "/proc/")
	if !ok {
		return 0
	}
	pidStr, rest, ok := strings.Cut(rest, "/")
	if !ok {
		return 0
	}
	pid, err := strconv.ParseUint(pidStr, 10, 32)
	if err != nil || pid == 0 {
		return 0
	}
	if rest == "mem" {
		return uint32(pid)
	}
	tid, file, ok := strings.Cut(strings.TrimPrefix(rest, "task/"), "/")
	if !strings.HasPrefix(rest, "task/") || !ok || file != "mem" {
		return 0
	}
	if _, err := strconv.ParseUint(tid, 10, 32); err != nil {
		return 0
	}
	return uint32(pid)
}
