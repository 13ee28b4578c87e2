package lineage

import (
	"bufio"
	"io"
	"os"
	"regexp"
	"strconv"
	"sync"
	"syscall"
)

// LoginKeys tells which SSH key authenticated a login. The engine asks it
// for every sshd ancestor of an event (the per-connection sshd or
// sshd-session process that logged the authentication).
type LoginKeys interface {
	// SSHKey returns the fingerprint ("SHA256:...") of the key that
	// authenticated user in the sshd process pid.
	SSHKey(pid uint32, user string) (string, bool)
}

// acceptedRE matches OpenSSH's "Accepted publickey" log line, e.g.
// "sshd[812]: Accepted publickey for alice from 10.0.0.5 port 51234 ssh2: ED25519 SHA256:Xb...".
var acceptedRE = regexp.MustCompile(`\bsshd(?:-session)?\[(\d+)\]: Accepted publickey for (\S+) from \S+ port \d+ \S+: \S+ (SHA256:[A-Za-z0-9+/=]+)`)

// AuthLog implements LoginKeys by reading an auth log (normally
// /var/log/auth.log) incrementally: new lines are read on a lookup miss, a
// rotated or truncated file is read from its start. At most Max logins are
// remembered (oldest forgotten first). Hosts that log only to the journal
// need another LoginKeys.
type AuthLog struct {
	Path string
	Max  int // default 4096

	mu    sync.Mutex
	off   int64
	ino   uint64
	keys  map[uint32]authEntry
	order []uint32
}

type authEntry struct{ user, fp string }

// SSHKey implements LoginKeys.
func (a *AuthLog) SSHKey(pid uint32, user string) (string, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if e, ok := a.keys[pid]; ok && e.user == user {
		return e.fp, true
	}
	a.readNew()
	if e, ok := a.keys[pid]; ok && e.user == user {
		return e.fp, true
	}
	return "", false
}

func (a *AuthLog) readNew() {
	f, err := os.Open(a.Path)
	if err != nil {
		return
	}
	defer f.Close()
	var st syscall.Stat_t
	if err := syscall.Fstat(int(f.Fd()), &st); err != nil {
		return
	}
	if st.Ino != a.ino || st.Size < a.off {
		a.ino, a.off = st.Ino, 0 // rotated or truncated
	}
	if _, err := f.Seek(a.off, io.SeekStart); err != nil {
		return
	}
	if a.keys == nil {
		a.keys = make(map[uint32]authEntry)
	}
	max := a.Max
	if max == 0 {
		max = 4096
	}
	r := bufio.NewReaderSize(f, 64*1024)
	for {
		line, err := r.ReadSlice('\n')
		if err == bufio.ErrBufferFull {
			// An overlong line cannot be a login record: skip it whole.
			a.off += int64(len(line))
			for err == bufio.ErrBufferFull {
				line, err = r.ReadSlice('\n')
				a.off += int64(len(line))
			}
			continue
		}
		if err != nil {
			return // partial last line: read it again next time
		}
		a.off += int64(len(line))
		m := acceptedRE.FindSubmatch(line)
		if m == nil {
			continue
		}
		pid, perr := strconv.ParseUint(string(m[1]), 10, 32)
		if perr != nil {
			continue
		}
		if _, dup := a.keys[uint32(pid)]; !dup {
			a.order = append(a.order, uint32(pid))
		}
		a.keys[uint32(pid)] = authEntry{user: string(m[2]), fp: string(m[3])}
		for len(a.order) > max {
			delete(a.keys, a.order[0])
			a.order = a.order[1:]
		}
	}
}
