package ocsf

import (
	"strings"

	"github.com/lineaged/lineaged/lineage/event"
	"github.com/lineaged/lineaged/sink/internal/jsonw"
	"github.com/lineaged/lineaged/sink/internal/v1obj"
)

// fileModify appends what a file.modify event changed: its op, the call,
// and the op's values (docs/schema.md#file).
func fileModify(st *v1obj.Marks, dst []byte, f *event.File) []byte {
	const at = "unmapped.lineaged.file"
	dst = st.OptStr(dst, "op", at, f.Op)
	dst = st.OptStr(dst, "syscall", at, f.Syscall)
	if f.Length != nil {
		dst = jsonw.AppendInt(jsonw.AppendKey(dst, "length"), *f.Length)
	}
	if f.UID != nil {
		dst = jsonw.AppendInt(jsonw.AppendKey(dst, "uid"), *f.UID)
	}
	if f.GID != nil {
		dst = jsonw.AppendInt(jsonw.AppendKey(dst, "gid"), *f.GID)
	}
	if f.Rdev != 0 {
		dst = jsonw.AppendUint(jsonw.AppendKey(dst, "rdev"), uint64(f.Rdev))
	}
	dst = st.OptStr(dst, "target", at, f.Target)
	dst = st.OptStr(dst, "xattr", at, f.Xattr)
	return dst
}

// fileModifyClass is File System Activity with the activity of a
// file.modify's op (docs/ocsf.md): a new name (link, symlink, mknod, mkdir)
// is Create, truncate Update, a change of owner or of a security or ACL
// attribute Set Security, times and other attributes Set Attributes.
func fileModifyClass(ev *event.Event, sys func(int, string, int, string) class) class {
	var op, xattr string
	if ev.File != nil {
		op, xattr = ev.File.Op, ev.File.Xattr
	}
	switch op {
	case event.FileOpLink, event.FileOpSymlink, event.FileOpMknod, event.FileOpMkdir:
		return sys(1, "File System Activity", 1, "Create")
	case event.FileOpTruncate:
		return sys(1, "File System Activity", 3, "Update")
	case event.FileOpChown:
		return sys(1, "File System Activity", 7, "Set Security")
	case event.FileOpSetxattr, event.FileOpRemovexattr:
		if strings.HasPrefix(xattr, "security.") || strings.HasPrefix(xattr, "system.posix_acl") {
			return sys(1, "File System Activity", 7, "Set Security")
		}
	}
	return sys(1, "File System Activity", 6, "Set Attributes")
}
