package main

import (
	"encoding/json"
	"math"
	"time"
	"unicode/utf8"

	"github.com/lineaged/lineaged/lineage"
	"github.com/lineaged/lineaged/lineage/event"
	"github.com/lineaged/lineaged/sensor"
)

// The records of a capture are JSON written by encoding/json from a few
// fixed types. Most of a storm's records are raw events (exec, opens,
// exit) and scalar facts (env, clock, cwd, user, cgroup lookups), and
// reflection-driven decoding of them was the largest part of a replay's
// CPU. fastEvent and fastFact decode exactly the shapes encoding/json
// writes for those types: field names as written, no escapes in strings,
// integers in range. Anything else (another record kind, an escape, a
// name in other case, an out-of-range number, a nested fact) makes them
// give up, and the caller decodes the record with encoding/json, so the
// result, and every error, is encoding/json's.

// scan walks one JSON value; bad is set at the first thing it does not
// handle, and every later call is a no-op.
type scan struct {
	b   []byte
	i   int
	bad bool
	in  *interner // nil: no interning
}

// interner keeps one copy of each string the records of one decoding
// goroutine repeat (a storm's names, paths, argv, answers): decoding then
// allocates for new text only, and the loaded capture holds it once.
type interner struct {
	m map[string]string
	// agents are the agent attributions decoded, by their JSON: a
	// storm's hundreds of thousands of agent facts repeat a few.
	agents map[string]event.Agent
}

const (
	maxInterned      = 256  // longer strings are copied each time
	maxInternEntries = 8192 // then it starts over
)

func (in *interner) get(b []byte) string {
	if in == nil || len(b) > maxInterned {
		return string(b)
	}
	if s, ok := in.m[string(b)]; ok {
		return s
	}
	if in.m == nil || len(in.m) >= maxInternEntries {
		in.m = make(map[string]string, 256)
	}
	s := string(b)
	in.m[s] = s
	return s
}

func (s *scan) ws() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

// peek is the next byte after white space, 0 at the end.
func (s *scan) peek() byte {
	s.ws()
	if s.bad || s.i >= len(s.b) {
		s.bad = true
		return 0
	}
	return s.b[s.i]
}

// lit consumes the literal w.
func (s *scan) lit(w string) {
	if s.bad || len(s.b)-s.i < len(w) || string(s.b[s.i:s.i+len(w)]) != w {
		s.bad = true
		return
	}
	s.i += len(w)
}

// null consumes a null if one comes next.
func (s *scan) null() bool {
	if s.peek() == 'n' {
		s.lit("null")
		return true
	}
	return false
}

// raw returns the bytes of a string without its quotes; escapes and
// control characters give up (encoding/json rewrites them).
func (s *scan) raw() []byte {
	if s.peek() != '"' {
		s.bad = true
		return nil
	}
	start := s.i + 1
	ascii := true
	for j := start; j < len(s.b); j++ {
		c := s.b[j]
		switch {
		case c == '"':
			s.i = j + 1
			out := s.b[start:j]
			// Invalid UTF-8 becomes U+FFFD in encoding/json.
			if !ascii && !utf8.Valid(out) {
				s.bad = true
			}
			return out
		case c == '\\' || c < 0x20:
			s.bad = true
			return nil
		case c >= 0x80:
			ascii = false
		}
	}
	s.bad = true
	return nil
}

// str reads a string, interned.
func (s *scan) str() string {
	b := s.raw()
	if s.bad {
		return ""
	}
	return s.in.get(b)
}

// once reads a string not worth interning (it names one process or
// error).
func (s *scan) once() string {
	b := s.raw()
	if s.bad {
		return ""
	}
	return string(b)
}

func (s *scan) boolean() bool {
	switch s.peek() {
	case 't':
		s.lit("true")
		return true
	case 'f':
		s.lit("false")
	default:
		s.bad = true
	}
	return false
}

