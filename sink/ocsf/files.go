package ocsf

import (
	"github.com/lineaged/lineaged/lineage/event"
	"github.com/lineaged/lineaged/sink/internal/jsonw"
	"github.com/lineaged/lineaged/sink/internal/v1obj"
)

// fileSource appends, under unmapped.lineaged.file, where a file event's
// path comes from and how far the caller's name could be trusted: OCSF's
// File object has no attribute for either (docs/ocsf.md).
func fileSource(st *v1obj.Marks, dst []byte, f *event.File) []byte {
	const at = "unmapped.lineaged.file"
	dst = st.OptStr(dst, "path_source", at, f.PathSource)
	dst = st.OptStr(dst, "raw_path", at, f.RawPath)
	dst = st.OptStr(dst, "new_raw_path", at, f.NewRawPath)
	if f.NameChanged {
		dst = jsonw.AppendBool(jsonw.AppendKey(dst, "name_changed"), true)
	}
	if f.NameUnreadable {
		dst = jsonw.AppendBool(jsonw.AppendKey(dst, "name_unreadable"), true)
	}
	if f.AtEntry {
		dst = jsonw.AppendBool(jsonw.AppendKey(dst, "at_entry"), true)
	}
	if f.ByHandle {
		dst = jsonw.AppendBool(jsonw.AppendKey(dst, "by_handle"), true)
	}
	if f.FDChanged {
		dst = jsonw.AppendBool(jsonw.AppendKey(dst, "fd_changed"), true)
	}
	if f.Exchange {
		dst = jsonw.AppendBool(jsonw.AppendKey(dst, "exchange"), true)
	}
	if f.Inode != 0 {
		dst = jsonw.AppendUint(jsonw.AppendKey(dst, "dev"), f.Dev)
		dst = jsonw.AppendUint(jsonw.AppendKey(dst, "inode"), f.Inode)
		dst = jsonw.AppendInt(jsonw.AppendKey(dst, "mount_id"), int64(f.MountID))
	}
	return dst
}
