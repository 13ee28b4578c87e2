package ocsf

import (
	"strconv"

	"github.com/lineaged/lineaged/lineage/event"
	"github.com/lineaged/lineaged/sink/internal/jsonw"
	"github.com/lineaged/lineaged/sink/internal/v1obj"
)

// ioURingClass maps io_uring.setup and io_uring.submit (docs/ocsf.md): a
// request whose opcode has an OCSF activity takes it, File System
// Activity for names (openat, openat2: Open; unlinkat: Delete; renameat:
// Rename; mkdirat, symlinkat, linkat: Create; ftruncate: Update;
// setxattr, fsetxattr: Set Attributes) and Network Activity for a
// connect (Open), bind and listen (Listen), accept (Open) and sends
// (Traffic) whose address was read (the class needs an endpoint: today
// a connect's). A setup, a network request of no known address and every
// other opcode (socket, uring_cmd, msg_ring, files_update,
// fixed_fd_install, ...) is Process Activity, activity Other. The io_uring object is under unmapped.lineaged.io_uring
// in every case.
func ioURingClass(ev *event.Event, sys func(int, string, int, string) class) class {
	other := sys(7, "Process Activity", 99, "Other")
	u := ev.IOURing
	if ev.Kind != event.KindIOURingSubmit || u == nil {
		return other
	}
	fs := func(act int, name string) class { return sys(1, "File System Activity", act, name) }
	net := func(act int, name string) class {
		return class{uid: 4001, category: 4, name: "Network Activity", categoryName: "Network Activity", activity: act, activityName: name}
	}
	if u.DstIP == "" && u.UnixPath == "" {
		// Network Activity needs an endpoint: only a request whose
		// destination was read (a connect's) is one.
		net = func(int, string) class { return other }
	}
	switch u.Op {
	case "openat", "openat2":
		return fs(14, "Open")
	case "unlinkat":
		return fs(4, "Delete")
	case "renameat":
		return fs(5, "Rename")
	case "mkdirat", "symlinkat", "linkat":
		return fs(1, "Create")
	case "ftruncate":
		return fs(3, "Update")
	case "setxattr", "fsetxattr":
		return fs(6, "Set Attributes")
	case "connect", "accept":
		return net(1, "Open")
	case "bind", "listen":
		return net(7, "Listen")
	case "send", "sendmsg", "send_zc", "sendmsg_zc":
		return net(6, "Traffic")
	}
	return other
}

// ioURingFile writes file (and file_result) of a File System Activity
// from an io_uring.submit: the names as the request gave them. A request
// whose names were not read (by fd, or an older kernel) has a file of no
// path, named by its fd.
func ioURingFile(st *v1obj.Marks, dst []byte, u *event.IOURing) []byte {
	dst = append(jsonw.AppendKey(dst, "file"), '{')
	switch {
	case u.Path != "":
		dst = st.Str(dst, "name", "file", base(u.Path))
		dst = st.Str(dst, "path", "file", u.Path)
	case u.FD != nil:
		dst = rawField(dst, "name", `"fd:`+strconv.FormatInt(int64(*u.FD), 10)+`"`)
	default:
		dst = rawField(dst, "name", `""`)
	}
	dst = intField(dst, "type_id", 0)
	dst = rawField(dst, "type", `"Unknown"`)
	dst = append(dst, '}')
	if u.NewPath != "" {
		dst = append(jsonw.AppendKey(dst, "file_result"), '{')
		dst = st.Str(dst, "name", "file_result", base(u.NewPath))
		dst = st.Str(dst, "path", "file_result", u.NewPath)
		dst = intField(dst, "type_id", 0)
		dst = rawField(dst, "type", `"Unknown"`)
		dst = append(dst, '}')
	}
	return dst
}

// ioURingNet writes dst_endpoint and connection_info of a Network
// Activity from an io_uring.submit; the destination only when read (a
// connect's).
func ioURingNet(st *v1obj.Marks, dst []byte, u *event.IOURing, listen bool) []byte {
	switch {
	case u.UnixPath != "":
		dst = append(jsonw.AppendKey(dst, "dst_endpoint"), '{')
		dst = st.Str(dst, "name", "dst_endpoint", u.UnixPath)
		dst = append(dst, '}')
	case u.DstIP != "":
		dst = append(jsonw.AppendKey(dst, "dst_endpoint"), '{')
		dst = st.Str(dst, "ip", "dst_endpoint", u.DstIP)
		dst = intField(dst, "port", int64(u.DstPort))
		dst = append(dst, '}')
	}
	dst = append(jsonw.AppendKey(dst, "connection_info"), '{')
	if listen {
		dst = intField(dst, "direction_id", 1)
		dst = rawField(dst, "direction", `"Inbound"`)
	} else {
		dst = intField(dst, "direction_id", 2)
		dst = rawField(dst, "direction", `"Outbound"`)
	}
	switch u.Family {
	case "ipv4":
		dst = intField(dst, "protocol_ver_id", 4)
		dst = rawField(dst, "protocol_ver", `"Internet Protocol version 4 (IPv4)"`)
	case "ipv6":
		dst = intField(dst, "protocol_ver_id", 6)
		dst = rawField(dst, "protocol_ver", `"Internet Protocol version 6 (IPv6)"`)
	}
	return append(dst, '}')
}
