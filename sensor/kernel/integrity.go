//go:build linux

package kernel

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unsafe"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"

	"github.com/lineaged/lineaged/sensor"
	"github.com/lineaged/lineaged/sensor/procfs"
)

// The sensor checks itself every Config.SelfCheckInterval (Run):
//
//   - its programs are still attached (the kernel's list of links) and
//     still firing (the heartbeat counter the fork and exit programs bump;
//     on a quiet host the check ends a thread of its own to make it move,
//     and judges at a later round, once that thread is gone).
//     A program found detached is attached again and pinned again, and
//     reported: a sensor.tamper (TamperDetached) and a sensor.loss for
//     what it did not see meanwhile;
//   - the recognisers map still holds the table it wrote: a change is
//     restored and reported (TamperRecognisers);
//   - every session member it knows of (a shadow of the sessions map, kept
//     from the events it delivers and the members it was given) is still
//     in the kernel's sessions map: a membership deleted from outside is
//     put back and reported (TamperMembership), naming the member and its
//     session.

// DefaultSelfCheckInterval is Config.SelfCheckInterval's default.
const DefaultSelfCheckInterval = 2 * time.Second

// shadowMember is a session member as the sensor last knew it.
type shadowMember struct {
	start   uint64 // the process's start, at /proc's clock-tick resolution
	session sensor.SessionRef
}

// membership is the userspace shadow of the kernel's sessions map, with
// the login uid each session started with.
type membership struct {
	mu sync.Mutex
	m  map[uint32]shadowMember
	// login is the login uid of each session's root at its start;
	// changed lists the (session, login uid) already reported.
	login   map[sensor.SessionRef]uint32
	changed map[loginChange]bool
}

type loginChange struct {
	session sensor.SessionRef
	uid     uint32
}

// loginCheck keeps a session's login uid: the root's exec records it (or
// /proc, for a session seeded while running); a member's exec with
// another one is reported once per session and value (TamperLoginUID) and
// given the session's back, so the event's identity is the session's
// login user. The returned event, if any, goes before ev.
func (ms *membership) loginCheck(ev *sensor.Event, procRoot string) *sensor.Event {
	if ev.Kind != sensor.KindExec || ev.Exec == nil || !ev.Session.InSession() {
		return nil
	}
	ms.mu.Lock()
	defer ms.mu.Unlock()
	if ms.login == nil {
		ms.login = map[sensor.SessionRef]uint32{}
		ms.changed = map[loginChange]bool{}
	}
	ref := ev.Session
	want, ok := ms.login[ref]
	if !ok {
		if ev.Proc.PID == ref.Root.PID && ev.Exec.Recognised != sensor.AgentNone {
			ms.login[ref] = ev.Exec.LoginUID
			return nil
		}
		b, err := os.ReadFile(fmt.Sprintf("%s/%d/loginuid", procRoot, ref.Root.PID))
		if err != nil {
			return nil
		}
		v, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 32)
		if err != nil {
			return nil
		}
		want = uint32(v)
		ms.login[ref] = want
	}
	got := ev.Exec.LoginUID
	if got == want {
		return nil
	}
	ev.Exec.LoginUID = want
	if ms.changed[loginChange{ref, got}] {
		return nil
	}
	ms.changed[loginChange{ref, got}] = true
	h := ev.Header
	h.Kind = sensor.KindTamper
	return &sensor.Event{Header: h, Tamper: &sensor.Tamper{Op: sensor.TamperLoginUID, Arg: got, Code: int32(want), Comm: ev.Exec.Comm}}
}

