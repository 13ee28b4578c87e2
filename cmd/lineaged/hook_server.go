package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/lineaged/lineaged/lineage"
	"github.com/lineaged/lineaged/lineage/agent/claude"
	"github.com/lineaged/lineaged/lineage/event"
	"github.com/lineaged/lineaged/lineage/policy"
)

// hookConnTimeout bounds one hook connection on the sensor's side.
const hookConnTimeout = 2 * time.Second

// hookPeer is the process at the other end of a hook connection, from
// SO_PEERCRED.
type hookPeer struct {
	PID      int32
	UID, GID uint32
}

// hookServer answers the agent hooks on a unix socket: it checks the
// caller (check), decides (decide), answers, and only then hands the
// decision's event to the pipeline (emit), so the answer never waits for
// the pipeline.
type hookServer struct {
	ln     *net.UnixListener
	path   string
	check  func(hookPeer, *hookInput) error
	decide func(hookPeer, *hookInput) *event.Event
	emit   func(hookPeer, *event.Event)
	log    *slog.Logger
	wg     sync.WaitGroup
	once   sync.Once
}

// listenHook opens the hook socket at hc.Socket, mode 0660, group
// hc.Group. The socket is bound under a temporary name and renamed into
// place once its owner and mode are set, so it is never reachable with
// other permissions. A socket left by a sensor that is gone is replaced;
// one a live sensor answers on is an error.
func listenHook(hc HookConfig) (*net.UnixListener, error) {
	gid := 0
	if hc.Group != "" {
		g, err := user.LookupGroup(hc.Group)
		if err != nil {
			return nil, fmt.Errorf("hook.group: %w", err)
		}
		if gid, err = strconv.Atoi(g.Gid); err != nil {
			return nil, fmt.Errorf("hook.group %s: gid %q: %w", hc.Group, g.Gid, err)
		}
	}
	dir := filepath.Dir(hc.Socket)
	// The RuntimeDirectory systemd makes is 0755; made here when run by hand.
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("hook.socket: %w", err)
	}
	if c, err := net.DialTimeout("unix", hc.Socket, 100*time.Millisecond); err == nil {
		c.Close()
		return nil, fmt.Errorf("hook.socket %s: another sensor is answering on it", hc.Socket)
	}
	tmp := fmt.Sprintf("%s.%d.tmp", hc.Socket, os.Getpid())
	_ = os.Remove(tmp)
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: tmp, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("hook.socket: %w", err)
	}
	ln.SetUnlinkOnClose(false)
	fail := func(err error) (*net.UnixListener, error) {
		ln.Close()
		os.Remove(tmp)
		return nil, fmt.Errorf("hook.socket %s: %w", hc.Socket, err)
	}
	if err := os.Chown(tmp, 0, gid); err != nil {
		return fail(err)
	}
	if err := os.Chmod(tmp, 0o660); err != nil {
		return fail(err)
	}
	if err := os.Rename(tmp, hc.Socket); err != nil {
		return fail(err)
	}
	return ln, nil
}

// serve accepts hook connections until ctx ends or close is called.
func (s *hookServer) serve(ctx context.Context) {
	acceptUnix(ctx, s.ln, s.close, &s.wg, s.log, "hook socket accept", s.handle)
}

// acceptUnix serves ln until it is closed (by closeFn once ctx ends, or by
// the server itself): each connection is handled on its own goroutine,
// counted in wg; a failed accept is logged as what and retried.
func acceptUnix(ctx context.Context, ln *net.UnixListener, closeFn func(), wg *sync.WaitGroup, log *slog.Logger, what string, handle func(*net.UnixConn)) {
	go func() {
		<-ctx.Done()
		closeFn()
	}()
	for {
		c, err := ln.AcceptUnix()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			log.Warn(what, "err", err)
			time.Sleep(10 * time.Millisecond)
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			handle(c)
		}()
	}
}

// close stops accepting, removes the socket and waits for the calls in
// flight.
func (s *hookServer) close() {
	s.once.Do(func() {
		s.ln.Close()
		os.Remove(s.path)
	})
	s.wg.Wait()
}

func (s *hookServer) handle(c *net.UnixConn) {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(hookConnTimeout))
	answer := func(a hookAnswer) {
		b, _ := json.Marshal(a)
		_, _ = c.Write(append(b, '\n'))
	}
	peer, err := peerOf(c)
	if err != nil {
		s.log.Warn("hook caller", "err", err)
		answer(hookAnswer{Error: "no peer credentials"})
		return
	}
	line, err := bufio.NewReader(io.LimitReader(c, maxHookInput+1)).ReadBytes('\n')
	var in hookInput
	if err == nil {
		err = json.Unmarshal(line, &in)
	}
	if err != nil {
		answer(hookAnswer{Error: "malformed hook input"})
		return
	}
	if err := s.check(peer, &in); err != nil {
		s.log.Warn("hook caller refused", "pid", peer.PID, "uid", peer.UID, "err", err)
		answer(hookAnswer{Error: err.Error()})
		return
	}
	ev := s.decide(peer, &in)
	answer(hookAnswer{Decision: ev.Tool.Decision, Reason: ev.Tool.Reason})
	s.emit(peer, ev)
}

