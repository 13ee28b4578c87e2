package lineage

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"sync"
	"time"
)

// LoginKeys tells which SSH key authenticated a login. The engine asks it
// for every sshd ancestor of an event (the per-connection sshd or
// sshd-session process that logged the authentication).
type LoginKeys interface {
	// SSHKey returns the fingerprint ("SHA256:...") of the key that
	// authenticated user in the sshd process pid.
	SSHKey(pid uint32, user string) (string, bool)
}

// acceptedRE matches the message of OpenSSH's "Accepted publickey" record,
// anchored at both ends: "Accepted publickey for alice from 10.0.0.5 port
// 51234 ssh2: ED25519 SHA256:Xb...".
var acceptedRE = regexp.MustCompile(`^Accepted publickey for (\S+) from \S+ port \d+ \S+: \S+ (SHA256:[A-Za-z0-9+/=]+)$`)

// LoginSources says where SSH logins can be verified from. Only the journal
// can: journald records who sent each entry (_PID, _UID, _COMM) from the
// kernel's peer credentials, which a sender cannot choose. A syslog file
// (/var/log/auth.log) cannot: `logger -t 'sshd[PID]' 'Accepted publickey
// for root ...'` writes a line no reader can tell from sshd's.
type LoginSources struct {
	// JournalSocket is journald's socket (default
	// /run/systemd/journal/socket): journald runs when it is a socket.
	JournalSocket string
	// Journalctl is the journalctl binary (default: /usr/bin/journalctl,
	// else /bin/journalctl).
	Journalctl string
}

// NewLoginKeys returns the verifier of SSH logins for this host: the
// journal where journald runs, else nil, and ssh-key verification is off
// (logged once here).
func NewLoginKeys(src LoginSources, log *slog.Logger) LoginKeys {
	if src.JournalSocket == "" {
		src.JournalSocket = "/run/systemd/journal/socket"
	}
	st, err := os.Stat(src.JournalSocket)
	if err != nil || st.Mode()&os.ModeSocket == 0 {
		if log != nil {
			log.Info("ssh-key verification off: journald does not run here, and a syslog file can be forged by any user", "socket", src.JournalSocket)
		}
		return nil
	}
	bin := src.Journalctl
	if bin == "" {
		for _, p := range []string{"/usr/bin/journalctl", "/bin/journalctl"} {
			if _, err := os.Stat(p); err == nil {
				bin = p
				break
			}
		}
	}
	if bin == "" {
		if log != nil {
			log.Warn("ssh-key verification off: journald runs but journalctl was not found")
		}
		return nil
	}
	return &JournalLogins{Run: commandRunner(bin)}
}

// JournalLogins implements LoginKeys from the systemd journal: the
// "Accepted publickey" entry whose trusted fields say root's sshd (or
// sshd-session, OpenSSH 9.8 and later) process pid sent it. A lookup runs
// journalctl off the event path; the engine waits for it at most
// lookupWait, and a miss is retried after negativeTTL.
type JournalLogins struct {
	// Run runs journalctl with the given arguments and returns its
	// standard output (at most maxJournalOutput bytes).
	Run func(ctx context.Context, args []string) ([]byte, error)
	Max int // logins remembered, default 4096

	mu      sync.Mutex
	keys    map[uint32]authEntry
	order   []uint32
	missed  map[uint32]time.Time
	running map[uint32]chan struct{}
}

type authEntry struct{ user, fp string }

const (
	lookupWait       = 50 * time.Millisecond
	lookupTimeout    = 3 * time.Second
	negativeTTL      = 5 * time.Second
	maxJournalOutput = 1 << 20
	maxLookups       = 8
)

