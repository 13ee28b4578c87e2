package posture

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"
)

// UpdatesFresh requires the package index to have been refreshed and the
// system upgraded recently, as recorded by the package manager itself:
// auto_updates says updates are configured, this check says they happen.
//
// apt: the index age is the mtime of /var/lib/apt/periodic/update-success-stamp
// (touched after every successful "apt update" by Debian and Ubuntu's
// APT::Update::Post-Invoke-Success hook), else of the newest file in
// /var/lib/apt/lists; the upgrade age is the End-Date of the last
// /var/log/apt/history.log entry that upgraded a package (history.log.1.gz
// when the current log has none, after monthly rotation).
//
// dnf: the index age is the newest repomd.xml in dnf's (or dnf5's) cache;
// the upgrade age is the last "Upgrade:" line of /var/log/dnf.rpm.log (or
// dnf.rpm.log.1).
type UpdatesFresh struct {
	// MaxIndexAge and MaxUpgradeAge are the thresholds; zero means the
	// defaults.
	MaxIndexAge, MaxUpgradeAge time.Duration
	// Now gives the current time; nil means time.Now.
	Now func() time.Time
}

// Name implements Check.
func (UpdatesFresh) Name() string { return CheckUpdatesFresh }

// Run implements Check.
func (u UpdatesFresh) Run(_ context.Context, root Root) Result {
	now := time.Now
	if u.Now != nil {
		now = u.Now
	}
	maxIndex, maxUpgrade := u.MaxIndexAge, u.MaxUpgradeAge
	if maxIndex <= 0 {
		maxIndex = DefaultMaxIndexAge
	}
	if maxUpgrade <= 0 {
		maxUpgrade = DefaultMaxUpgradeAge
	}
	var pm string
	var index, upgrade fact
	switch {
	case isDir(root, "/var/lib/apt") || isDir(root, "/var/log/apt"):
		pm = "apt"
		index = aptIndexTime(root)
		upgrade = lastUpgrade(root, "/var/log/apt/history.log", []string{"/var/log/apt/history.log.1.gz"}, aptLastUpgrade)
	case isDir(root, "/var/lib/dnf") || isDir(root, "/var/log/dnf.rpm.log") || isFile(root, "/var/log/dnf.rpm.log"):
		pm = "dnf"
		index = newestMtime(root, "/var/cache/dnf/*/repodata/repomd.xml", "/var/cache/libdnf5/*/repodata/repomd.xml")
		upgrade = lastUpgrade(root, "/var/log/dnf.rpm.log", []string{"/var/log/dnf.rpm.log.1"}, dnfLastUpgrade)
	default:
		return fail("no apt or dnf found (/var/lib/apt, /var/lib/dnf): cannot tell when the system was updated")
	}
	t := now()
	idx, idxOK := index.describe("package index updated", t, maxIndex)
	upg, upgOK := upgrade.describe("last upgrade", t, maxUpgrade)
	detail := fmt.Sprintf("%s: %s; %s", pm, idx, upg)
	if idxOK && upgOK {
		return ok("%s", detail)
	}
	return fail("%s", detail)
}

// fact is a time read from the package manager's records, with where it
// came from, or why it could not be read.
type fact struct {
	at    time.Time
	where string
	err   error
}

// describe says how old the fact is against its limit ("package index
// updated 2d3h ago (/var/lib/apt/periodic/update-success-stamp), limit 7d").
func (f fact) describe(what string, now time.Time, limit time.Duration) (string, bool) {
	if f.err != nil {
		return fmt.Sprintf("%s: %v", what, f.err), false
	}
	age := now.Sub(f.at)
	if age < 0 {
		// A clock set back, or a stamp from the future: not stale.
		age = 0
	}
	s := fmt.Sprintf("%s %s ago (%s, %s), limit %s", what, days(age), f.where, f.at.UTC().Format(time.RFC3339), days(limit))
	if age > limit {
		return s + ": too old", false
	}
	return s, true
}

// days formats an age for people: "3d4h", "5h12m".
func days(d time.Duration) string {
	if d >= 24*time.Hour {
		return fmt.Sprintf("%dd%dh", d/(24*time.Hour), d%(24*time.Hour)/time.Hour)
	}
	return d.Truncate(time.Minute).String()
}

func isDir(root Root, p string) bool {
	st, err := os.Stat(root.Path(p))
	return err == nil && st.IsDir()
}

func isFile(root Root, p string) bool {
	st, err := os.Stat(root.Path(p))
	return err == nil && st.Mode().IsRegular()
}

const aptStamp = "/var/lib/apt/periodic/update-success-stamp"

func aptIndexTime(root Root) fact {
	st, err := os.Stat(root.Path(aptStamp))
	if err == nil {
		return fact{at: st.ModTime(), where: aptStamp}
	}
	if !errors.Is(err, os.ErrNotExist) {
		return fact{err: err}
	}
	f := newestMtime(root, "/var/lib/apt/lists/*")
	if f.err != nil {
		return fact{err: fmt.Errorf("no %s, and %w", aptStamp, f.err)}
	}
	return f
}

