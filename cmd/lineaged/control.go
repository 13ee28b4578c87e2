package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sys/unix"
)

// DefaultControlSocket is where the running sensor takes control requests
// (a tee for `lineaged capture`, docs/capture.md).
const DefaultControlSocket = "/run/lineaged/control/control.sock"

// ControlConfig is the sensor's local control socket: `lineaged capture`
// asks the running sensor over it to tee its capture stream, so the
// service's pinned ring is never consumed by a second reader.
type ControlConfig struct {
	// Socket is the unix socket (mode 0600, in a directory of mode 0700
	// made for it) on which the running sensor takes requests from root
	// or its own user only; "" turns it off, and `lineaged capture` then
	// always loads its own programs.
	Socket string `mapstructure:"socket"`
	// TeeQueue is how many capture records a tee holds for a client that
	// has fallen behind; past it the tee is dropped (the client is told,
	// lineaged_capture_tees_dropped_total counts it), never the pipeline
	// held.
	TeeQueue int `mapstructure:"tee_queue"`
}

func (c *ControlConfig) validate(p *problems) {
	if c.Socket != "" && !filepath.IsAbs(c.Socket) {
		p.bad("control.socket", "%q is not an absolute path", c.Socket)
	}
	if c.TeeQueue < 16 || c.TeeQueue > 1<<22 {
		p.bad("control.tee_queue", "%d must be between 16 and 4194304", c.TeeQueue)
	}
}

// The control protocol: one JSON line per message. The client's first
// message carries the capture file's descriptor (SCM_RIGHTS): the sensor
// never opens a path the client names.
type controlRequest struct {
	Op string `json:"op"` // "tee", then "stop"
	// Session limits what replay of the tee writes to one agent session
	// (its id or root exec id); "" is every event.
	Session string `json:"session,omitempty"`
	Raw     bool   `json:"raw,omitempty"`
}

type controlReply struct {
	OK       bool   `json:"ok,omitempty"`
	Instance string `json:"instance,omitempty"`
	Done     bool   `json:"done,omitempty"`
	Records  uint64 `json:"records,omitempty"`
	Error    string `json:"error,omitempty"`
}

// maxControlLine bounds one control message.
const maxControlLine = 4096

// listenControl makes the socket's directory (0700) and binds the socket
// (0600) under a temporary name, renamed into place once its mode is set.
// A socket a live sensor answers on is an error; a stale one is replaced.
func listenControl(path string) (*net.UnixListener, error) {
	dir := filepath.Dir(path)
	// The directory is the socket's own: made 0700 here, or already 0700.
	// A shared one (/run/lineaged, where the hook socket other users reach
	// lives, or /tmp) is refused, never chmod'ed.
	if st, err := os.Stat(dir); err == nil {
		if !st.IsDir() || st.Mode().Perm() != 0o700 {
			return nil, fmt.Errorf("control.socket %s: its directory %s is %v; it must be a directory of its own, 0700", path, dir, st.Mode())
		}
	} else {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("control.socket: %w", err)
		}
		if err := os.Chmod(dir, 0o700); err != nil {
			return nil, fmt.Errorf("control.socket: %w", err)
		}
	}
	if c, err := net.DialTimeout("unix", path, 100*time.Millisecond); err == nil {
		c.Close()
		return nil, fmt.Errorf("control.socket %s: another sensor is answering on it", path)
	}
	tmp := fmt.Sprintf("%s.%d.tmp", path, os.Getpid())
	_ = os.Remove(tmp)
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: tmp, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("control.socket: %w", err)
	}
	ln.SetUnlinkOnClose(false)
	if err := os.Chmod(tmp, 0o600); err == nil {
		err = os.Rename(tmp, path)
		if err == nil {
			return ln, nil
		}
	}
	ln.Close()
	os.Remove(tmp)
	return nil, fmt.Errorf("control.socket %s: %w", path, err)
}

// controlServer serves the control socket of a running pipeline.
type controlServer struct {
	ln   *net.UnixListener
	path string
	p    *pipeline
	log  *slog.Logger
	wg   sync.WaitGroup
	once sync.Once
}

// startControl opens the control socket when control.socket is set. A
// socket that cannot be opened is logged: the sensor runs without it.
func (p *pipeline) startControl() {
	path := p.cfg.Control.Socket
	if path == "" {
		return
	}
	log := p.log.With("component", "control")
	ln, err := listenControl(path)
	if err != nil {
		log.Warn("control socket off: lineaged capture will load its own programs", "err", err)
		return
	}
	p.control = &controlServer{ln: ln, path: path, p: p, log: log}
	p.reg.MustRegister(
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "lineaged_capture_tees_total", Help: "Capture tees started over the control socket."},
			func() float64 { return float64(p.tees.started.Load()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "lineaged_capture_tees_dropped_total", Help: "Capture tees dropped because the client fell behind."},
			func() float64 { return float64(p.tees.dropped.Load()) }))
	log.Info("control socket listening", "socket", path)
}

