package ocsf

import (
	"strings"
	"testing"

	"github.com/lineaged/lineaged/lineage/event"
	"github.com/lineaged/lineaged/sink/internal/testevents"
)

// io_uring events take the class of what the request does where OCSF has
// one, Process Activity Other otherwise; every one validates and keeps
// the io_uring object under unmapped.lineaged.
func TestIOURingMapping(t *testing.T) {
	fd := int32(5)
	for _, c := range []struct {
		name     string
		kind     string
		u        event.IOURing
		class    int
		activity int
		has      string
	}{
		{"setup", event.KindIOURingSetup, event.IOURing{Result: 3, Entries: 8}, 1007, 99, `"io_uring":{"result":3,"entries":8}`},
		{"openat", event.KindIOURingSubmit, event.IOURing{Op: "openat", Opcode: 18, Path: "a/b", PathSource: event.PathSourceAsGiven}, 1001, 14, `"file":{"name":"b","path":"a/b"`},
		{"renameat", event.KindIOURingSubmit, event.IOURing{Op: "renameat", Opcode: 35, Path: "a", NewPath: "b"}, 1001, 5, `"file_result":{"name":"b","path":"b"`},
		{"unlinkat", event.KindIOURingSubmit, event.IOURing{Op: "unlinkat", Opcode: 36, Path: "/tmp/x"}, 1001, 4, `"path":"/tmp/x"`},
		{"ftruncate by fd", event.KindIOURingSubmit, event.IOURing{Op: "ftruncate", Opcode: 55, FD: &fd}, 1001, 3, `"file":{"name":"fd:5"`},
		{"connect", event.KindIOURingSubmit, event.IOURing{Op: "connect", Opcode: 16, Family: "ipv4", DstIP: "10.0.0.1", DstPort: 443, DstSource: "caller"}, 4001, 1, `"dst_endpoint":{"ip":"10.0.0.1","port":443}`},
		{"connect to unix", event.KindIOURingSubmit, event.IOURing{Op: "connect", Opcode: 16, Family: "unix", UnixPath: "/run/x.sock"}, 4001, 1, `"dst_endpoint":{"name":"/run/x.sock"}`},
		{"listen, no address read", event.KindIOURingSubmit, event.IOURing{Op: "listen", Opcode: 57}, 1007, 99, `"op":"listen"`},
		{"sendmsg, no address read", event.KindIOURingSubmit, event.IOURing{Op: "sendmsg", Opcode: 9, SendUnknown: true}, 1007, 99, `"send_unknown":true`},
		{"uring_cmd", event.KindIOURingSubmit, event.IOURing{Op: "uring_cmd", Opcode: 46}, 1007, 99, `"op":"uring_cmd"`},
	} {
		t.Run(c.name, func(t *testing.T) {
			ev := testevents.New(c.kind, 1, "s")
			u := c.u
			ev.IOURing = &u
			out := encodeValid(t, ev)
			if out.ClassUID != c.class || out.ActivityID != c.activity {
				t.Errorf("class %d activity %d, want %d %d", out.ClassUID, out.ActivityID, c.class, c.activity)
			}
			if b := string(encode(t, ev)); !strings.Contains(b, c.has) || !strings.Contains(b, `"unmapped":{"lineaged":`) || !strings.Contains(b, `"io_uring":{`) {
				t.Errorf("output lacks %s:\n%.3000s", c.has, b)
			}
		})
	}
}