// digits reads an unsigned decimal integer with no fraction or exponent,
// at most max.
func (s *scan) digits(max uint64) uint64 {
	start := s.i
	var v uint64
	for s.i < len(s.b) && s.b[s.i] >= '0' && s.b[s.i] <= '9' {
		d := uint64(s.b[s.i] - '0')
		if v > (math.MaxUint64-d)/10 {
			s.bad = true
			return 0
		}
		v = v*10 + d
		s.i++
	}
	n := s.i - start
	if n == 0 || (n > 1 && s.b[start] == '0') || v > max {
		s.bad = true
		return 0
	}
	if s.i < len(s.b) {
		switch s.b[s.i] {
		case '.', 'e', 'E':
			s.bad = true
			return 0
		}
	}
	return v
}

func (s *scan) uint(bits int) uint64 {
	if s.peek() == 0 {
		return 0
	}
	return s.digits(math.MaxUint64 >> (64 - bits))
}

func (s *scan) int(bits int) int64 {
	neg := s.peek() == '-'
	if neg {
		s.i++
	}
	limit := uint64(1)<<(bits-1) - 1
	if neg {
		limit++
	}
	v := s.digits(limit)
	if neg {
		return -int64(v-1) - 1
	}
	return int64(v)
}

// object reads {"key": value, ...}, calling field for each key with the
// scanner positioned at the value; field returns false for a key it does
// not know.
func (s *scan) object(field func(key []byte) bool) {
	if s.peek() != '{' {
		s.bad = true
		return
	}
	s.i++
	if s.peek() == '}' {
		s.i++
		return
	}
	for !s.bad {
		k := s.raw()
		if s.peek() != ':' {
			s.bad = true
			return
		}
		s.i++
		if s.bad || !field(k) {
			s.bad = true
			return
		}
		switch s.peek() {
		case ',':
			s.i++
		case '}':
			s.i++
			return
		default:
			s.bad = true
		}
	}
}

// end checks nothing but white space follows the value.
func (s *scan) end() bool {
	s.ws()
	return !s.bad && s.i == len(s.b)
}

func (s *scan) procKey(p *sensor.ProcKey) {
	s.object(func(k []byte) bool {
		switch string(k) {
		case "PID":
			p.PID = uint32(s.uint(32))
		case "StartNs":
			p.StartNs = s.uint(64)
		default:
			return false
		}
		return true
	})
}

func (s *scan) sessionRef(r *sensor.SessionRef) {
	s.object(func(k []byte) bool {
		switch string(k) {
		case "Root":
			s.procKey(&r.Root)
		case "Agent":
			r.Agent = sensor.AgentKind(s.uint(8))
		default:
			return false
		}
		return true
	})
}

// fastEvent decodes a raw event record; ok is false when it gave up.
func fastEvent(b []byte, in *interner) (ev *sensor.Event, ok bool) {
	s := &scan{b: b, in: in}
	ev = &sensor.Event{}
	s.object(func(k []byte) bool {
		switch string(k) {
		case "Kind":
			ev.Kind = sensor.Kind(s.uint(8))
		case "KtimeNs":
			ev.KtimeNs = s.uint(64)
		case "Proc":
			s.procKey(&ev.Proc)
		case "TID":
			ev.TID = uint32(s.uint(32))
		case "CPU":
			ev.CPU = uint32(s.uint(32))
		case "Session":
			s.sessionRef(&ev.Session)
		case "Exec":
			if !s.null() {
				if ev.Exec == nil {
					ev.Exec = &sensor.Exec{}
				}
				s.exec(ev.Exec)
			}
		case "Fork":
			if !s.null() {
				if ev.Fork == nil {
					ev.Fork = &sensor.Fork{}
				}
				s.object(func(k []byte) bool {
					switch string(k) {
					case "Parent":
						s.procKey(&ev.Fork.Parent)
					case "Untracked":
						ev.Fork.Untracked = s.boolean()
					default:
						return false
					}
					return true
				})
			}
		case "Exit":
			if !s.null() {
				if ev.Exit == nil {
					ev.Exit = &sensor.Exit{}
				}
				s.exit(ev.Exit)
			}
		case "File":
			if !s.null() {
				if ev.File == nil {
					ev.File = &sensor.File{}
				}
				s.file(ev.File)
			}
		case "Connect", "Loss", "Deny", "Tamper", "IOURing":
			// Rare in a capture: encoding/json decodes those.
			return s.null()
		default:
			return false
		}
		return true
	})
	if !s.end() {
		return nil, false
	}
	return ev, true
}

