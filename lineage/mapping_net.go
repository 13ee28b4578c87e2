package lineage

import (
	"syscall"

	"github.com/lineaged/lineaged/lineage/event"
	"github.com/lineaged/lineaged/sensor"
)

// fileABI names the syscall ABI of a file record when it is not x86-64's.
func fileABI(f *sensor.File) string {
	if f.IA32 {
		return "ia32"
	}
	return ""
}

// netKind is the event kind of a raw network record.
func netKind(c *sensor.Connect) string {
	switch c.Op {
	case sensor.NetSend:
		return event.KindNetSend
	case sensor.NetListen:
		return event.KindNetListen
	}
	return event.KindNetConnect
}

// netOpFields adds what records since the network operations carry
// (bpf/fileio_net.h) to n, which netEvent filled from the common part.
func netOpFields(c *sensor.Connect, n *event.Net) {
	if c.Family == syscall.AF_UNIX {
		n.Family = "unix"
		n.Protocol = "unix"
		n.UnixPath = c.Path
		n.UnixAbstract = c.Abstract
		n.UnixPathAsGiven = c.PathAsGiven
		n.UnixPathTruncated = c.PathTruncated
	}
	switch c.SockType {
	case syscall.SOCK_STREAM:
		n.SocketType = "stream"
	case syscall.SOCK_DGRAM:
		n.SocketType = "dgram"
	case syscall.SOCK_SEQPACKET:
		n.SocketType = "seqpacket"
	case syscall.SOCK_RAW:
		n.SocketType = "raw"
	}
	switch {
	case c.Op == sensor.NetListen:
	case c.FromCaller:
		n.DstSource = "caller"
	case c.Syscall != 0:
		// A record with the network-operation part whose destination
		// is not the caller's came from the socket.
		n.DstSource = "socket"
	}
	n.DstRewritten = c.Rewritten
	n.SockaddrUnreadable = c.Unreadable
	if c.IA32 {
		n.SyscallABI = "ia32"
	}
	n.Socketcall = c.Socketcall
	n.FastOpen = c.FastOpen
	n.FDChanged = c.FDChanged
	switch c.Op {
	case sensor.NetListen:
		n.Backlog = c.Count
	case sensor.NetSend:
		n.Messages = c.Count
		// A send's result is bytes (or messages) sent; only a failure
		// is reported.
		if n.Result > 0 {
			n.Result = 0
		}
	}
}