// note records what an event says of its process's membership.
func (ms *membership) note(ev sensor.Event) {
	if ev.Kind != sensor.KindExec && ev.Kind != sensor.KindFork && ev.Kind != sensor.KindExit {
		return
	}
	ms.mu.Lock()
	defer ms.mu.Unlock()
	if ms.m == nil {
		ms.m = map[uint32]shadowMember{}
	}
	switch {
	case ev.Kind == sensor.KindExit:
		if cur, ok := ms.m[ev.Proc.PID]; ok && cur.start == ev.Proc.StartNs {
			delete(ms.m, ev.Proc.PID)
		}
	case ev.Session.InSession():
		ms.m[ev.Proc.PID] = shadowMember{start: ev.Proc.StartNs, session: ev.Session}
	}
}

func (ms *membership) add(pid uint32, start uint64, ref sensor.SessionRef) {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	if ms.m == nil {
		ms.m = map[uint32]shadowMember{}
	}
	ms.m[pid] = shadowMember{start: start, session: ref}
}

func (ms *membership) snapshot() map[uint32]shadowMember {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	out := make(map[uint32]shadowMember, len(ms.m))
	for k, v := range ms.m {
		out[k] = v
	}
	return out
}

func (ms *membership) drop(pid uint32) {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	delete(ms.m, pid)
}

// integrityState is what the self-check carries from one round to the
// next.
type integrityState struct {
	lastBeat  uint64
	lastCheck uint64
	// probeTid is the thread ended when the heartbeat stood still,
	// probeBeat the heartbeat then, probeRounds the rounds waited since
	// for the thread to be gone.
	probeTid    int
	probeBeat   uint64
	probeRounds int
}

// selfCheck runs one round and returns the events it has to report.
func (s *Sensor) selfCheck(st *integrityState) []sensor.Event {
	now := bootNs()
	since := st.lastCheck
	st.lastCheck = now
	var evs []sensor.Event
	tamper := func(t sensor.Tamper, h sensor.Header) {
		h.Kind, h.KtimeNs = sensor.KindTamper, now
		t.Target = s.selfKey
		evs = append(evs, sensor.Event{Header: h, Tamper: &t})
	}
	gone, known := s.detached(st)
	errs := make([]error, len(gone))
	if known {
		// The posture check's view (selfstate.go); an unreadable link
		// list leaves it as it was.
		defer func() { s.self.update(gone, errs) }()
	}
	for i, name := range gone {
		err := s.reattach(name)
		errs[i] = err
		s.log.Warn("program found detached", "program", name, "reattached", err == nil, "err", err)
		tamper(sensor.Tamper{Op: sensor.TamperDetached, Program: name}, sensor.Header{})
		evs = append(evs, sensor.Event{
			Header: sensor.Header{Kind: sensor.KindLoss, KtimeNs: now},
			Loss:   &sensor.Loss{Where: "detached", Of: sensor.KindExec, FromNs: since, ToNs: now},
		})
	}
	if changed, err := s.checkRecognisers(); err != nil {
		s.log.Warn("recognisers unreadable", "err", err)
	} else if changed {
		tamper(sensor.Tamper{Op: sensor.TamperRecognisers}, sensor.Header{})
	}
	for pid, m := range s.shadow.snapshot() {
		var v processSession
		err := s.maps.Sessions.Lookup(pid, &v)
		if err == nil {
			continue
		}
		if !errors.Is(err, ebpf.ErrKeyNotExist) {
			continue
		}
		p, perr := procfs.Read("/proc", pid)
		if perr != nil || p.StartTicks*procfs.TicksToNs != m.start {
			s.shadow.drop(pid) // gone; its exit was not seen
			continue
		}
		v = processSession{RootPid: m.session.Root.PID, Agent: uint8(m.session.Agent), RootStart: m.session.Root.StartNs,
			Flags: sessionStartTicks, MemberStart: m.start / tickNs * tickNs}
		if err := s.maps.Sessions.Update(pid, &v, ebpf.UpdateNoExist); err != nil && !errors.Is(err, ebpf.ErrKeyExist) {
			s.log.Warn("session member not restored", "pid", pid, "err", err)
		}
		tamper(sensor.Tamper{Op: sensor.TamperMembership}, sensor.Header{Proc: sensor.ProcKey{PID: pid, StartNs: m.start}, Session: m.session})
	}
	return evs
}