func (s *controlServer) serve(ctx context.Context) {
	acceptUnix(ctx, s.ln, s.close, &s.wg, s.log, "control socket accept", func(c *net.UnixConn) { s.handle(ctx, c) })
}

// close stops accepting and removes the socket; the tees still running
// are ended by the pipeline (endTees).
func (s *controlServer) close() {
	s.once.Do(func() {
		s.ln.Close()
		os.Remove(s.path)
	})
}

func reply(c *net.UnixConn, r controlReply) {
	b, _ := json.Marshal(r)
	_ = c.SetWriteDeadline(time.Now().Add(2 * time.Second))
	_, _ = c.Write(append(b, '\n'))
}

// readRequest reads the first message and the descriptor passed with it.
func readRequest(c *net.UnixConn) (controlRequest, *os.File, error) {
	var req controlRequest
	buf := make([]byte, maxControlLine)
	oob := make([]byte, unix.CmsgSpace(4*4))
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, oobn, _, _, err := c.ReadMsgUnix(buf, oob)
	_ = c.SetReadDeadline(time.Time{})
	if err != nil {
		return req, nil, fmt.Errorf("reading the request: %w", err)
	}
	var fds []int
	if msgs, err := unix.ParseSocketControlMessage(oob[:oobn]); err == nil {
		for _, m := range msgs {
			if got, err := unix.ParseUnixRights(&m); err == nil {
				fds = append(fds, got...)
			}
		}
	}
	closeAll := func() {
		for _, fd := range fds {
			unix.Close(fd)
		}
	}
	line := buf[:n]
	if i := bytes.IndexByte(line, '\n'); i >= 0 {
		line = line[:i]
	}
	if err := json.Unmarshal(line, &req); err != nil {
		closeAll()
		return req, nil, fmt.Errorf("malformed request: %w", err)
	}
	if req.Op != "tee" {
		closeAll()
		return req, nil, fmt.Errorf("unknown request %q (want tee)", req.Op)
	}
	if len(fds) != 1 {
		closeAll()
		return req, nil, fmt.Errorf("a tee request passes exactly one file descriptor (SCM_RIGHTS), got %d", len(fds))
	}
	var st unix.Stat_t
	if err := unix.Fstat(fds[0], &st); err != nil {
		closeAll()
		return req, nil, fmt.Errorf("the passed descriptor: %w", err)
	}
	if st.Mode&unix.S_IFMT == unix.S_IFDIR {
		closeAll()
		return req, nil, errors.New("the passed descriptor is a directory")
	}
	// Non-blocking, so a pipe nobody reads never holds a write (and the
	// tee's goroutine) forever: closing the file ends the write.
	_ = unix.SetNonblock(fds[0], true)
	return req, os.NewFile(uintptr(fds[0]), "tee"), nil
}

// handle serves one client: check it, start the tee, end it when the
// client asks, goes away, or falls behind.
func (s *controlServer) handle(ctx context.Context, c *net.UnixConn) {
	defer c.Close()
	peer, err := peerOf(c)
	if err != nil {
		reply(c, controlReply{Error: "no peer credentials"})
		return
	}
	if peer.UID != 0 && int(peer.UID) != os.Geteuid() {
		s.log.Warn("control caller refused", "pid", peer.PID, "uid", peer.UID)
		reply(c, controlReply{Error: fmt.Sprintf("uid %d may not use the control socket (root or uid %d only)", peer.UID, os.Geteuid())})
		return
	}
	req, f, err := readRequest(c)
	if err != nil {
		reply(c, controlReply{Error: err.Error()})
		return
	}
	t, err := s.p.tees.start(ctx, s.p, req, f)
	if err != nil {
		f.Close()
		reply(c, controlReply{Error: err.Error()})
		return
	}
	s.log.Info("tee started", "pid", peer.PID, "uid", peer.UID, "session", req.Session, "raw", req.Raw)
	reply(c, controlReply{OK: true, Instance: s.p.instance})
	// The client's end: a stop line, or the connection closing (Ctrl-C,
	// death) ends the tee.
	gone := make(chan struct{})
	go func() {
		defer close(gone)
		r := bufio.NewReader(c)
		for {
			line, err := r.ReadBytes('\n')
			if err != nil {
				return
			}
			var m controlRequest
			if json.Unmarshal(line, &m) == nil && m.Op == "stop" {
				return
			}
		}
	}()
	reason := "the client stopped it"
	select {
	case <-gone:
	case <-t.dropped:
		reason = ""
	case <-t.ended:
		reason = ""
	}
	records, err := s.p.tees.stop(t, reason)
	if err != nil {
		s.log.Warn("tee ended", "err", err, "records", records)
		reply(c, controlReply{Error: err.Error(), Records: records})
		return
	}
	s.log.Info("tee ended", "records", records)
	reply(c, controlReply{Done: true, Records: records})
}