func (s *scan) exec(x *sensor.Exec) {
	s.object(func(k []byte) bool {
		switch string(k) {
		case "Parent":
			s.procKey(&x.Parent)
		case "UID":
			x.UID = uint32(s.uint(32))
		case "EUID":
			x.EUID = uint32(s.uint(32))
		case "GID":
			x.GID = uint32(s.uint(32))
		case "LoginUID":
			x.LoginUID = uint32(s.uint(32))
		case "AuditSessionID":
			x.AuditSessionID = uint32(s.uint(32))
		case "CgroupID":
			x.CgroupID = s.uint(64)
		case "MntNS":
			x.MntNS = uint32(s.uint(32))
		case "Comm":
			x.Comm = s.str()
		case "Filename":
			x.Filename = s.str()
		case "Exe":
			x.Exe = s.str()
		case "Argv":
			x.Argv = s.strings(x.Argv)
		case "ArgvTruncated":
			x.ArgvTruncated = s.boolean()
		case "Binary":
			s.fileStat(&x.Binary)
		case "Recognised":
			x.Recognised = sensor.AgentKind(s.uint(8))
		case "ParentSession":
			s.sessionRef(&x.ParentSession)
		case "Flags":
			x.Flags = sensor.ExecFlags(s.uint(16))
		default:
			return false
		}
		return true
	})
}

// strings reads a string array or null (nil) as encoding/json does: an
// empty array is an empty, non-nil slice.
func (s *scan) strings(old []string) []string {
	if s.null() {
		return nil
	}
	if s.peek() != '[' {
		s.bad = true
		return nil
	}
	s.i++
	out := old[:0]
	if out == nil {
		out = []string{}
	}
	if s.peek() == ']' {
		s.i++
		return out
	}
	for !s.bad {
		out = append(out, s.str())
		switch s.peek() {
		case ',':
			s.i++
		case ']':
			s.i++
			return out
		default:
			s.bad = true
		}
	}
	return nil
}

func (s *scan) fileStat(f *sensor.FileStat) {
	s.object(func(k []byte) bool {
		switch string(k) {
		case "Dev":
			f.Dev = s.uint(64)
		case "Inode":
			f.Inode = s.uint(64)
		case "Size":
			f.Size = s.int(64)
		case "MtimeNs":
			f.MtimeNs = s.int(64)
		case "CtimeNs":
			f.CtimeNs = s.int(64)
		default:
			return false
		}
		return true
	})
}

func (s *scan) exit(x *sensor.Exit) {
	s.object(func(k []byte) bool {
		switch string(k) {
		case "Code":
			x.Code = int32(s.int(32))
		case "Signal":
			x.Signal = int32(s.int(32))
		case "CoreDumped":
			x.CoreDumped = s.boolean()
		case "RepeatedOpens":
			x.RepeatedOpens = uint32(s.uint(32))
		default:
			return false
		}
		return true
	})
}

func (s *scan) file(f *sensor.File) {
	s.object(func(k []byte) bool {
		switch string(k) {
		case "Op":
			f.Op = sensor.FileOp(s.uint(8))
		case "Path":
			f.Path = s.str()
		case "NewPath":
			f.NewPath = s.str()
		case "PathTruncated":
			f.PathTruncated = s.boolean()
		case "PathUnresolved":
			f.PathUnresolved = s.boolean()
		case "Flags":
			f.Flags = uint32(s.uint(32))
		case "Mode":
			f.Mode = uint32(s.uint(32))
		case "Created":
			f.Created = s.boolean()
		case "Result":
			f.Result = int32(s.int(32))
		case "IA32":
			f.IA32 = s.boolean()
		case "RawPath":
			f.RawPath = s.str()
		case "NewRawPath":
			f.NewRawPath = s.str()
		case "PathAsGiven":
			f.PathAsGiven = s.boolean()
		case "NameChanged":
			f.NameChanged = s.boolean()
		case "NameUnreadable":
			f.NameUnreadable = s.boolean()
		case "AtEntry":
			f.AtEntry = s.boolean()
		case "ByHandle":
			f.ByHandle = s.boolean()
		case "FDChanged":
			f.FDChanged = s.boolean()
		case "Dev":
			f.Dev = s.uint(64)
		case "Ino":
			f.Ino = s.uint(64)
		case "MountID":
			f.MountID = int32(s.int(32))
		case "Syscall":
			f.Syscall = uint16(s.uint(16))
		case "Length":
			f.Length = s.int(64)
		case "UID":
			f.UID = s.int(64)
		case "GID":
			f.GID = s.int(64)
		case "Rdev":
			f.Rdev = uint32(s.uint(32))
		case "Target":
			f.Target = s.str()
		case "Xattr":
			f.Xattr = s.str()
		default:
			return false
		}
		return true
	})
}