// detached names the attached programs no link in the kernel runs any
// more, or the exit program when the heartbeat stood still although a
// thread of the sensor ended (and is gone); known is false when the kernel's link list could
// not be read.
func (s *Sensor) detached(st *integrityState) (gone []string, known bool) {
	ours := append([]string(nil), processAttached...)
	for name := range tamperTracepoints {
		ours = append(ours, name)
	}
	_, have, err := s.AttachedPrograms()
	if err != nil {
		s.log.Warn("attachments unreadable", "err", err)
		return nil, false
	}
	unlisted := s.unlisted()
	for _, name := range ours {
		if _, loaded := s.coll.Programs[name]; loaded && s.wasAttached(name) && !unlisted[name] && !slices.Contains(have, name) {
			gone = append(gone, name)
		}
	}
	for _, name := range s.extraAttached() {
		if !slices.Contains(have, name) {
			gone = append(gone, name)
		}
	}
	if len(gone) > 0 {
		// The walk goes link by link through ids: one that another
		// program's links come and go under (another sensor starting, a
		// BPF tool) can miss ours. Only what a second walk misses too is
		// gone.
		if _, again, err := s.AttachedPrograms(); err == nil {
			gone = slices.DeleteFunc(gone, func(name string) bool { return slices.Contains(again, name) })
		}
	}
	beat, err := s.heartbeat()
	if err != nil {
		return gone, true
	}
	if s.afterBeatFunc != nil {
		s.afterBeatFunc()
	}
	switch {
	case st.probeTid != 0 && beat != st.probeBeat:
		st.probeTid = 0 // it moved: the programs fire
	case st.probeTid != 0:
		// A thread of ours was ended for the heartbeat. Until it is
		// gone from the kernel's task list (after the exit tracepoint)
		// a beat standing still says nothing: on a loaded host the
		// thread waits for a CPU to exit on.
		if taskAlive(st.probeTid) {
			if st.probeRounds++; st.probeRounds > maxProbeRounds {
				st.probeTid = 0 // never ended (or its id came back): ask again
			}
			break
		}
		st.probeTid = 0
		// Gone, so counted: the beat above was read before this look,
		// and the thread may have ended in between. Read it again.
		if b, err := s.heartbeat(); err == nil && b != st.probeBeat {
			beat = b
			break
		}
		if len(gone) == 0 {
			s.log.Warn("the exit program is not firing")
			gone = append(gone, processProgHandleExit)
		}
	case beat == st.lastBeat:
		// A quiet host: end a thread of our own, which the exit program
		// counts, and look at the next round. The main thread never
		// ends (the runtime parks it instead): try again then.
		if tid := s.endThread(); tid != os.Getpid() {
			st.probeTid, st.probeBeat, st.probeRounds = tid, beat, 0
		}
	}
	st.lastBeat = beat
	return gone, true
}

// maxProbeRounds is how many rounds the check waits for the thread it
// ended to be gone before it ends another.
const maxProbeRounds = 5

// taskAlive reports whether thread tid of this process is still in the
// kernel's task list.
func taskAlive(tid int) bool {
	_, err := os.Stat("/proc/self/task/" + strconv.Itoa(tid))
	return err == nil
}

// endThread ends one thread of the sensor and returns its id; a test
// replaces it (endThreadFunc).
func (s *Sensor) endThread() int {
	if s.endThreadFunc != nil {
		return s.endThreadFunc()
	}
	return endOwnThread()
}

// endOwnThread ends a thread of this process: a goroutine locked to its
// thread exits, and the runtime ends the thread with it.
func endOwnThread() int {
	tid := make(chan int, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread ends with the goroutine
		tid <- unix.Gettid()
	}()
	return <-tid
}

