package lineage

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/lineaged/lineaged/lineage/event"
)

// LocalHost implements HostInfo from the running system. Root prefixes the
// files read (/etc, /proc), "" meaning "/".
type LocalHost struct{ Root string }

// Host implements HostInfo.
func (l LocalHost) Host() (event.Host, error) {
	var h event.Host
	var err error
	if h.Hostname, err = os.Hostname(); err != nil {
		return h, fmt.Errorf("hostname: %w", err)
	}
	read := func(p string) (string, error) {
		b, err := os.ReadFile(filepath.Join(l.root(), p))
		return strings.TrimSpace(string(b)), err
	}
	if h.BootID, err = read("proc/sys/kernel/random/boot_id"); err != nil {
		return h, fmt.Errorf("boot id: %w", err)
	}
	if id, err := read("etc/machine-id"); err == nil {
		h.MachineID = id
	}
	if b, err := os.ReadFile(filepath.Join(l.root(), "etc/os-release")); err == nil {
		h.OS = osRelease(b)
	}
	if r, err := read("proc/sys/kernel/osrelease"); err == nil {
		h.Kernel = r
	}
	return h, nil
}

func (l LocalHost) root() string {
	if l.Root == "" {
		return "/"
	}
	return l.Root
}

func osRelease(b []byte) string {
	var name, pretty string
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), "=")
		if !ok {
			continue
		}
		v = strings.Trim(v, `"'`)
		switch k {
		case "PRETTY_NAME":
			pretty = v
		case "NAME":
			name = v
		}
	}
	if pretty != "" {
		return pretty
	}
	return name
}

// LocalBoot implements BootClock from CLOCK_REALTIME - CLOCK_BOOTTIME, the
// same clock bpf_ktime_get_boot_ns reads. It is sampled once; NTP steps after
// start are not followed (event times then drift by the step).
type LocalBoot struct{}

// BootTime implements BootClock.
func (LocalBoot) BootTime() (time.Time, error) {
	var rt, bt unix.Timespec
	// Read realtime between two boottime reads and use the midpoint, so the
	// offset is not skewed by a preemption between the calls.
	var bt2 unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_BOOTTIME, &bt); err != nil {
		return time.Time{}, fmt.Errorf("clock_gettime(BOOTTIME): %w", err)
	}
	if err := unix.ClockGettime(unix.CLOCK_REALTIME, &rt); err != nil {
		return time.Time{}, fmt.Errorf("clock_gettime(REALTIME): %w", err)
	}
	if err := unix.ClockGettime(unix.CLOCK_BOOTTIME, &bt2); err != nil {
		return time.Time{}, fmt.Errorf("clock_gettime(BOOTTIME): %w", err)
	}
	mid := (bt.Nano() + bt2.Nano()) / 2
	return time.Unix(0, rt.Nano()-mid).UTC(), nil
}
