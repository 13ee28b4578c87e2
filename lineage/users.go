package lineage

import (
	"bufio"
	"bytes"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Passwd implements UserResolver over a passwd(5) file, reloaded when its
// mtime changes (checked at most once per Recheck). No cgo and no NSS: users
// only known to LDAP/SSSD resolve to nothing, and events carry the uid.
type Passwd struct {
	Path    string        // normally /etc/passwd
	Recheck time.Duration // default 5s
	Now     func() time.Time

	mu      sync.Mutex
	names   map[uint32]string
	mtime   time.Time
	checked time.Time
}

// UserName implements UserResolver.
func (p *Passwd) UserName(uid uint32) (string, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := time.Now
	if p.Now != nil {
		now = p.Now
	}
	re := p.Recheck
	if re == 0 {
		re = 5 * time.Second
	}
	if t := now(); p.names == nil || t.Sub(p.checked) >= re {
		p.checked = t
		if st, err := os.Stat(p.Path); err == nil && (p.names == nil || !st.ModTime().Equal(p.mtime)) {
			if b, err := os.ReadFile(p.Path); err == nil {
				p.names = ParsePasswd(b)
				p.mtime = st.ModTime()
			}
		}
		if p.names == nil {
			p.names = map[uint32]string{}
		}
	}
	n, ok := p.names[uid]
	return n, ok
}

// ParsePasswd maps uid to name for each well-formed passwd(5) line; the
// first entry for a uid wins, as getpwuid does.
func ParsePasswd(b []byte) map[uint32]string {
	out := make(map[uint32]string)
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 4096), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' || line[0] == '+' || line[0] == '-' {
			continue
		}
		f := strings.SplitN(line, ":", 4)
		if len(f) < 4 || f[0] == "" {
			continue
		}
		uid, err := strconv.ParseUint(f[2], 10, 32)
		if err != nil {
			continue
		}
		if _, dup := out[uint32(uid)]; !dup {
			out[uint32(uid)] = f[0]
		}
	}
	return out
}
