package native

import (
	"github.com/lineaged/lineaged/lineage/event"
	"github.com/lineaged/lineaged/sink/internal/jsonw"
	"github.com/lineaged/lineaged/sink/internal/v1obj"
)

// fileModify appends what a file.modify event changed: its op, the call,
// and the op's values (docs/schema.md#file).
func fileModify(st *v1obj.Marks, dst []byte, f *event.File) []byte {
	const at = "file"
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
