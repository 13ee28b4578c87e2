package lineage

import (
	"syscall"
	"testing"

	"github.com/lineaged/lineaged/sensor"
)

// file.result is the negative errno of a failed operation (docs/schema.md);
// a successful open returns a descriptor number, which means nothing to a
// reader of the event and must not look like a result.
func TestFileResultIsOnlyAFailure(t *testing.T) {
	cases := []struct {
		op     sensor.FileOp
		result int32
		want   int32
	}{
		{sensor.FileOpen, 3, 0},
		{sensor.FileOpen, -int32(syscall.ENOENT), -int32(syscall.ENOENT)},
		{sensor.FileUnlink, 0, 0},
		{sensor.FileRename, -int32(syscall.EXDEV), -int32(syscall.EXDEV)},
	}
	for _, c := range cases {
		_, f := fileEvent(&sensor.File{Op: c.op, Path: "/x", Result: c.result})
		if f.Result != c.want {
			t.Errorf("op %v result %d: file.result %d, want %d", c.op, c.result, f.Result, c.want)
		}
	}
}
