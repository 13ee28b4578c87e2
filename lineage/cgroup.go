package lineage

import (
	"bufio"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// CgroupResolver maps a cgroup v2 id (what the kernel reports at exec) to
// its path in the hierarchy, e.g. "/system.slice/ssh.service".
type CgroupResolver interface {
	CgroupPath(id uint64) (string, bool)
}

// CgroupFS implements CgroupResolver over the cgroup2 mount: a cgroup's id
// is the inode number of its directory. The tree is walked again on a miss,
// at most once per Rescan, so unknown ids cannot make it walk in a loop.
type CgroupFS struct {
	// Root is the cgroup2 mount; "" finds it in /proc/self/mountinfo.
	Root   string
	Rescan time.Duration // default 1s
	Now    func() time.Time

	mu      sync.Mutex
	paths   map[uint64]string
	scanned time.Time
	err     error
}

// CgroupPath implements CgroupResolver.
func (c *CgroupFS) CgroupPath(id uint64) (string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if p, ok := c.paths[id]; ok {
		return p, true
	}
	now := time.Now
	if c.Now != nil {
		now = c.Now
	}
	re := c.Rescan
	if re == 0 {
		re = time.Second
	}
	if t := now(); c.paths == nil || t.Sub(c.scanned) >= re {
		c.scanned = t
		c.paths, c.err = c.walk()
	}
	p, ok := c.paths[id]
	return p, ok
}

// Err is the last walk's error (no cgroup2 mount, unreadable tree).
func (c *CgroupFS) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

func (c *CgroupFS) walk() (map[uint64]string, error) {
	root := c.Root
	if root == "" {
		var err error
		if root, err = cgroup2Mount("/proc/self/mountinfo"); err != nil {
			return map[uint64]string{}, err
		}
	}
	paths := make(map[uint64]string)
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil // a cgroup removed mid-walk
		}
		if !d.IsDir() {
			return nil
		}
		var st syscall.Stat_t
		if syscall.Lstat(p, &st) != nil {
			return nil
		}
		rel := "/" + strings.TrimPrefix(strings.TrimPrefix(p, root), "/")
		paths[st.Ino] = rel
		return nil
	})
	return paths, err
}

// cgroup2Mount finds where the cgroup2 hierarchy is mounted.
func cgroup2Mount(mountinfo string) (string, error) {
	f, err := os.Open(mountinfo)
	if err != nil {
		return "", err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// "36 25 0:31 / /sys/fs/cgroup rw,... shared:9 - cgroup2 cgroup2 rw"
		pre, post, ok := strings.Cut(sc.Text(), " - ")
		if !ok {
			continue
		}
		if fstype, _, _ := strings.Cut(post, " "); fstype != "cgroup2" {
			continue
		}
		if f := strings.Fields(pre); len(f) >= 5 {
			return unescapeMount(f[4]), nil
		}
	}
	return "", fmt.Errorf("no cgroup2 mount in %s", mountinfo)
}

// unescapeMount undoes mountinfo's octal escapes (\040 for a space).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			var v byte
			ok := true
			for _, c := range s[i+1 : i+4] {
				if c < '0' || c > '7' {
					ok = false
					break
				}
				v = v*8 + byte(c-'0')
			}
			if ok {
				b.WriteByte(v)
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
