package lineage

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/lineaged/lineaged/lineage/agent"
	"github.com/lineaged/lineaged/lineage/event"
	"github.com/lineaged/lineaged/sensor/procfs"
)

// ErrFactMissing is what a replayed provider answers when the capture does
// not hold the fact asked for; replay reports every such miss and fails.
var ErrFactMissing = errors.New("fact not in the capture")

// FactBook holds the facts of a capture and answers the engine's lookups
// from them, never from the machine replaying. Answers to the same lookup
// come back in the order they were recorded; past the last one, the last is
// repeated.
type FactBook struct {
	mu sync.Mutex
	// facts holds the keyed and numbered facts; byKey and byN index it.
	facts    factStore
	byKey    map[factKey]factQueue
	byN      map[string]map[uint64]int32
	posture  []Fact // by N ascending
	clock    []time.Time
	seed     []*procfs.Proc
	late     map[string]int
	hasSeed  bool
	missing  map[string]int
	postureN uint64
	obsN     uint64
	clockN   int
}

// factKey names a keyed lookup (a struct, not a joined string, so neither
// filing nor answering one allocates).
type factKey struct{ kind, key string }

// factQueue is the answers to one keyed lookup not yet given, a list
// through the store from head to tail; the last stays when taken.
type factQueue struct{ head, tail int32 }

// factStore holds facts in fixed chunks: a capture's hundreds of thousands
// are filed without copying them as a growing slice would, or allocating
// one list per key.
type factStore struct{ chunks [][]storedFact }

type storedFact struct {
	f    Fact
	next int32 // the next answer to the same lookup, -1 for none
}

const factChunk = 1024

func (s *factStore) add(f Fact) int32 {
	n := len(s.chunks)
	if n == 0 || len(s.chunks[n-1]) == factChunk {
		s.chunks = append(s.chunks, make([]storedFact, 0, factChunk))
		n++
	}
	c := &s.chunks[n-1]
	*c = append(*c, storedFact{f: f, next: -1})
	return int32((n-1)*factChunk + len(*c) - 1)
}

func (s *factStore) at(i int32) *storedFact { return &s.chunks[i/factChunk][i%factChunk] }

// NewFactBook returns an empty book.
func NewFactBook() *FactBook {
	return &FactBook{byKey: map[factKey]factQueue{}, byN: map[string]map[uint64]int32{}, missing: map[string]int{}}
}

// Add files one recorded fact.
func (b *FactBook) Add(f Fact) {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch f.Kind {
	case FactPosture:
		b.posture = append(b.posture, f)
	case FactClock:
		b.clock = append(b.clock, f.Time)
	case FactWait:
		if b.late == nil {
			b.late = map[string]int{}
		}
		b.late[f.Key]++
	case FactSeed:
		b.hasSeed = true
		for _, p := range f.Procs {
			b.seed = append(b.seed, p.Unwire())
		}
	case FactObsExec, FactObsFile, FactResolved, FactSnapBinary, FactSnapResolved:
		m := b.byN[f.Kind]
		if m == nil {
			m = map[uint64]int32{}
			b.byN[f.Kind] = m
		}
		m[f.N] = b.facts.add(f)
	default:
		k := factKey{f.Kind, f.Key}
		i := b.facts.add(f)
		if q, ok := b.byKey[k]; ok {
			b.facts.at(q.tail).next = i
			b.byKey[k] = factQueue{q.head, i}
		} else {
			b.byKey[k] = factQueue{i, i}
		}
	}
}

// numbered is the fact of kind numbered n (locked).
func (b *FactBook) numbered(kind string, n uint64) (Fact, bool) {
	i, ok := b.byN[kind][n]
	if !ok {
		return Fact{}, false
	}
	return b.facts.at(i).f, true
}

// Wait replays one enrichment wait: one that ran out live (recorded by
// key) returns false at once; any other waits for done, however long that
// takes here.
func (b *FactBook) Wait(key string, done <-chan struct{}) bool {
	b.mu.Lock()
	late := b.late[key] > 0
	if late {
		b.late[key]--
	}
	b.mu.Unlock()
	if late {
		return false
	}
	<-done
	return true
}

// Seed is the recorded /proc seed; ok is false when the capture has none.
func (b *FactBook) Seed() ([]*procfs.Proc, bool) { return b.seed, b.hasSeed }

// Snapshot answers what a snapshot left being computed (Engine.Restore):
// the FactSnapBinary or FactSnapResolved numbered n; ok is false when the
// capture has none (it had not completed when the capture closed).
func (b *FactBook) Snapshot(kind string, n uint64) (Fact, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.numbered(kind, n)
}

// Missing lists the lookups the capture could not answer, with counts.
func (b *FactBook) Missing() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []string
	for k, n := range b.missing {
		out = append(out, fmt.Sprintf("%s (%d)", k, n))
	}
	sort.Strings(out)
	return out
}

func (b *FactBook) miss(kind, key string) error {
	b.missing[kind+" "+key]++
	return fmt.Errorf("%w: %s %s", ErrFactMissing, kind, key)
}

// take answers one keyed lookup.
func (b *FactBook) take(kind, key string) (Fact, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	k := factKey{kind, key}
	q, ok := b.byKey[k]
	if !ok {
		return Fact{}, b.miss(kind, key)
	}
	sf := b.facts.at(q.head)
	if sf.next >= 0 {
		b.byKey[k] = factQueue{sf.next, q.tail}
	}
	return sf.f, nil
}

