package lineage

import (
	"syscall"

	"github.com/lineaged/lineaged/lineage/event"
	"github.com/lineaged/lineaged/sensor"
)

// ioURingEvent maps a raw io_uring record (bpf/fileio_iouring.h,
// bpf/iouring.bpf.c) to its kind and payload.
func ioURingEvent(u *sensor.IOURing) (string, *event.IOURing) {
	if u.Op == sensor.IOURingSetup {
		out := &event.IOURing{Result: u.Result, Entries: u.Entries, SetupFlags: u.SetupFlags,
			SQPoll: u.SetupFlags&sensor.IOURingSetupSQPoll != 0, ParamsUnreadable: u.Unreadable, Killed: u.Killed}
		if u.IA32 {
			out.SyscallABI = "ia32"
		}
		return event.KindIOURingSetup, out
	}
	out := &event.IOURing{
		Op: sensor.IOURingOpName(u.Opcode), Opcode: u.Opcode, SQPoll: u.SQPoll, FixedFile: u.FixedFile,
		Path: u.Path, NewPath: u.NewPath, PathTruncated: u.PathTruncated, NewPathTruncated: u.NewPathTruncated,
		SendUnknown: u.SendUnknown, Unprepared: u.Unprepared, UserData: u.UserData,
	}
	if u.FD != -1 || u.FixedFile {
		fd := u.FD
		out.FD = &fd
	}
	if u.PathAsGiven {
		dfd := u.DirFD
		out.DirFD = &dfd
		out.PathSource = event.PathSourceAsGiven
		out.Flags = u.OpenFlags
		if u.Mode != 0 {
			m := u.Mode
			out.Perm = &m
		}
	}
	switch u.Family {
	case syscall.AF_INET:
		out.Family = "ipv4"
	case syscall.AF_INET6:
		out.Family = "ipv6"
	case syscall.AF_UNIX:
		out.Family = "unix"
		out.UnixPath = u.Path
		out.Path = ""
	}
	if u.Addr.IsValid() {
		out.DstIP = u.Addr.Addr().Unmap().String()
		out.DstPort = u.Addr.Port()
	}
	if u.Family != 0 && u.AddrFromCaller {
		out.DstSource = "caller"
	}
	return event.KindIOURingSubmit, out
}
