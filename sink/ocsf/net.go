package ocsf

import (
	"github.com/lineaged/lineaged/lineage/event"
	"github.com/lineaged/lineaged/sink/internal/jsonw"
	"github.com/lineaged/lineaged/sink/internal/v1obj"
)

// netOpClass maps net.send (6 Traffic) and net.listen (7 Listen) to
// Network Activity; a failure keeps the activity and says so in status.
func netOpClass(ev *event.Event) class {
	c := class{uid: 4001, category: 4, name: "Network Activity", categoryName: "Network Activity", activity: 6, activityName: "Traffic"}
	if ev.Kind == event.KindNetListen {
		c.activity, c.activityName = 7, "Listen"
	}
	return c
}

// netEndpoints writes dst_endpoint (the peer: an address and port, or an
// AF_UNIX socket by name) and src_endpoint (the local end; for net.listen
// the listening address or AF_UNIX name).
func netEndpoints(st *v1obj.Marks, dst []byte, kind string, n *event.Net) []byte {
	listen := kind == event.KindNetListen
	switch {
	case !listen && n.UnixPath != "":
		dst = append(jsonw.AppendKey(dst, "dst_endpoint"), '{')
		dst = st.Str(dst, "name", "dst_endpoint", n.UnixPath)
		dst = append(dst, '}')
	case !listen && n.DstIP != "":
		dst = append(jsonw.AppendKey(dst, "dst_endpoint"), '{')
		dst = st.Str(dst, "ip", "dst_endpoint", n.DstIP)
		dst = intField(dst, "port", int64(n.DstPort))
		dst = append(dst, '}')
	}
	switch {
	case n.SrcIP != "":
		dst = append(jsonw.AppendKey(dst, "src_endpoint"), '{')
		dst = st.Str(dst, "ip", "src_endpoint", n.SrcIP)
		if n.SrcPort != 0 {
			dst = intField(dst, "port", int64(n.SrcPort))
		}
		dst = append(dst, '}')
	case listen && n.UnixPath != "":
		dst = append(jsonw.AppendKey(dst, "src_endpoint"), '{')
		dst = st.Str(dst, "name", "src_endpoint", n.UnixPath)
		dst = append(dst, '}')
	}
	return dst
}

// netDirection: a listener waits for inbound connections; everything
// else the sensor reports goes out.
func netDirection(dst []byte, kind string) []byte {
	if kind == event.KindNetListen {
		dst = intField(dst, "direction_id", 1)
		return rawField(dst, "direction", `"Inbound"`)
	}
	dst = intField(dst, "direction_id", 2)
	return rawField(dst, "direction", `"Outbound"`)
}

// unmappedNet carries the net fields OCSF has no attribute for under
// unmapped.lineaged.net (docs/ocsf.md).
func unmappedNet(st *v1obj.Marks, dst []byte, n *event.Net) []byte {
	if n.SocketType == "" && n.DstSource == "" && n.SyscallABI == "" && n.Backlog == 0 && n.Messages == 0 &&
		!n.UnixAbstract && !n.UnixPathAsGiven && !n.UnixPathTruncated && !n.DstRewritten && !n.SockaddrUnreadable &&
		!n.Socketcall && !n.FastOpen && !n.FDChanged {
		return dst
	}
	const prefix = "unmapped.lineaged.net"
	dst = append(jsonw.AppendKey(dst, "net"), '{')
	dst = st.OptStr(dst, "socket_type", prefix, n.SocketType)
	dst = st.OptStr(dst, "dst_source", prefix, n.DstSource)
	dst = st.OptStr(dst, "syscall_abi", prefix, n.SyscallABI)
	for _, f := range [...]struct {
		key string
		v   bool
	}{
		{"unix_abstract", n.UnixAbstract},
		{"unix_path_as_given", n.UnixPathAsGiven},
		{"unix_path_truncated", n.UnixPathTruncated},
		{"dst_rewritten", n.DstRewritten},
		{"sockaddr_unreadable", n.SockaddrUnreadable},
		{"socketcall", n.Socketcall},
		{"fastopen", n.FastOpen},
		{"fd_changed", n.FDChanged},
	} {
		if f.v {
			dst = jsonw.AppendBool(jsonw.AppendKey(dst, f.key), true)
		}
	}
	if n.Backlog != 0 {
		dst = jsonw.AppendUint(jsonw.AppendKey(dst, "backlog"), uint64(n.Backlog))
	}
	if n.Messages != 0 {
		dst = jsonw.AppendUint(jsonw.AppendKey(dst, "messages"), uint64(n.Messages))
	}
	return append(dst, '}')
}