func factErr(f Fact) error {
	if f.Err == "" {
		return nil
	}
	if f.Gone {
		return fmt.Errorf("%s: %w", f.Err, procfs.ErrGone)
	}
	return errors.New(f.Err)
}

// Deps are providers answering from the book only. base supplies nothing
// but is kept for symmetry with RecordDeps: every provider is replaced.
func (b *FactBook) Deps() Deps {
	sort.Slice(b.posture, func(i, j int) bool { return b.posture[i].N < b.posture[j].N })
	d := Deps{
		Host:     bookHost{b},
		Boot:     bookBoot{b},
		Proc:     bookProc{b},
		Binaries: bookBinaries{b},
		Users:    bookUsers{b},
		Cgroups:  bookCgroups{b},
		Logins:   bookLogins{b},
		Observer: bookObserver{b},
		Clock:    b.now,
	}
	if len(b.posture) > 0 {
		d.Posture = bookPosture{b}
	}
	return d
}

// now replays the clock readings in order; past the last, the last.
func (b *FactBook) now() time.Time {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.clock) == 0 {
		b.missing[FactClock]++
		return time.Unix(0, 0).UTC()
	}
	i := min(b.clockN, len(b.clock)-1)
	b.clockN++
	return b.clock[i]
}

type bookHost struct{ b *FactBook }

func (h bookHost) Host() (event.Host, error) {
	f, err := h.b.take(FactHost, "")
	if err != nil || f.Host == nil {
		return event.Host{}, errors.Join(err, factErr(f), errors.New("capture has no host facts"))
	}
	return *f.Host, factErr(f)
}

type bookBoot struct{ b *FactBook }

func (h bookBoot) BootTime() (time.Time, error) {
	f, err := h.b.take(FactBoot, "")
	if err != nil {
		return time.Time{}, err
	}
	return f.Time, factErr(f)
}

type bookProc struct{ b *FactBook }

func (p bookProc) Proc(pid uint32) (*procfs.Proc, error) {
	f, err := p.b.take(FactProc, u32(pid))
	if err != nil {
		return nil, err
	}
	return f.Proc.Unwire(), factErr(f)
}

func (p bookProc) Env(pid uint32, key string) (string, bool, error) {
	f, err := p.b.take(FactEnv, u32(pid)+"/"+key)
	if err != nil {
		return "", false, err
	}
	return f.Str, f.OK, factErr(f)
}

func (p bookProc) Cwd(pid uint32) (string, error) {
	f, err := p.b.take(FactCwd, u32(pid))
	if err != nil {
		return "", err
	}
	return f.Str, factErr(f)
}

type bookBinaries struct{ b *FactBook }

func (x bookBinaries) Cached(req BinaryRequest) (*event.Binary, bool) {
	f, err := x.b.take(FactCached, binaryKey(req))
	if err != nil {
		return nil, false
	}
	return f.Binary, f.OK
}

func (x bookBinaries) Inspect(_ context.Context, req BinaryRequest) *event.Binary {
	f, err := x.b.take(FactBinary, binaryKey(req))
	if err != nil || f.Binary == nil {
		return &event.Binary{Verdict: event.VerdictError, Reason: "replay: binary identity not in the capture"}
	}
	return f.Binary
}

type bookUsers struct{ b *FactBook }

func (u bookUsers) UserName(uid uint32) (string, bool) {
	f, err := u.b.take(FactUser, u32(uid))
	return f.Str, err == nil && f.OK
}

type bookCgroups struct{ b *FactBook }

func (c bookCgroups) CgroupPath(id uint64) (string, bool) {
	f, err := c.b.take(FactCgroup, fmt.Sprint(id))
	return f.Str, err == nil && f.OK
}

type bookLogins struct{ b *FactBook }

func (l bookLogins) SSHKey(pid uint32, user string) (string, bool) {
	f, err := l.b.take(FactSSHKey, u32(pid)+"/"+user)
	return f.Str, err == nil && f.OK
}

type bookPosture struct{ b *FactBook }

// Latest answers call n with the sample recorded at the greatest index not
// after n.
func (p bookPosture) Latest() *event.Posture {
	b := p.b
	b.mu.Lock()
	defer b.mu.Unlock()
	n := b.postureN
	b.postureN++
	i := sort.Search(len(b.posture), func(i int) bool { return b.posture[i].N > n })
	if i == 0 {
		return nil
	}
	return b.posture[i-1].Posture
}

type bookObserver struct{ b *FactBook }

func (o bookObserver) result(kind string) agent.Result {
	b := o.b
	b.mu.Lock()
	b.obsN++
	n := b.obsN
	f, ok := b.numbered(kind, n)
	if !ok {
		b.missing[fmt.Sprintf("%s #%d", kind, n)]++
	}
	b.mu.Unlock()
	res := agent.Result{Agent: f.Agent}
	if f.Resolve {
		res.Resolve = func(ctx context.Context, a *event.Agent) {
			b.mu.Lock()
			r, ok := b.numbered(FactResolved, n)
			b.mu.Unlock()
			if !ok {
				// Live, it had not completed when the capture
				// closed: it does not complete here either.
				<-ctx.Done()
				return
			}
			if r.Late {
				// Live, the engine stopped waiting before this
				// completed: so does replay, and completes after.
				<-ctx.Done()
			}
			if r.Agent != nil {
				*a = *r.Agent
			}
		}
	}
	return res
}

func (o bookObserver) Exec(agent.Exec) agent.Result { return o.result(FactObsExec) }
func (o bookObserver) File(agent.File) agent.Result { return o.result(FactObsFile) }
func (o bookObserver) Exit(*event.Process)          {}
