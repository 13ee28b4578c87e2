package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/lineaged/lineaged/tests/testutil"
)

// fakeSystemd is a NOTIFY_SOCKET: it keeps every datagram the sensor sends.
type fakeSystemd struct {
	path string
	conn *net.UnixConn
	mu   sync.Mutex
	msgs []notifyMsg
}

type notifyMsg struct {
	at    time.Time
	state string
}

func newFakeSystemd(t *testing.T) *fakeSystemd {
	t.Helper()
	f := &fakeSystemd{path: filepath.Join(t.TempDir(), "notify.sock")}
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: f.path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	f.conn = c
	t.Cleanup(func() { c.Close() })
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := c.Read(buf)
			if err != nil {
				return
			}
			f.mu.Lock()
			f.msgs = append(f.msgs, notifyMsg{time.Now(), string(buf[:n])})
			f.mu.Unlock()
		}
	}()
	return f
}

// with counts the datagrams holding line since from, and returns the last.
func (f *fakeSystemd) with(line string, from time.Time) (int, string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	n, last := 0, ""
	for _, m := range f.msgs {
		if m.at.Before(from) {
			continue
		}
		for _, l := range strings.Split(m.state, "\n") {
			if l == line || strings.HasPrefix(line, "STATUS=") && strings.HasPrefix(l, line) {
				n, last = n+1, m.state
			}
		}
	}
	return n, last
}

func (f *fakeSystemd) dump() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var b strings.Builder
	for _, m := range f.msgs {
		fmt.Fprintf(&b, "%s %q\n", m.at.Format("15:04:05.000"), m.state)
	}
	return b.String()
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// startService runs `lineaged run` as systemd would: NOTIFY_SOCKET and a
// WATCHDOG_USEC of watchdog.
func startService(t *testing.T, sd *fakeSystemd, watchdog time.Duration, stdout *os.File, args ...string) (*exec.Cmd, *testutil.SyncBuffer) {
	t.Helper()
	cmd := exec.Command(binary, append([]string{"run", "--scope", "all"}, args...)...)
	if stdout != nil {
		cmd.Stdout = stdout
	}
	cmd.Env = append(os.Environ(), "LINEAGED_STATE_DIR="+t.TempDir(),
		"NOTIFY_SOCKET="+sd.path, fmt.Sprintf("WATCHDOG_USEC=%d", watchdog.Microseconds()))
	stderr := &testutil.SyncBuffer{}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _, _ = cmd.Process.Wait() })
	return cmd, stderr
}

func scrape(t *testing.T, addr string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parsing /metrics: %v", err)
	}
	return fams
}

