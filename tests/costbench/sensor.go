//go:build linux

package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/lineaged/lineaged/tests/testutil"
)

// sensorProc is a running `lineaged run`: the real binary, as users run it.
type sensorProc struct {
	cmd     *exec.Cmd
	stderr  *testutil.SyncBuffer
	done    chan error
	metrics string // the Prometheus endpoint's URL
	out     string // the output file; "" with Kafka
	prePeak int64  // the peak RSS before the storms (VmHWM before its reset)

	stopOnce sync.Once
	stopErr  error
}

// startSensor starts the binary with env added to a minimal environment and
// args after "run", and waits until it reports that it started.
func startSensor(bin, dir string, env []string, args ...string) (*sensorProc, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	// An explicit configuration file, so one at the default path of this
	// host cannot change what is measured.
	cfg := filepath.Join(dir, "lineaged.yaml")
	if err := os.WriteFile(cfg, []byte("log:\n  level: info\n"), 0o600); err != nil {
		return nil, err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	cmd := exec.Command(bin, append([]string{"run", "--config", cfg, "--metrics-listen", addr}, args...)...)
	cmd.Env = append([]string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}, env...)
	s := &sensorProc{cmd: cmd, stderr: &testutil.SyncBuffer{}, done: make(chan error, 1), metrics: "http://" + addr + "/metrics"}
	// Should the benchmark die, the sensor stops too, as on SIGTERM.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	cmd.Stderr = s.stderr
	cmd.Stdout = io.Discard
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	go func() { s.done <- cmd.Wait() }()
	deadline := time.Now().Add(90 * time.Second)
	for !strings.Contains(s.stderr.String(), "sensor started") {
		select {
		case err := <-s.done:
			s.done <- err
			return nil, fmt.Errorf("lineaged exited (%v) before it started:\n%s", err, tail(s.stderr.String(), 4000))
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			s.stop()
			return nil, fmt.Errorf("lineaged did not start within 90s:\n%s", tail(s.stderr.String(), 4000))
		}
	}
	return s, nil
}

func (s *sensorProc) pid() int { return s.cmd.Process.Pid }

// stop ends the sensor with SIGINT, as a service manager would (it flushes
// what it holds), and waits; it kills it after a minute.
func (s *sensorProc) stop() error {
	s.stopOnce.Do(func() {
		_ = s.cmd.Process.Signal(syscall.SIGINT)
		select {
		case s.stopErr = <-s.done:
		case <-time.After(time.Minute):
			_ = s.cmd.Process.Kill()
			<-s.done
			s.stopErr = errors.New("lineaged did not stop on SIGINT within a minute")
		}
	})
	return s.stopErr
}

// cpuTicks is the sensor's utime+stime so far, in clock ticks.
func (s *sensorProc) cpuTicks() (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", s.pid()))
	if err != nil {
		return 0, err
	}
	return statTicks(string(b))
}

// statTicks is utime+stime (fields 14 and 15) of a /proc/PID/stat line.
func statTicks(line string) (int64, error) {
	i := strings.LastIndexByte(line, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc stat line %q", line)
	}
	f := strings.Fields(line[i+1:]) // f[0] is field 3, the state
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc stat line %q", line)
	}
	u, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("/proc stat line %q", line)
	}
	return u + st, nil
}

// settle waits until the sensor is idle: at most 2 clock ticks of CPU
// (4%) in half a second. After a minute it gives up and says so; the
// storm then starts on a busy sensor.
func (s *sensorProc) settle(ctx context.Context) error {
	prev, err := s.cpuTicks()
	if err != nil {
		return err
	}
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
		cur, err := s.cpuTicks()
		if err != nil {
			return err
		}
		if cur-prev <= 2 {
			return s.resetPeak()
		}
		prev = cur
	}
	fmt.Fprintln(os.Stderr, "costbench: the sensor did not become idle within a minute; storming anyway")
	return s.resetPeak()
}

