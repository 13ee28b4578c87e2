//go:build linux

package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

// tally is what the benchmark reads from the events a sensor run wrote.
// The sensor reports every agent session on the host; on a shared host
// other sessions run too, so the storm's counts, sizes and partial
// ancestry are taken from the benchmark's own sessions only (by the
// agent's root_exec_id, learnt from the root's own exec event), and the
// rest is counted apart.
type tally struct {
	events     int
	bytes      int64 // encoded size of every event
	stormExecs int   // process.exec of our storms' /bin/true (not the markers)
	execSizes  []int // their encoded sizes, in bytes
	// aboveRoot is, for each of them, the bytes and count of its
	// ancestors above the session's root (the benchmark's own processes
	// and the host's, to pid 1), which a login's ancestry would replace.
	aboveRoot      []ancestorsAbove
	lossEvents     int   // sensor.loss events
	lossCount      int64 // the events they say were lost
	partialAncestr int   // events of our sessions whose partial names "ancestry"
	otherSessions  int   // agent sessions on the host that are not ours
	otherEvents    int   // their events
	// inWindow and otherInWindow count the events of our sessions and of
	// the others that happened while a storm ran: the sensor's CPU over
	// a storm is spent on both.
	inWindow, otherInWindow int
	undecodable             int

	recs []rec // what summarize needs, one per session event
}

// rec is what summarize keeps of one event of an agent session.
type rec struct {
	root       string // agent.root_exec_id
	time       time.Time
	size       int
	stormExec  bool
	partialAnc bool
	rootPID    int            // the pid of an agent root's own process.exec, else 0
	execID     string         // with rootPID: its exec_id
	above      ancestorsAbove // with stormExec: its ancestry above the root
}

// wireEvent is the part of an event the benchmark reads: fields that every
// schema version has.
type wireEvent struct {
	Kind    string    `json:"kind"`
	Time    time.Time `json:"time"`
	Process *struct {
		ExecID string   `json:"exec_id"`
		PID    int      `json:"pid"`
		Exe    string   `json:"exe"`
		Argv   []string `json:"argv"`
	} `json:"process"`
	Agent *struct {
		RootExecID string `json:"root_exec_id"`
		Role       string `json:"role"`
	} `json:"agent"`
	Partial  []string          `json:"partial"`
	Ancestry []json.RawMessage `json:"ancestry"`
	Loss     *struct {
		Count int64 `json:"count"`
	} `json:"loss"`
}

// add counts one encoded event.
func (t *tally) add(line []byte) {
	if len(bytes.TrimSpace(line)) == 0 {
		return
	}
	var e wireEvent
	if err := json.Unmarshal(line, &e); err != nil {
		t.undecodable++
		return
	}
	t.events++
	t.bytes += int64(len(line))
	if e.Kind == "sensor.loss" {
		t.lossEvents++
		if e.Loss != nil {
			t.lossCount += e.Loss.Count
		}
	}
	if e.Agent == nil {
		return
	}
	r := rec{root: e.Agent.RootExecID, time: e.Time, size: len(line), partialAnc: slices.Contains(e.Partial, "ancestry")}
	if e.Process != nil {
		r.stormExec = e.Kind == "process.exec" && isStormExec(e.Process.Exe, e.Process.Argv)
		if r.stormExec {
			r.above = above(e.Ancestry, e.Agent.RootExecID)
		}
		if e.Kind == "process.exec" && e.Agent.Role == "root" {
			r.rootPID, r.execID = e.Process.PID, e.Process.ExecID
		}
	}
	t.recs = append(t.recs, r)
}

// summarize counts the events of the sessions whose agent process had one
// of the storms' pids, and the others apart.
func (t *tally) summarize(storms []stormResult) {
	var pids []int
	for _, s := range storms {
		pids = append(pids, s.pid)
	}
	during := func(tm time.Time) bool {
		for _, s := range storms {
			if !tm.Before(s.start) && !tm.After(s.end) {
				return true
			}
		}
		return false
	}
	ours := map[string]bool{}
	for _, r := range t.recs {
		if r.rootPID != 0 && slices.Contains(pids, r.rootPID) {
			ours[r.execID] = true
		}
	}
	others := map[string]bool{}
	for _, r := range t.recs {
		if !ours[r.root] {
			others[r.root] = true
			t.otherEvents++
			if during(r.time) {
				t.otherInWindow++
			}
			continue
		}
		if during(r.time) {
			t.inWindow++
		}
		if r.stormExec {
			t.stormExecs++
			t.execSizes = append(t.execSizes, r.size)
			t.aboveRoot = append(t.aboveRoot, r.above)
		}
		if r.partialAnc {
			t.partialAncestr++
		}
	}
	t.otherSessions = len(others)
	t.recs = nil
}

// ancestorsAbove is the part of an event's ancestry above its session's
// root: how many ancestors, and their bytes in the encoded event (each
// entry with its comma).
type ancestorsAbove struct{ n, bytes int }

// above measures the ancestry entries after the one of the session's root
// (the ancestry runs from the parent up to pid 1).
func above(ancestry []json.RawMessage, root string) ancestorsAbove {
	var id struct {
		ExecID string `json:"exec_id"`
	}
	for i, a := range ancestry {
		if json.Unmarshal(a, &id) != nil || id.ExecID != root {
			continue
		}
		var r ancestorsAbove
		for _, b := range ancestry[i+1:] {
			r.n++
			r.bytes += len(b) + 1
		}
		return r
	}
	return ancestorsAbove{}
}

// isStormExec tells a storm's /bin/true (argv just the path) from its
// marker and from anything else.
func isStormExec(exe string, argv []string) bool {
	return len(argv) == 1 && argv[0] == "/bin/true" && (exe == "/bin/true" || exe == "/usr/bin/true")
}

// tallyFile reads the output file (the sensor rotates at its size limit:
// the rotated files count too).
func tallyFile(path string) (*tally, error) {
	t := &tally{}
	files, _ := filepath.Glob(path + ".*")
	for _, p := range append(files, path) {
		f, err := os.Open(p)
		if err != nil {
			return nil, err
		}
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 1<<20), 64<<20)
		for sc.Scan() {
			t.add(sc.Bytes())
		}
		err = sc.Err()
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
	}
	return t, nil
}

// broker is a Kafka-protocol broker (kfake) on loopback with one topic.
type broker struct {
	c     *kfake.Cluster
	topic string
}

func startBroker() (*broker, error) {
	const topic = "lineaged-costbench"
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, topic))
	if err != nil {
		return nil, fmt.Errorf("kfake: %w", err)
	}
	return &broker{c: c, topic: topic}, nil
}

func (b *broker) addr() string { return b.c.ListenAddrs()[0] }
func (b *broker) close()       { b.c.Close() }

// consumer reads the topic from its start into a tally.
type consumer struct {
	cl *kgo.Client
	t  tally
}

func (b *broker) consumer() (*consumer, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.addr()), kgo.ConsumeTopics(b.topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxBytes(64<<20))
	if err != nil {
		return nil, err
	}
	return &consumer{cl: cl}, nil
}

func (c *consumer) close() { c.cl.Close() }

// until consumes until a record holds want or d passes.
func (c *consumer) until(ctx context.Context, want string, d time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	for {
		fs := c.cl.PollFetches(ctx)
		found := false
		fs.EachRecord(func(r *kgo.Record) {
			c.t.add(r.Value)
			if strings.Contains(string(r.Value), want) {
				found = true
			}
		})
		if found {
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("no Kafka record with %q within %v", want, d)
		}
	}
}
