package native

import (
	"github.com/lineaged/lineaged/lineage/event"
	"github.com/lineaged/lineaged/sink/internal/v1obj"
)

// netOps writes the net fields of the network operations (docs/schema.md
// #net): AF_UNIX names, where the destination was read, the ABI.
func netOps(st *v1obj.Marks, dst []byte, n *event.Net) []byte {
	dst = st.OptStr(dst, "socket_type", "net", n.SocketType)
	dst = st.OptStr(dst, "unix_path", "net", n.UnixPath)
	dst = optTrue(dst, "unix_abstract", n.UnixAbstract)
	dst = optTrue(dst, "unix_path_as_given", n.UnixPathAsGiven)
	dst = optTrue(dst, "unix_path_truncated", n.UnixPathTruncated)
	dst = st.OptStr(dst, "dst_source", "net", n.DstSource)
	dst = optTrue(dst, "dst_rewritten", n.DstRewritten)
	dst = optTrue(dst, "sockaddr_unreadable", n.SockaddrUnreadable)
	dst = st.OptStr(dst, "syscall_abi", "net", n.SyscallABI)
	dst = optTrue(dst, "socketcall", n.Socketcall)
	dst = optTrue(dst, "fastopen", n.FastOpen)
	dst = optTrue(dst, "fd_changed", n.FDChanged)
	if n.Backlog != 0 {
		dst = uintField(dst, "backlog", uint64(n.Backlog))
	}
	if n.Messages != 0 {
		dst = uintField(dst, "messages", uint64(n.Messages))
	}
	return dst
}

// optTrue writes key: true when v, nothing otherwise.
func optTrue(dst []byte, key string, v bool) []byte {
	if !v {
		return dst
	}
	return boolField(dst, key, true)
}