// resetPeak keeps the sensor's peak RSS so far in prePeak and resets its
// VmHWM (clear_refs 5), so that what is read after the storm is the peak
// during the storm.
func (s *sensorProc) resetPeak() error {
	p, err := s.peakRSS()
	if err != nil {
		return err
	}
	s.prePeak = max(s.prePeak, p)
	return os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", s.pid()), []byte("5"), 0)
}

// clockTick is the unit of /proc/PID/stat's times (USER_HZ, 100 on Linux).
const clockTick = 10 * time.Millisecond

// peakRSS is the sensor's VmHWM so far, in bytes.
func (s *sensorProc) peakRSS() (int64, error) {
	m, err := s.memStatus()
	if err != nil {
		return 0, err
	}
	v, ok := m["VmHWM"]
	if !ok {
		return 0, errors.New("no VmHWM in /proc/PID/status")
	}
	return v, nil
}

// resident is what the sensor has resident now, by kind: anonymous (the
// Go heap and stacks), file-backed (the binary's pages, the mapped ring
// buffers) and shared memory, in bytes.
type resident struct{ anon, file, shmem int64 }

func (s *sensorProc) resident() (resident, error) {
	m, err := s.memStatus()
	if err != nil {
		return resident{}, err
	}
	return resident{anon: m["RssAnon"], file: m["RssFile"], shmem: m["RssShmem"]}, nil
}

// memStatus reads the kB fields of /proc/PID/status, in bytes.
func (s *sensorProc) memStatus() (map[string]int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", s.pid()))
	if err != nil {
		return nil, err
	}
	m := map[string]int64{}
	for _, l := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(l, ":")
		if !ok || !strings.HasSuffix(v, " kB") {
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(v, " kB")), 10, 64)
		if err != nil {
			return nil, fmt.Errorf("/proc/PID/status: %s %q", k, v)
		}
		m[k] = kb << 10
	}
	return m, nil
}

// lossMetric matches the sensor's counters of events lost or dropped.
var lossMetric = regexp.MustCompile(`^(lineaged_[a-z0-9_]*(lost|drop|drops|dropped|shed)[a-z0-9_]*)(\{[^}]*\})? ([0-9.e+]+)$`)

// lostCounters scrapes the Prometheus endpoint and returns the sum of every
// counter that counts events lost or dropped, by name.
func (s *sensorProc) lostCounters() (map[string]float64, error) {
	c := http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get(s.metrics)
	if err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	defer resp.Body.Close()
	m := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if g := lossMetric.FindStringSubmatch(sc.Text()); g != nil {
			v, _ := strconv.ParseFloat(g[4], 64)
			m[g[1]] += v
		}
	}
	return m, sc.Err()
}

// waitFile waits until the sensor's output file holds marker, reading
// only what was appended since the last look.
func (s *sensorProc) waitFile(ctx context.Context, marker string) error {
	var off int64
	var carry []byte
	return waitUntil(ctx, 2*time.Minute, "storm end marker in the output file", func() (bool, error) {
		f, err := os.Open(s.out)
		if os.IsNotExist(err) {
			return false, nil
		} else if err != nil {
			return false, err
		}
		defer f.Close()
		if fi, err := f.Stat(); err == nil && fi.Size() < off {
			off, carry = 0, nil // rotated
		}
		b, err := io.ReadAll(io.NewSectionReader(f, off, 1<<62))
		if err != nil {
			return false, err
		}
		off += int64(len(b))
		b = append(carry, b...)
		if bytes.Contains(b, []byte(marker)) {
			return true, nil
		}
		carry = append([]byte(nil), b[max(0, len(b)-len(marker)):]...)
		return false, nil
	})
}

// waitUntil polls cond every 50 ms until it holds, fails, or d passes.
func waitUntil(ctx context.Context, d time.Duration, what string, cond func() (bool, error)) error {
	deadline := time.Now().Add(d)
	for {
		ok, err := cond()
		if err != nil || ok {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no %s after %v", what, d)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}
