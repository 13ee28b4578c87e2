//go:build linux

package sensor

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// SeedProc is what the session seed needs to know of a running process.
// sensor/procfs.Proc carries all of it; this package cannot import procfs
// (procfs uses sensor's types), hence the small struct.
type SeedProc struct {
	Key  ProcKey
	PPID uint32
	Exe  string
	Argv []string
}

// SessionsFromProcs finds running agents with the recogniser table and
// assigns every process to the session of its nearest recognised ancestor
// (or itself), following parent pids. Processes already reparented away
// from their session (daemons whose agent started before the sensor) cannot
// be found this way: the kernel only tracks inheritance from attach on.
func SessionsFromProcs(procs []SeedProc, table []Recogniser) map[uint32]SessionRef {
	if table == nil {
		table = DefaultRecognisers()
	}
	byPID := make(map[uint32]*SeedProc, len(procs))
	for i := range procs {
		byPID[procs[i].Key.PID] = &procs[i]
	}
	memo := make(map[uint32]SessionRef, len(procs))
	var resolve func(pid uint32, depth int) SessionRef
	resolve = func(pid uint32, depth int) SessionRef {
		if ref, ok := memo[pid]; ok {
			return ref
		}
		p, ok := byPID[pid]
		if !ok || depth > 4096 {
			return SessionRef{}
		}
		var ref SessionRef
		if a := RecogniseWith(table, p.Exe, p.Argv); a != AgentNone {
			ref = SessionRef{Root: p.Key, Agent: a}
		} else if p.PPID != 0 && p.PPID != pid {
			ref = resolve(p.PPID, depth+1)
		}
		memo[pid] = ref
		return ref
	}
	out := make(map[uint32]SessionRef)
	for _, p := range procs {
		if ref := resolve(p.Key.PID, 0); ref.InSession() {
			out[p.Key.PID] = ref
		}
	}
	return out
}

// SeedSessions scans procRoot (normally /proc) for running agent sessions
// and puts their members into the kernel table, then scans once more for
// children forked between the scan and the insert (after that the kernel
// inherits at fork). It returns the members found.
func (s *Sensor) SeedSessions(procRoot string) (map[uint32]SessionRef, error) {
	found := make(map[uint32]SessionRef)
	for pass := 0; pass < 2; pass++ {
		procs, err := scanSeedProcs(procRoot)
		if err != nil {
			return found, err
		}
		members := SessionsFromProcs(procs, s.cfg.Recognisers)
		fresh := make(map[uint32]SessionRef)
		for pid, ref := range members {
			if _, ok := found[pid]; !ok {
				fresh[pid] = ref
				found[pid] = ref
			}
		}
		if err := s.AddSessionMembers(fresh); err != nil {
			return found, err
		}
		if len(fresh) == 0 && pass > 0 {
			break
		}
	}
	return found, nil
}

// scanSeedProcs reads the few /proc facts the seed needs. Processes that
// exit mid-scan are skipped.
func scanSeedProcs(root string) ([]SeedProc, error) {
	ents, err := os.ReadDir(root)
	if err != nil {
		return nil, fmt.Errorf("seed: %w", err)
	}
	var out []SeedProc
	for _, e := range ents {
		pid, err := strconv.ParseUint(e.Name(), 10, 32)
		if err != nil || !e.IsDir() {
			continue
		}
		p, err := readSeedProc(root, uint32(pid))
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) || errors.Is(err, errGone) {
				continue
			}
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}

var errGone = errors.New("process gone")

func readSeedProc(root string, pid uint32) (SeedProc, error) {
	dir := filepath.Join(root, strconv.FormatUint(uint64(pid), 10))
	p := SeedProc{Key: ProcKey{PID: pid}}
	stat, err := os.ReadFile(filepath.Join(dir, "stat"))
	if err != nil {
		return p, errGone
	}
	ppid, start, err := parseStatPPIDStart(stat)
	if err != nil {
		return p, fmt.Errorf("seed: %s/stat: %w", dir, err)
	}
	p.PPID = ppid
	p.Key.StartNs = start * tickNs
	// Kernel threads and other users' processes without ptrace access
	// have no readable exe; they are not agents.
	if exe, err := os.Readlink(filepath.Join(dir, "exe")); err == nil {
		p.Exe = strings.TrimSuffix(exe, " (deleted)")
	}
	if cmd, err := os.ReadFile(filepath.Join(dir, "cmdline")); err == nil && len(cmd) > 0 {
		p.Argv = strings.Split(string(bytes.TrimSuffix(cmd, []byte{0})), "\x00")
	}
	return p, nil
}

// parseStatPPIDStart reads fields 4 (ppid) and 22 (starttime, clock ticks)
// of /proc/<pid>/stat. comm (field 2) may hold spaces and parentheses, so
// fields are counted after the last ')'.
func parseStatPPIDStart(b []byte) (ppid uint32, start uint64, err error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, 0, errors.New("no ')' after comm")
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state).
	if len(f) < 20 {
		return 0, 0, fmt.Errorf("%d fields after comm, need 20", len(f))
	}
	pp, err := strconv.ParseUint(f[1], 10, 32)
	if err != nil {
		return 0, 0, fmt.Errorf("ppid %q: %w", f[1], err)
	}
	st, err := strconv.ParseUint(f[19], 10, 64)
	if err != nil {
		return 0, 0, fmt.Errorf("starttime %q: %w", f[19], err)
	}
	return uint32(pp), st, nil
}