// fastFact decodes a fact with scalar fields only (env, clock, cwd, user,
// cgroup lookups), a binary's identity, or an agent attribution (with its
// tool call) into f (zero); one with another nested answer gives up, and f
// is then to be cleared.
func fastFact(b []byte, in *interner, f *lineage.Fact) (ok bool) {
	s := &scan{b: b, in: in}
	s.object(func(k []byte) bool {
		switch string(k) {
		case "f":
			f.Kind = s.kind()
		case "k":
			switch f.Kind {
			case lineage.FactEnv, lineage.FactCwd, lineage.FactProc:
				f.Key = s.once() // a pid's: repeats seldom
			default:
				f.Key = s.str()
			}
		case "n":
			f.N = s.uint(64)
		case "s":
			f.Str = s.str()
		case "ok":
			f.OK = s.boolean()
		case "err":
			f.Err = s.once()
		case "gone":
			f.Gone = s.boolean()
		case "t":
			s.time(&f.Time)
		case "bin":
			if !s.null() {
				if f.Binary == nil {
					f.Binary = &event.Binary{}
				}
				s.binary(f.Binary)
			}
		case "agent":
			if !s.null() {
				if f.Agent == nil {
					f.Agent = &event.Agent{}
				}
				s.cachedAgent(f.Agent)
			}
		case "resolve":
			f.Resolve = s.boolean()
		case "late":
			f.Late = s.boolean()
		default:
			return false
		}
		return true
	})
	return s.end()
}

// kind reads a fact's kind: one of the known ones without allocating.
func (s *scan) kind() string {
	b := s.raw()
	if s.bad {
		return ""
	}
	switch string(b) {
	case lineage.FactClock:
		return lineage.FactClock
	case lineage.FactEnv:
		return lineage.FactEnv
	case lineage.FactObsExec:
		return lineage.FactObsExec
	case lineage.FactObsFile:
		return lineage.FactObsFile
	case lineage.FactResolved:
		return lineage.FactResolved
	case lineage.FactCwd:
		return lineage.FactCwd
	case lineage.FactUser:
		return lineage.FactUser
	case lineage.FactCgroup:
		return lineage.FactCgroup
	case lineage.FactCached:
		return lineage.FactCached
	case lineage.FactBinary:
		return lineage.FactBinary
	}
	return s.in.get(b)
}

// cachedAgent reads an attribution, from the cache when the same JSON was
// decoded before into a zero Agent: an object without escapes, compared
// byte for byte (a tool call nested in it included). What the cache holds
// and gives is a copy of its own: no two facts share a tool call or a
// verification, as with encoding/json.
func (s *scan) cachedAgent(a *event.Agent) {
	if s.in == nil || s.peek() != '{' || *a != (event.Agent{}) {
		s.agent(a)
		return
	}
	start, end := s.i, -1
	quoted := false
	depth := 0
scan:
	for j := start; j < len(s.b); j++ {
		switch c := s.b[j]; {
		case c == '"':
			quoted = !quoted
		case c == '\\':
			break scan
		case quoted:
		case c == '{':
			depth++
		case c == '}':
			if depth--; depth == 0 {
				end = j + 1
				break scan
			}
		}
	}
	if end < 0 {
		s.agent(a)
		return
	}
	if v, ok := s.in.agents[string(s.b[start:end])]; ok {
		*a = cloneAgent(v)
		s.i = end
		return
	}
	s.agent(a)
	if s.bad || s.i != end {
		return
	}
	if s.in.agents == nil || len(s.in.agents) >= maxInternEntries {
		s.in.agents = make(map[string]event.Agent, 64)
	}
	s.in.agents[string(s.b[start:end])] = cloneAgent(*a)
}