// newestMtime is the newest modification time among regular files matching
// any pattern (lock files excluded: apt takes the lock without updating).
func newestMtime(root Root, patterns ...string) fact {
	var best fact
	for _, pat := range patterns {
		paths, err := root.Glob(pat)
		if err != nil {
			return fact{err: err}
		}
		for _, p := range paths {
			st, err := os.Stat(root.Path(p))
			if err != nil || !st.Mode().IsRegular() || strings.HasSuffix(p, "/lock") {
				continue
			}
			if st.ModTime().After(best.at) {
				best = fact{at: st.ModTime(), where: p}
			}
		}
	}
	if best.where == "" {
		return fact{err: fmt.Errorf("no package index found (%s)", strings.Join(patterns, ", "))}
	}
	return best
}

// lastUpgrade reads the tail of log (and, when it records no upgrade, the
// rotated logs in order) with parse, which returns the time of the last
// upgrade in a log or zero.
func lastUpgrade(root Root, log string, rotated []string, parse func([]byte) (time.Time, error)) fact {
	for _, p := range append([]string{log}, rotated...) {
		b, err := root.readTail(p)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return fact{err: err}
		}
		at, err := parse(b)
		if err != nil {
			return fact{err: fmt.Errorf("%s: %w", p, err)}
		}
		if !at.IsZero() {
			return fact{at: at, where: p}
		}
	}
	return fact{err: fmt.Errorf("no upgrade recorded in %s", strings.Join(append([]string{log}, rotated...), ", "))}
}

// readTail reads the last 1 MiB of a file (the newest entries of a log),
// decompressing a .gz file first.
func (r Root) readTail(p string) ([]byte, error) {
	f, err := os.Open(r.Path(p))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var src io.Reader = f
	partial := false
	if strings.HasSuffix(p, ".gz") {
		z, err := gzip.NewReader(f)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
		defer z.Close()
		src = z
	} else if st, err := f.Stat(); err == nil && st.Size() > maxFileSize {
		if _, err := f.Seek(st.Size()-maxFileSize, io.SeekStart); err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
		partial = true
	}
	// A compressed log keeps only its last 1 MiB in memory.
	var tail []byte
	buf := make([]byte, 64<<10)
	for {
		n, err := src.Read(buf)
		tail = append(tail, buf[:n]...)
		if len(tail) > 2*maxFileSize {
			tail = append([]byte(nil), tail[len(tail)-maxFileSize:]...)
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", p, err)
		}
	}
	if len(tail) > maxFileSize {
		tail = tail[len(tail)-maxFileSize:]
		partial = true
	}
	if partial {
		// The first line was cut: drop it rather than misread it.
		if i := bytes.IndexByte(tail, '\n'); i >= 0 {
			tail = tail[i+1:]
		}
	}
	return tail, nil
}

// aptHistoryTime is the layout of Start-Date and End-Date in apt's
// history.log, in the host's local time.
const aptHistoryTime = "2006-01-02  15:04:05"

// aptLastUpgrade returns the End-Date of the last history.log entry that
// upgraded a package and did not record an error. Entries are separated by
// blank lines; an entry without End-Date was interrupted.
func aptLastUpgrade(b []byte) (time.Time, error) {
	var last time.Time
	var upgraded, failed bool
	var end string
	flush := func() error {
		if upgraded && !failed && end != "" {
			t, err := time.ParseInLocation(aptHistoryTime, end, time.Local)
			if err != nil {
				return fmt.Errorf("End-Date %q: %w", truncate(end, 32), err)
			}
			if t.After(last) {
				last = t
			}
		}
		upgraded, failed, end = false, false, ""
		return nil
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 0, 64<<10), maxFileSize)
	for sc.Scan() {
		l := sc.Text()
		k, v, _ := strings.Cut(l, ": ")
		switch k {
		case "Start-Date":
			if err := flush(); err != nil {
				return time.Time{}, err
			}
		case "Upgrade":
			upgraded = true
		case "Error":
			failed = true
		case "End-Date":
			end = strings.TrimSpace(v)
		}
	}
	if err := sc.Err(); err != nil {
		return time.Time{}, err
	}
	if err := flush(); err != nil {
		return time.Time{}, err
	}
	return last, nil
}

// dnfLastUpgrade returns the time of the last "Upgrade:" line of
// dnf.rpm.log ("2026-11-20T10:00:05+0000 SUBDEBUG Upgrade: pkg-1.1-1.x86_64").
func dnfLastUpgrade(b []byte) (time.Time, error) {
	var last time.Time
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) < 3 || f[2] != "Upgrade:" && f[2] != "Upgraded:" {
			continue
		}
		var t time.Time
		var err error
		for _, layout := range []string{"2006-01-02T15:04:05-0700", "2006-01-02T15:04:05Z07:00"} {
			if t, err = time.Parse(layout, f[0]); err == nil {
				break
			}
		}
		if err != nil {
			return time.Time{}, fmt.Errorf("timestamp %q: %w", truncate(f[0], 32), err)
		}
		if t.After(last) {
			last = t
		}
	}
	return last, nil
}