// SSHKey implements LoginKeys.
func (j *JournalLogins) SSHKey(pid uint32, user string) (string, bool) {
	j.mu.Lock()
	if j.keys == nil {
		j.keys, j.missed, j.running = map[uint32]authEntry{}, map[uint32]time.Time{}, map[uint32]chan struct{}{}
	}
	if e, ok := j.keys[pid]; ok {
		j.mu.Unlock()
		if e.user != user {
			return "", false
		}
		return e.fp, true
	}
	done := j.running[pid]
	if done == nil {
		if t, ok := j.missed[pid]; (ok && time.Since(t) < negativeTTL) || len(j.running) >= maxLookups {
			j.mu.Unlock()
			return "", false
		}
		done = make(chan struct{})
		j.running[pid] = done
		go j.lookup(pid, done)
	}
	j.mu.Unlock()
	select {
	case <-done:
	case <-time.After(lookupWait):
		return "", false
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	if e, ok := j.keys[pid]; ok && e.user == user {
		return e.fp, true
	}
	return "", false
}

// journalArgs are journalctl's arguments for the entries pid sent as
// root's sshd or sshd-session: fixed but for the number.
func journalArgs(pid uint32) []string {
	p := "_PID=" + strconv.FormatUint(uint64(pid), 10)
	return []string{"--no-pager", "--quiet", "--output=json", "--output-fields=MESSAGE,_PID,_UID,_COMM",
		p, "_UID=0", "_COMM=sshd", "+", p, "_UID=0", "_COMM=sshd-session"}
}

func (j *JournalLogins) lookup(pid uint32, done chan struct{}) {
	ctx, cancel := context.WithTimeout(context.Background(), lookupTimeout)
	out, err := j.Run(ctx, journalArgs(pid))
	cancel()
	var e authEntry
	found := false
	if err == nil {
		e, found = parseJournal(out, pid)
	}
	j.mu.Lock()
	delete(j.running, pid)
	if found {
		max := j.Max
		if max == 0 {
			max = 4096
		}
		j.keys[pid] = e
		j.order = append(j.order, pid)
		for len(j.order) > max {
			delete(j.keys, j.order[0])
			j.order = j.order[1:]
		}
		delete(j.missed, pid)
	} else {
		if len(j.missed) >= 4096 {
			clear(j.missed)
		}
		j.missed[pid] = time.Now()
	}
	j.mu.Unlock()
	close(done)
}

// journalEntry is one line of journalctl -o json. MESSAGE is a string, or
// an array of bytes when it is not valid UTF-8.
type journalEntry struct {
	Message json.RawMessage `json:"MESSAGE"`
	PID     string          `json:"_PID"`
	UID     string          `json:"_UID"`
	Comm    string          `json:"_COMM"`
}

// parseJournal finds the last "Accepted publickey" entry that root's sshd
// or sshd-session process pid sent, checking the trusted fields again.
func parseJournal(out []byte, pid uint32) (authEntry, bool) {
	var e authEntry
	found := false
	want := strconv.FormatUint(uint64(pid), 10)
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 64<<10), 64<<10)
	for sc.Scan() {
		var je journalEntry
		if json.Unmarshal(sc.Bytes(), &je) != nil {
			continue
		}
		if je.PID != want || je.UID != "0" || (je.Comm != "sshd" && je.Comm != "sshd-session") {
			continue
		}
		var msg string
		if json.Unmarshal(je.Message, &msg) != nil {
			continue
		}
		if m := acceptedRE.FindStringSubmatch(msg); m != nil {
			e, found = authEntry{user: m[1], fp: m[2]}, true
		}
	}
	return e, found
}

// commandRunner runs bin with fixed arguments (no shell), its output
// bounded.
func commandRunner(bin string) func(ctx context.Context, args []string) ([]byte, error) {
	return func(ctx context.Context, args []string) ([]byte, error) {
		cmd := exec.CommandContext(ctx, bin, args...)
		cmd.Env = []string{"LC_ALL=C", "SYSTEMD_PAGER="}
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			return nil, err
		}
		if err := cmd.Start(); err != nil {
			return nil, fmt.Errorf("%s: %w", bin, err)
		}
		out, rerr := io.ReadAll(io.LimitReader(stdout, maxJournalOutput))
		io.Copy(io.Discard, stdout)
		werr := cmd.Wait()
		var ee *exec.ExitError
		if errors.As(werr, &ee) && ee.ExitCode() == 1 && len(out) == 0 {
			werr = nil // no entries
		}
		return out, errors.Join(rerr, werr)
	}
}