// cloneAgent copies what a's pointers point to.
func cloneAgent(a event.Agent) event.Agent {
	if a.ToolUse != nil {
		t := *a.ToolUse
		a.ToolUse = &t
	}
	if a.Verified != nil {
		v := *a.Verified
		a.Verified = &v
	}
	if a.VerifiedAt != nil {
		t := *a.VerifiedAt
		a.VerifiedAt = &t
	}
	return a
}

// binary reads a binary's identity.
func (s *scan) binary(b *event.Binary) {
	s.object(func(k []byte) bool {
		switch string(k) {
		case "path":
			b.Path = s.str()
		case "sha256":
			b.SHA256 = s.str()
		case "size":
			b.Size = s.int(64)
		case "inode":
			b.Inode = s.uint(64)
		case "dev":
			b.Dev = s.uint(64)
		case "mtime":
			s.time(&b.Mtime)
		case "verdict":
			b.Verdict = s.str()
		case "package":
			b.Package = s.str()
		case "signer":
			b.Signer = s.str()
		case "key_id":
			b.KeyID = s.str()
		case "reason":
			b.Reason = s.str()
		default:
			return false
		}
		return true
	})
}

// time reads an RFC 3339 string as time.Time's UnmarshalJSON does.
func (s *scan) time(t *time.Time) {
	s.ws()
	start := s.i
	s.raw()
	if !s.bad && t.UnmarshalJSON(s.b[start:s.i]) != nil {
		s.bad = true
	}
}

// agent reads an attribution, with its tool call and verification. As
// encoding/json does, a repeated key decodes into what the first made, and
// null clears a pointer.
func (s *scan) agent(a *event.Agent) {
	s.object(func(k []byte) bool {
		switch string(k) {
		case "name":
			a.Name = s.str()
		case "version":
			a.Version = s.str()
		case "session_id":
			a.SessionID = s.str()
		case "root_exec_id":
			a.RootExecID = s.str()
		case "role":
			a.Role = s.str()
		case "tool_use":
			if s.null() {
				a.ToolUse = nil
				break
			}
			if a.ToolUse == nil {
				a.ToolUse = &event.ToolUse{}
			}
			s.toolUse(a.ToolUse)
		case "session_id_hint":
			a.SessionIDHint = s.boolean()
		case "parent_root_exec_id":
			a.ParentRootExecID = s.str()
		case "via":
			a.Via = s.str()
		case "verified":
			if s.null() {
				a.Verified = nil
				break
			}
			if a.Verified == nil {
				a.Verified = new(bool)
			}
			*a.Verified = s.boolean()
		case "verification":
			a.Verification = s.str()
		case "verified_at":
			if s.null() {
				a.VerifiedAt = nil
				break
			}
			if a.VerifiedAt == nil {
				a.VerifiedAt = new(time.Time)
			}
			s.time(a.VerifiedAt)
		case "release":
			a.Release = s.str()
		default:
			return false
		}
		return true
	})
}

// toolUse reads an attribution's tool call.
func (s *scan) toolUse(t *event.ToolUse) {
	s.object(func(k []byte) bool {
		switch string(k) {
		case "id":
			t.ID = s.str()
		case "name":
			t.Name = s.str()
		case "attribution":
			t.Attribution = s.str()
		case "no_hook_decision":
			t.NoHookDecision = s.boolean()
		default:
			return false
		}
		return true
	})
}

// event and fact are the record decoders: the fast path, or
// encoding/json.
func (d *recordDecoder) event(b []byte) (*sensor.Event, error) {
	if ev, ok := fastEvent(b, &d.strs); ok {
		return ev, nil
	}
	var ev sensor.Event
	if err := json.Unmarshal(b, &ev); err != nil {
		return nil, err
	}
	return &ev, nil
}

// fact decodes into f, which is zero.
func (d *recordDecoder) fact(b []byte, f *lineage.Fact) error {
	if fastFact(b, &d.strs, f) {
		return nil
	}
	*f = lineage.Fact{}
	return json.Unmarshal(b, f)
}
