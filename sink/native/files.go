package native

import (
	"github.com/lineaged/lineaged/lineage/event"
	"github.com/lineaged/lineaged/sink/internal/v1obj"
)

// fileSource appends where a file event's path comes from and how far the
// caller's name could be trusted (docs/schema.md#file).
func fileSource(st *v1obj.Marks, dst []byte, f *event.File) []byte {
	dst = st.OptStr(dst, "path_source", "file", f.PathSource)
	dst = st.OptStr(dst, "raw_path", "file", f.RawPath)
	dst = st.OptStr(dst, "new_raw_path", "file", f.NewRawPath)
	if f.NameChanged {
		dst = boolField(dst, "name_changed", true)
	}
	if f.NameUnreadable {
		dst = boolField(dst, "name_unreadable", true)
	}
	if f.AtEntry {
		dst = boolField(dst, "at_entry", true)
	}
	if f.ByHandle {
		dst = boolField(dst, "by_handle", true)
	}
	if f.FDChanged {
		dst = boolField(dst, "fd_changed", true)
	}
	if f.Exchange {
		dst = boolField(dst, "exchange", true)
	}
	if f.Inode != 0 {
		dst = uintField(dst, "dev", f.Dev)
		dst = uintField(dst, "inode", f.Inode)
		dst = intField(dst, "mount_id", int64(f.MountID))
	}
	return dst
}
