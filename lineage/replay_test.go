package lineage

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/lineaged/lineaged/lineage/event"
	"github.com/lineaged/lineaged/sensor/procfs"
)

// Replayed providers answer what was recorded, in order, and fail loudly on
// anything the capture does not hold.
func TestFactBookAnswersOnlyFromTheCapture(t *testing.T) {
	var facts []Fact
	live := RecordDeps(Deps{
		Host:     staticHost{},
		Boot:     staticBoot{},
		Proc:     goneProc{},
		Binaries: nilBinaries{},
		Users:    oneUser{},
	}, func(f Fact) { facts = append(facts, f) })
	live.Host.Host()
	live.Boot.BootTime()
	live.Users.UserName(1000)
	_, errLive := live.Proc.Proc(42)

	b := NewFactBook()
	for _, f := range facts {
		b.Add(f)
	}
	d := b.Deps()
	if h, err := d.Host.Host(); err != nil || h.BootID != "boot" {
		t.Fatalf("host %+v %v", h, err)
	}
	if n, ok := d.Users.UserName(1000); !ok || n != "ada" {
		t.Fatalf("user %q %v", n, ok)
	}
	if _, err := d.Proc.Proc(42); !errors.Is(err, procfs.ErrGone) || !errors.Is(errLive, procfs.ErrGone) {
		t.Fatalf("a process gone live is gone in replay: %v", err)
	}
	if _, err := d.Proc.Proc(7); !errors.Is(err, ErrFactMissing) {
		t.Fatalf("unrecorded process: %v", err)
	}
	if _, ok := d.Users.UserName(0); ok {
		t.Fatal("unrecorded user answered")
	}
	miss := strings.Join(b.Missing(), ",")
	if !strings.Contains(miss, "proc 7") || !strings.Contains(miss, "user 0") {
		t.Fatalf("missing = %q", miss)
	}
}

type staticHost struct{}

func (staticHost) Host() (event.Host, error) { return event.Host{Hostname: "h", BootID: "boot"}, nil }

type staticBoot struct{}

func (staticBoot) BootTime() (time.Time, error) { return time.Unix(1000, 0), nil }

type goneProc struct{}

func (goneProc) Proc(uint32) (*procfs.Proc, error) { return nil, procfs.ErrGone }
func (goneProc) Env(uint32, string) (string, bool, error) {
	return "", false, procfs.ErrGone
}
func (goneProc) Cwd(uint32) (string, error) { return "", procfs.ErrGone }

type nilBinaries struct{}

func (nilBinaries) Cached(BinaryRequest) (*event.Binary, bool) { return nil, false }
func (nilBinaries) Inspect(context.Context, BinaryRequest) *event.Binary {
	return &event.Binary{}
}

type oneUser struct{}

func (oneUser) UserName(uid uint32) (string, bool) { return "ada", uid == 1000 }