// value is the sample of name whose labels include want (nil: the only one).
func value(t *testing.T, fams map[string]*dto.MetricFamily, name string, want map[string]string) (float64, bool) {
	t.Helper()
	f := fams[name]
	if f == nil {
		return 0, false
	}
next:
	for _, m := range f.GetMetric() {
		for k, v := range want {
			found := false
			for _, l := range m.GetLabel() {
				if l.GetName() == k && l.GetValue() == v {
					found = true
				}
			}
			if !found {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.GetCounter().GetValue(), true
		case m.Gauge != nil:
			return m.GetGauge().GetValue(), true
		}
	}
	return 0, false
}

func healthz(addr string) (int, string) {
	resp, err := http.Get("http://" + addr + "/healthz")
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func execs(t *testing.T, n int) {
	t.Helper()
	for range n {
		if err := exec.Command("/bin/true").Run(); err != nil {
			t.Fatal(err)
		}
	}
}

// TestServiceNotifyWatchdogMetrics: READY once the sensor runs, WATCHDOG
// pings and STATUS while it is idle and while events flow, metrics that
// parse and move, /healthz 200, and STOPPING then sensor.stop on SIGTERM.
func TestServiceNotifyWatchdogMetrics(t *testing.T) {
	testutil.RequireRoot(t, "to load BPF programs")
	sd := newFakeSystemd(t)
	addr := freeAddr(t)
	out := filepath.Join(t.TempDir(), "events.jsonl")
	cmd, stderr := startService(t, sd, 3*time.Second, nil, "--output", out, "--metrics-listen", addr)

	testutil.WaitFor(t, 60*time.Second, "READY=1", func() bool { n, _ := sd.with("READY=1", time.Time{}); return n == 1 },
		func() string { return sd.dump() + stderr.String() })
	ready := time.Now()
	// Idle: pings keep coming (every interval/3 = 1s).
	testutil.WaitFor(t, 10*time.Second, "3 WATCHDOG=1 pings", func() bool { n, _ := sd.with("WATCHDOG=1", ready); return n >= 3 }, sd.dump)
	if code, body := healthz(addr); code != http.StatusOK {
		t.Fatalf("/healthz: %d %s", code, body)
	}

	before := scrape(t, addr)
	execBefore, _ := value(t, before, "lineaged_events_written_total", map[string]string{"kind": "process.exec"})
	for _, name := range []string{"lineaged_sensor_ring_fill_ratio", "lineaged_posture_compliant", "lineaged_healthy", "lineaged_kernel_heartbeat"} {
		if _, ok := value(t, before, name, nil); !ok {
			t.Errorf("no %s in /metrics", name)
		}
	}
	for _, stage := range []string{"kernel", "skipped", "shed", "queue", "decode", "sink", "spool"} {
		if _, ok := value(t, before, "lineaged_losses_total", map[string]string{"stage": stage}); !ok {
			t.Errorf("no lineaged_losses_total{stage=%q}", stage)
		}
	}
	flowing := time.Now()
	execs(t, 200)
	var after map[string]*dto.MetricFamily
	testutil.WaitFor(t, 20*time.Second, "200 more process.exec written", func() bool {
		after = scrape(t, addr)
		v, _ := value(t, after, "lineaged_events_written_total", map[string]string{"kind": "process.exec"})
		return v >= execBefore+200
	}, func() string {
		return fmt.Sprint(value(t, after, "lineaged_events_written_total", map[string]string{"kind": "process.exec"}))
	})
	if h, _ := value(t, after, "lineaged_healthy", nil); h != 1 {
		t.Errorf("lineaged_healthy = %v while events flow", h)
	}
	testutil.WaitFor(t, 5*time.Second, "a WATCHDOG=1 ping after events flowed", func() bool { n, _ := sd.with("WATCHDOG=1", flowing); return n >= 1 }, sd.dump)
	n, last := sd.with("STATUS=", ready)
	if n == 0 || !strings.Contains(last, "events/s") || !strings.Contains(last, "lost (kernel ") {
		t.Errorf("STATUS: %q", last)
	}
	t.Logf("last STATUS: %q", last)

	stop := time.Now()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if _, err := cmd.Process.Wait(); err != nil {
		t.Fatal(err)
	}
	if n, _ := sd.with("STOPPING=1", stop); n != 1 {
		t.Errorf("STOPPING=1 sent %d times:\n%s", n, sd.dump())
	}
	// sensor.stop is the last event but for the audit trail's closing
	// checkpoint.
	var lastEv string
	for _, l := range strings.Split(strings.TrimSpace(slurp(t, out)), "\n") {
		if !strings.Contains(l, `"kind":"sensor.checkpoint"`) {
			lastEv = l
		}
	}
	if !strings.Contains(lastEv, `"kind":"sensor.stop"`) {
		t.Errorf("last event is not sensor.stop: %s", lastEv)
	}
	if strings.Contains(slurp(t, out), kindProbe) {
		t.Error("a liveness probe was written")
	}
}

func slurp(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestWatchdogStopsWhenSinkWedged writes to a pipe nobody reads: once the
// pipe is full the sink blocks, the pings stop and /healthz says why; once
// the pipe is drained, they resume.
func TestWatchdogStopsWhenSinkWedged(t *testing.T) {
	testutil.RequireRoot(t, "to load BPF programs")
	sd := newFakeSystemd(t)
	addr := freeAddr(t)
	// Events go to stdout, a pipe not read until the end.
	rd, wr, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	_, stderr := startService(t, sd, 3*time.Second, wr, "--output", "-", "--metrics-listen", addr)
	wr.Close()
	testutil.WaitFor(t, 60*time.Second, "READY=1", func() bool { n, _ := sd.with("READY=1", time.Time{}); return n == 1 },
		func() string { return sd.dump() + stderr.String() })
	testutil.WaitFor(t, 10*time.Second, "a WATCHDOG=1 ping", func() bool { n, _ := sd.with("WATCHDOG=1", time.Time{}); return n >= 1 }, sd.dump)

	// Fill the pipe: the sink's writes block.
	testutil.WaitFor(t, 60*time.Second, "the pings to stop", func() bool {
		execs(t, 50)
		n, _ := sd.with("WATCHDOG=1", time.Now().Add(-5*time.Second))
		return n == 0
	}, sd.dump)
	quiet := time.Now()
	time.Sleep(4 * time.Second) // beyond the interval: systemd would restart it now
	if n, _ := sd.with("WATCHDOG=1", quiet); n != 0 {
		t.Fatalf("%d pings with the sink wedged:\n%s", n, sd.dump())
	}
	if _, last := sd.with("STATUS=", quiet); !strings.Contains(last, "STALLED") {
		t.Errorf("STATUS while wedged: %q", last)
	}
	code, body := healthz(addr)
	if code != http.StatusServiceUnavailable || !(strings.Contains(body, "sink is wedged") || strings.Contains(body, "has not advanced")) {
		t.Errorf("/healthz while wedged: %d %q", code, body)
	}
	t.Logf("/healthz while wedged: %d %q", code, body)

	// Drain the pipe: the pipeline moves and the pings come back.
	stopDrain := make(chan struct{})
	defer close(stopDrain)
	go func() {
		buf := make([]byte, 1<<16)
		for {
			select {
			case <-stopDrain:
				return
			default:
			}
			if _, err := rd.Read(buf); err != nil {
				return
			}
		}
	}()
	drained := time.Now()
	testutil.WaitFor(t, 15*time.Second, "the pings to resume", func() bool { n, _ := sd.with("WATCHDOG=1", drained); return n >= 1 }, sd.dump)
}

// TestHealthzFlipsWhenSinkFails writes to a small tmpfs: healthy, then
// unhealthy naming the sink once the file system is full, healthy again
// once there is room.
func TestHealthzFlipsWhenSinkFails(t *testing.T) {
	testutil.RequireRoot(t, "to mount a tmpfs and load BPF programs")
	mnt := t.TempDir()
	if err := syscall.Mount("tmpfs", mnt, "tmpfs", 0, "size=64m,mode=0700"); err != nil {
		t.Fatal(err)
	}
	sd := newFakeSystemd(t)
	addr := freeAddr(t)
	cmd, stderr := startService(t, sd, 0, nil, "--output", filepath.Join(mnt, "events.jsonl"), "--metrics-listen", addr)
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_, _ = cmd.Process.Wait()
		_ = syscall.Unmount(mnt, 0)
	})
	testutil.WaitFor(t, 60*time.Second, "READY=1", func() bool { n, _ := sd.with("READY=1", time.Time{}); return n == 1 },
		func() string { return sd.dump() + stderr.String() })
	if code, body := healthz(addr); code != http.StatusOK {
		t.Fatalf("/healthz before the failure: %d %s", code, body)
	}
	// Fill the file system.
	filler := filepath.Join(mnt, "filler")
	f, err := os.Create(filler)
	if err != nil {
		t.Fatal(err)
	}
	chunk := make([]byte, 1<<20)
	for {
		if _, err := f.Write(chunk); err != nil {
			break
		}
	}
	f.Close()
	var body string
	testutil.WaitFor(t, 30*time.Second, "/healthz to say the sink fails", func() bool {
		execs(t, 20)
		var code int
		code, body = healthz(addr)
		return code == http.StatusServiceUnavailable && strings.Contains(body, "the sink has been failing")
	}, func() string { return body })
	t.Logf("/healthz with the disk full: %q", body)
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 30*time.Second, "/healthz to be ok again", func() bool {
		execs(t, 5)
		code, b := healthz(addr)
		body = b
		return code == http.StatusOK
	}, func() string {
		out, _ := exec.Command("sh", "-c", "df "+mnt+"; ls -la "+mnt).CombinedOutput()
		return body + string(out)
	})
}