// wasAttached reports whether this start attached name.
func (s *Sensor) wasAttached(name string) bool { return slices.Contains(s.linkNames, name) }

// heartbeat sums the per-CPU heartbeat counter.
func (s *Sensor) heartbeat() (uint64, error) {
	var per []uint64
	if err := s.coll.Maps[processMapHeartbeat].Lookup(uint32(0), &per); err != nil {
		return 0, err
	}
	var n uint64
	for _, v := range per {
		n += v
	}
	return n, nil
}

// reattach attaches name again and pins the new link in place of the old
// pin. The old link is let go of first (forgetLink): its descriptor may
// have been closed by whoever detached it, and the number may name another
// file now, or the new link.
func (s *Sensor) reattach(name string) error {
	if handled, err := s.reattachExtra(name); handled {
		return err
	}
	for i, n := range s.linkNames {
		if n == name {
			forgetLink(s.links[i], s.coll.Programs[name])
			s.links = slices.Delete(s.links, i, i+1)
			s.linkNames = slices.Delete(s.linkNames, i, i+1)
			break
		}
	}
	if err := s.attachOne(name); err != nil {
		return err
	}
	if s.pins != nil {
		p := s.pins.file(pinName("link", name))
		os.Remove(p)
		if err := s.links[len(s.links)-1].Pin(p); err != nil {
			return err
		}
	}
	if err := s.refreshOwn(); err != nil {
		return err
	}
	return nil
}

// refreshOwn registers the sensor's objects again (a new link's id).
func (s *Sensor) refreshOwn() error {
	ids, err := s.ownObjects()
	if err != nil {
		return err
	}
	one := uint8(1)
	for _, k := range ids {
		if err := s.coll.Maps[processMapOwnObjects].Update(&k, &one, ebpf.UpdateAny); err != nil {
			return err
		}
	}
	return nil
}

// checkRecognisers compares the recognisers map with the table the
// sensor wrote and restores it when it differs.
func (s *Sensor) checkRecognisers() (bool, error) {
	want, err := s.recogniserTable()
	if err != nil {
		return false, err
	}
	m := s.coll.Maps[processMapRecognisers]
	changed := false
	var got processRecogniser
	for i := range want {
		if err := m.Lookup(uint32(i), &got); err != nil {
			return false, err
		}
		if !sameRecogniser(&got, &want[i]) {
			changed = true
			break
		}
	}
	if !changed {
		return false, nil
	}
	return true, s.fillRecognisers()
}

func sameRecogniser(a, b *processRecogniser) bool {
	n := unsafe.Sizeof(*a) // explicit padding: every byte is a field's
	return bytes.Equal(unsafe.Slice((*byte)(unsafe.Pointer(a)), n), unsafe.Slice((*byte)(unsafe.Pointer(b)), n))
}

// stranded holds the link objects whose descriptor number the sensor no
// longer owns, for the life of the process: cilium/ebpf closes the
// descriptor of an object nobody holds when the garbage collector finds
// it, and by then the number is another file's (a pipe of an exec, the
// ring's epoll, the link attached in the lost one's place). One object per
// repair of a closed descriptor.
var stranded struct {
	sync.Mutex
	links []link.Link
}

// forgetLink lets go of l, the lost link of program p, before p is
// attached again. Its descriptor is closed only when it still names a link
// of p (a link detached in the kernel, its descriptor still the sensor's);
// otherwise whoever detached it closed the number, and the object is kept
// in stranded so that it is never closed.
func forgetLink(l link.Link, p *ebpf.Program) {
	if l == nil {
		return
	}
	if p != nil {
		if info, err := l.Info(); err == nil {
			if pi, err := p.Info(); err == nil {
				if id, ok := pi.ID(); ok && info.Program == id {
					l.Close()
					return
				}
			}
		}
	}
	stranded.Lock()
	stranded.links = append(stranded.links, l)
	stranded.Unlock()
}