// peerOf reads the caller's credentials, as the kernel recorded them at
// connect (SO_PEERCRED).
func peerOf(c *net.UnixConn) (hookPeer, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return hookPeer{}, err
	}
	var cred *unix.Ucred
	var serr error
	if err := rc.Control(func(fd uintptr) {
		cred, serr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return hookPeer{}, err
	}
	if serr != nil {
		return hookPeer{}, fmt.Errorf("SO_PEERCRED: %w", serr)
	}
	return hookPeer{PID: cred.Pid, UID: cred.Uid, GID: cred.Gid}, nil
}

// hookExecutable reports whether the process pid runs this lineaged
// executable, or the lineaged-hook binary installed beside it (same
// device and inode).
func hookExecutable(procRoot string, pid int32) (bool, error) {
	var other syscall.Stat_t
	if err := syscall.Stat(filepath.Join(procRoot, strconv.Itoa(int(pid)), "exe"), &other); err != nil {
		return false, err
	}
	self := filepath.Join(procRoot, "self", "exe")
	candidates := []string{self}
	if p, err := os.Readlink(self); err == nil {
		candidates = append(candidates, filepath.Join(filepath.Dir(p), HookBinary))
	}
	for _, c := range candidates {
		var st syscall.Stat_t
		if syscall.Stat(c, &st) == nil && st.Dev == other.Dev && st.Ino == other.Ino {
			return true, nil
		}
	}
	return false, nil
}

// startHooks opens the hook socket (hook.socket). A socket that cannot be
// opened does not stop the sensor: the hooks then apply hook.fail_closed,
// and the log says why.
func (p *pipeline) startHooks() {
	hc := p.cfg.Hook
	if hc.Socket == "" {
		return
	}
	log := p.log.With("component", "hook")
	ln, err := listenHook(hc)
	if err != nil {
		log.Error("hook socket not opened: agent hooks get no answer", "err", err)
		return
	}
	p.hooks = &hookServer{
		ln: ln, path: hc.Socket, log: log,
		check:  p.checkHookPeer,
		decide: p.decideHook,
		emit:   func(peer hookPeer, ev *event.Event) { p.engine.EmitFor(uint32(peer.PID), ev) },
	}
	log.Info("answering agent hooks", "socket", hc.Socket, "group", hc.Group)
}

// checkHookPeer admits a caller that runs this very lineaged executable
// or the lineaged-hook beside it (same device and inode) and is a hook the agent of an agent session in
// the kernel's session map started for the session the input names
// (verifyHookCaller): not any process that can reach the socket, not a
// tool call's process running the hook binary, not another session's
// hook.
func (p *pipeline) checkHookPeer(peer hookPeer, in *hookInput) error {
	if in.SessionID == "" || in.ToolName == "" {
		return errors.New("the hook input names no session or no tool")
	}
	switch in.HookEventName {
	case "", policy.HookPreToolUse, policy.HookPostToolUse, policy.HookPostToolUseFailure:
	default:
		return fmt.Errorf("hook event %q is not answered", in.HookEventName)
	}
	root, ok := p.sensor.SessionRoot(peer.PID)
	if !ok {
		return fmt.Errorf("pid %d is not a member of an agent session", peer.PID)
	}
	same, err := hookExecutable(procRoot, peer.PID)
	if err != nil {
		return fmt.Errorf("pid %d: %w", peer.PID, err)
	}
	if !same {
		return fmt.Errorf("pid %d runs neither lineaged nor %s", peer.PID, HookBinary)
	}
	return verifyHookCaller(lineage.ProcFS{Root: procRoot}, uint32(peer.PID), root, in.SessionID)
}

// decideHook builds the agent.tool_call event of a hook call and has the
// policy decide it. An allowed PreToolUse is told to the agent
// integration before the answer goes back, so the process the agent
// starts for the call is tied to it exactly; a PostToolUse ends it.
func (p *pipeline) decideHook(peer hookPeer, in *hookInput) *event.Event {
	ev := &event.Event{
		Time:     time.Now().UTC(),
		Identity: &event.Identity{UID: peer.UID},
		Posture:  p.postureNow.Latest(),
		Agent:    &event.Agent{Name: "claude-code", SessionID: strings.ToLower(in.SessionID), Role: event.RoleHook},
	}
	ev = hookEvent(p.policy, ev, in)
	if p.observer == nil {
		return ev
	}
	switch {
	case ev.Tool.Hook == policy.HookPreToolUse && ev.Tool.Decision == event.DecisionAllow:
		c := claude.HookCall{SessionID: in.SessionID, ToolUseID: in.ToolUseID, ToolName: in.ToolName}
		c.Command, _ = in.ToolInput["command"].(string)
		if c.Path, _ = in.ToolInput["file_path"].(string); c.Path == "" {
			c.Path, _ = in.ToolInput["notebook_path"].(string)
		}
		p.observer.HookCall(c)
	case ev.Tool.Hook != policy.HookPreToolUse:
		p.observer.HookDone(in.SessionID, in.ToolUseID)
	}
	return ev
}

// hookEvent is the agent.tool_call of a hook call: decided for PreToolUse,
// the outcome for the post-call events.
func hookEvent(st *policy.Stage, ev *event.Event, in *hookInput) *event.Event {
	req := policy.ToolRequest{SessionID: in.SessionID, ToolUseID: in.ToolUseID, ToolName: in.ToolName, Cwd: in.Cwd, Input: in.ToolInput}
	switch in.HookEventName {
	case policy.HookPostToolUse, policy.HookPostToolUseFailure:
		return st.ToolOutcome(ev, req, in.HookEventName, in.IsInterrupt, in.DurationMS)
	}
	return st.DecideTool(ev, req)
}
