package smoke

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/btf"
	"github.com/cilium/ebpf/features"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/ringbuf"
	"github.com/lineaged/lineaged/tests/testutil"
)

// Environment read by these tests. The vmtest harness sets them on the guest
// kernel command line (the kernel hands unknown key=value words to init).
const (
	// envRequireAttach lists attach kinds that must work ("all" for every
	// kind): an unavailable kind, or a refused program of that kind, fails.
	// The harness sets it on every guest (-require-attach; a -nolsm guest
	// leaves out lsm). Unset on a developer host, where a refused kind is a
	// skip, unless it is lsm and bpf is an active LSM.
	envRequireAttach = "VMTEST_REQUIRE_ATTACH"
	// envObjects is the directory searched for *_bpfel.o objects whose
	// verifier cost is recorded. Unset: the repository root.
	envObjects = "VMTEST_BPF_OBJECTS"
)

// Slots of the hits map; mirror enum attach_kind in smoke.bpf.c.
const (
	hitTracepoint = 0
	hitRawTP      = 1
	hitTPBTF      = 2
	hitFentry     = 3
	hitLSM        = 4
	hitKprobe     = 5
)

// The read deadline only bounds a broken run; a passing run returns as soon
// as the expected record arrives.
const readDeadline = 30 * time.Second

// TestMain lifts RLIMIT_MEMLOCK, which bounds BPF memory before 5.11 (the
// 5.10 guest).
func TestMain(m *testing.M) { testutil.Main(m) }

// ensureTracefs mounts tracefs where cilium/ebpf looks for tracepoint ids
// when nothing is mounted there yet (the default on some hosts).
func ensureTracefs(t *testing.T) {
	t.Helper()
	const dir = "/sys/kernel/tracing"
	if _, err := os.Stat(filepath.Join(dir, "events")); err == nil {
		return
	}
	if err := syscall.Mount("tracefs", dir, "tracefs", 0, ""); err != nil {
		t.Fatalf("mount tracefs at %s: %v", dir, err)
	}
}

// onlyProgram returns a copy of the smoke spec holding just one program, with
// the target set to this process, so each attach kind loads on its own and a
// kernel refusing one kind does not hide the others.
func onlyProgram(t *testing.T, name string) *ebpf.CollectionSpec {
	t.Helper()
	spec, err := loadSmoke()
	if err != nil {
		t.Fatal(err)
	}
	if err := spec.Variables[smokeVarTargetTgid].Set(uint32(os.Getpid())); err != nil {
		t.Fatalf("set target_tgid: %v", err)
	}
	for n := range spec.Programs {
		if n != name {
			delete(spec.Programs, n)
		}
	}
	if len(spec.Programs) != 1 {
		t.Fatalf("program %q not in smoke object", name)
	}
	retarget(spec)
	return spec
}

// syscallPrefix is the prefix of the syscall wrappers' symbols on this
// architecture (__x64_sys_getpgid, __arm64_sys_getpgid).
var syscallPrefix = map[string]string{"amd64": "__x64_sys_", "arm64": "__arm64_sys_"}[runtime.GOARCH]

// retarget points the programs that hook an x86-64 syscall wrapper (the
// object names __x64_sys_getpgid in its sections) at this architecture's
// wrapper of the same syscall.
func retarget(spec *ebpf.CollectionSpec) {
	for _, p := range spec.Programs {
		if rest, ok := strings.CutPrefix(p.AttachTo, "__x64_sys_"); ok && syscallPrefix != "" {
			p.AttachTo = syscallPrefix + rest
		}
	}
}

// TestRingbufExec loads a syscall tracepoint that records execve calls made
// by this process's children into a ring buffer, runs a child, and checks
// that its record arrives with the right pid, parent and filename.
func TestRingbufExec(t *testing.T) {
	testutil.MustBeRoot(t, "to load BPF programs into the kernel")
	ensureTracefs(t)

	coll, err := ebpf.NewCollection(onlyProgram(t, smokeProgSmokeExecve))
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	defer coll.Close()
	tp, err := link.Tracepoint("syscalls", "sys_enter_execve", coll.Programs[smokeProgSmokeExecve], nil)
	if err != nil {
		t.Fatalf("attach tracepoint: %v", err)
	}
	defer tp.Close()
	rd, err := ringbuf.NewReader(coll.Maps[smokeMapEvents])
	if err != nil {
		t.Fatalf("ring buffer reader: %v", err)
	}
	defer rd.Close()

	// The child is this test binary running no test: present on every host
	// and in every guest, and it exits at once.
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(self, "-test.run=^$")
	if err := cmd.Run(); err != nil {
		t.Fatalf("run child %s: %v", self, err)
	}
	child := uint32(cmd.Process.Pid)

	rd.SetDeadline(time.Now().Add(readDeadline))
	var rec ringbuf.Record
	for {
		if err := rd.ReadInto(&rec); err != nil {
			t.Fatalf("no execve record for child pid %d: %v", child, err)
		}
		var ev smokeExecEvent
		if err := binary.Read(bytes.NewReader(rec.RawSample), binary.NativeEndian, &ev); err != nil {
			t.Fatalf("decode record (%d bytes): %v", len(rec.RawSample), err)
		}
		if ev.Pid != child {
			// Another child of this process (none expected, but the
			// Go runtime owns the process): keep reading.
			continue
		}
		if ev.Ppid != uint32(os.Getpid()) {
			t.Errorf("ppid = %d, want %d", ev.Ppid, os.Getpid())
		}
		want := self
		if len(want) > len(ev.Filename)-1 {
			want = want[:len(ev.Filename)-1]
		}
		if got := cString(ev.Filename[:]); got != want {
			t.Errorf("filename = %q, want %q", got, want)
		}
		return
	}
}

func cString(b []int8) string {
	var sb strings.Builder
	for _, c := range b {
		if c == 0 {
			break
		}
		sb.WriteByte(byte(c))
	}
	return sb.String()
}

// attachKind is one program type probed by TestAttachTypes.
type attachKind struct {
	name    string // as reported: tracepoint, raw_tp, tp_btf, fentry, lsm, kprobe
	prog    string
	slot    uint32
	attach  func(*ebpf.Program) (link.Link, error)
	trigger func() error
}

func getpgid() error { _, err := syscall.Getpgid(0); return err }

func openFile() error {
	f, err := os.Open("/proc/self/stat")
	if err != nil {
		return err
	}
	return f.Close()
}

var attachKinds = []attachKind{
	{"tracepoint", smokeProgProbeTracepoint, hitTracepoint, func(p *ebpf.Program) (link.Link, error) {
		return link.Tracepoint("syscalls", "sys_enter_getpgid", p, nil)
	}, getpgid},
	{"raw_tp", smokeProgProbeRawTp, hitRawTP, func(p *ebpf.Program) (link.Link, error) {
		return link.AttachRawTracepoint(link.RawTracepointOptions{Name: "sys_enter", Program: p})
	}, getpgid},
	{"tp_btf", smokeProgProbeTpBtf, hitTPBTF, func(p *ebpf.Program) (link.Link, error) {
		return link.AttachTracing(link.TracingOptions{Program: p, AttachType: ebpf.AttachTraceRawTp})
	}, getpgid},
	{"fentry", smokeProgProbeFentry, hitFentry, func(p *ebpf.Program) (link.Link, error) {
		return link.AttachTracing(link.TracingOptions{Program: p, AttachType: ebpf.AttachTraceFEntry})
	}, getpgid},
	{"lsm", smokeProgProbeLsm, hitLSM, func(p *ebpf.Program) (link.Link, error) {
		return link.AttachLSM(link.LSMOptions{Program: p})
	}, openFile},
	{"kprobe", smokeProgProbeKprobe, hitKprobe, func(p *ebpf.Program) (link.Link, error) {
		return link.Kprobe(syscallPrefix+"getpgid", p, nil)
	}, getpgid},
}

// required reports whether the environment demands that kind work here.
func required(kind string) bool {
	for _, k := range strings.Split(os.Getenv(envRequireAttach), ",") {
		if k = strings.TrimSpace(k); k == "all" || k == kind {
			return true
		}
	}
	return false
}

// activeLSMs returns the kernel's active LSM list, or "" when securityfs is
// not mounted (then the LSM probe is simply attempted, and its refusal is
// not held against the kernel).
func activeLSMs() string {
	b, err := os.ReadFile("/sys/kernel/security/lsm")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// TestAttachTypes loads, attaches and triggers one program of each attach
// type and checks that it ran. It prints one line per kind for the matrix:
//
//	VMTEST FEATURE <kind> yes|no <reason>
//
// A kind the kernel refuses is a skip unless VMTEST_REQUIRE_ATTACH names it,
// or it is lsm while bpf is an active LSM (where the sensor's deny-exec
// must take the LSM path); a kind that attaches but never runs is always a
// failure.
func TestAttachTypes(t *testing.T) {
	testutil.MustBeRoot(t, "to load BPF programs into the kernel")
	ensureTracefs(t)
	for _, k := range attachKinds {
		t.Run(k.name, func(t *testing.T) {
			unavailable := func(format string, args ...any) {
				reason := fmt.Sprintf(format, args...)
				fmt.Printf("VMTEST FEATURE %s no %s\n", k.name, oneLine(reason))
				if required(k.name) {
					t.Fatalf("%s required by %s but unavailable: %s", k.name, envRequireAttach, reason)
				}
				if lsms := activeLSMs(); k.name == "lsm" && hasWord(lsms, "bpf") {
					t.Fatalf("lsm unavailable although bpf is an active LSM (%s): %s", lsms, reason)
				}
				t.Skipf("kernel does not offer %s: %s", k.name, reason)
			}
			if k.name == "lsm" {
				if lsms := activeLSMs(); lsms != "" && !hasWord(lsms, "bpf") {
					// The trap on 5.10: an LSM program attaches
					// but never runs when bpf is not active.
					unavailable("bpf not in active LSMs (%s)", lsms)
				}
			}
			coll, err := ebpf.NewCollection(onlyProgram(t, k.prog))
			if err != nil {
				unavailable("load: %v", err)
			}
			defer coll.Close()
			l, err := k.attach(coll.Programs[k.prog])
			if err != nil {
				unavailable("attach: %v", err)
			}
			defer l.Close()
			if err := k.trigger(); err != nil {
				t.Fatalf("trigger: %v", err)
			}
			var n uint64
			if err := coll.Maps[smokeMapHits].Lookup(k.slot, &n); err != nil {
				t.Fatalf("read hits: %v", err)
			}
			if n == 0 {
				fmt.Printf("VMTEST FEATURE %s no attached but never ran\n", k.name)
				t.Fatalf("%s program attached but did not run on the trigger", k.name)
			}
			fmt.Printf("VMTEST FEATURE %s yes\n", k.name)
		})
	}
}

func hasWord(list, w string) bool {
	for _, f := range strings.Split(list, ",") {
		if f == w {
			return true
		}
	}
	return false
}

func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 160 {
		s = s[:160] + "..."
	}
	return s
}

// objectsDir is where TestVerifierBudget looks for BPF objects: the
// directory the harness packed them into, or the repository root.
func objectsDir(t *testing.T) string {
	if d := os.Getenv(envObjects); d != "" {
		return d
	}
	root, err := filepath.Abs("../../..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("repository root not found at %s (set %s): %v", root, envObjects, err)
	}
	return root
}

// objectArchs maps the suffix bpf2go gives an object built for one target
// architecture (fileio_x86_bpfel.o) to the Go architectures it is for;
// objects without one are for every architecture.
var objectArchs = map[string][]string{"x86": {"amd64", "386"}, "arm64": {"arm64"}}

// forThisArch reports whether an object file is arch-independent or built
// for this architecture.
func forThisArch(name string) bool {
	base := strings.TrimSuffix(name, "_bpfel.o")
	i := strings.LastIndexByte(base, '_')
	if i < 0 {
		return true
	}
	archs, ok := objectArchs[base[i+1:]]
	return !ok || slices.Contains(archs, runtime.GOARCH)
}

// findObjects returns the little-endian BPF objects for this architecture
// under dir, relative to it, sorted. Cache and dependency trees are not
// searched.
func findObjects(dir string) ([]string, error) {
	var objs []string
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			switch d.Name() {
			case ".git", "cache", "node_modules":
				return filepath.SkipDir
			}
			return nil
		}
		if strings.HasSuffix(d.Name(), "_bpfel.o") && forThisArch(d.Name()) {
			rel, err := filepath.Rel(dir, p)
			if err != nil {
				return err
			}
			objs = append(objs, filepath.ToSlash(rel))
		}
		return nil
	})
	sort.Strings(objs)
	return objs, err
}

var processedRE = regexp.MustCompile(`processed (\d+) insns`)

// verifiedInsns reads the verifier's instruction count from its stats log,
// which every kernel of the matrix writes; the program info field only
// exists from 5.16.
func verifiedInsns(log string) (int, bool) {
	m := processedRE.FindAllStringSubmatch(log, -1)
	if len(m) == 0 {
		return 0, false
	}
	n, err := strconv.Atoi(m[len(m)-1][1])
	return n, err == nil
}

// attachKindOf names a program's attach kind the way VMTEST_REQUIRE_ATTACH
// and the VMTEST FEATURE lines do (tracepoint, raw_tp, tp_btf, fentry, lsm,
// kprobe); other kinds get a name of their own (fexit, fmod_ret, or the
// program type), which only "all" requires.
func attachKindOf(p *ebpf.ProgramSpec) string {
	switch p.Type {
	case ebpf.TracePoint:
		return "tracepoint"
	case ebpf.RawTracepoint, ebpf.RawTracepointWritable:
		return "raw_tp"
	case ebpf.Kprobe:
		return "kprobe"
	case ebpf.LSM:
		return "lsm"
	case ebpf.Tracing:
		switch p.AttachType {
		case ebpf.AttachTraceRawTp:
			return "tp_btf"
		case ebpf.AttachTraceFEntry:
			return "fentry"
		case ebpf.AttachTraceFExit:
			return "fexit"
		case ebpf.AttachModifyReturn:
			return "fmod_ret"
		}
	}
	return strings.ToLower(p.Type.String())
}

// refused reports whether a load error means the kernel does not offer the
// program's type or hook, as opposed to the verifier rejecting the code.
func refused(err error) bool {
	return errors.Is(err, ebpf.ErrNotSupported) || errors.Is(err, syscall.EPERM) ||
		errors.Is(err, btf.ErrNotFound) || errors.Is(err, syscall.ENOTSUP)
}

// knownLimits are programs a kernel of the matrix cannot load for a limit
// of that kernel the sensor handles (it leaves the program out and says
// so: Sensor.PathIdentity), named by the load error's words for it. Such a
// refusal is a skip; any other rejection still fails.
var knownLimits = map[string]string{
	// path_chown(const struct path *, kuid_t, kgid_t): BPF trampolines
	// take struct arguments by value from 6.1 on.
	"path_lsm_chown": "type STRUCT is unsupported",
}

// loopBuild says whether obj is the bpf_loop build of a path-walking object
// (sensor/kernel/gen.go: <name>Loop, files <name>loop_*bpfel.o).
func loopBuild(obj string) bool {
	return strings.Contains(filepath.Base(obj), "loop_")
}

// loadErrorText is a load error with the whole verifier log, where the
// error's own text keeps only its last lines.
func loadErrorText(err error) string {
	var ve *ebpf.VerifierError
	if errors.As(err, &ve) {
		return err.Error() + "\n" + strings.Join(ve.Log, "\n")
	}
	return err.Error()
}

// TestVerifierBudget loads every program of every committed BPF object on
// its own, with verifier statistics on, and prints
//
//	VMTEST VERIFIED <object> <program> <instructions>
//	VMTEST UNVERIFIED <object> <program> rejected|refused
//
// so the matrix records each program's cost per kernel, the refused ones
// with their attach kind. A program the verifier rejects fails. One whose
// type the kernel refuses fails when VMTEST_REQUIRE_ATTACH requires its
// kind, or when it is an LSM program and bpf is an active LSM; otherwise it
// is a skip.
func TestVerifierBudget(t *testing.T) {
	testutil.MustBeRoot(t, "to load BPF programs into the kernel")
	dir := objectsDir(t)
	objs, err := findObjects(dir)
	if err != nil {
		t.Fatalf("find objects under %s: %v", dir, err)
	}
	if len(objs) == 0 {
		t.Fatalf("no *_bpfel.o objects under %s", dir)
	}
	for _, obj := range objs {
		spec, err := ebpf.LoadCollectionSpec(filepath.Join(dir, obj))
		if err != nil {
			t.Errorf("%s: %v", obj, err)
			continue
		}
		retarget(spec)
		names := make([]string, 0, len(spec.Programs))
		for n := range spec.Programs {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, name := range names {
			t.Run(strings.TrimSuffix(obj, "_bpfel.o")+"/"+name, func(t *testing.T) {
				one := spec.Copy()
				for n := range one.Programs {
					if n != name {
						delete(one.Programs, n)
					}
				}
				coll, err := ebpf.NewCollectionWithOptions(one, ebpf.CollectionOptions{
					Programs: ebpf.ProgramOptions{LogLevel: ebpf.LogLevelStats},
				})
				if err != nil {
					if refused(err) {
						kind := attachKindOf(one.Programs[name])
						fmt.Printf("VMTEST UNVERIFIED %s %s refused %s\n", obj, name, kind)
						if required(kind) {
							t.Fatalf("kernel refuses %s (%s) although %s requires %s: %v", name, one.Programs[name].Type, envRequireAttach, kind, err)
						}
						if lsms := activeLSMs(); kind == "lsm" && hasWord(lsms, "bpf") {
							t.Fatalf("kernel refuses LSM program %s although bpf is an active LSM (%s): %v", name, lsms, err)
						}
						t.Skipf("kernel refuses %s (%s): %v", name, one.Programs[name].Type, err)
					}
					if loopBuild(obj) && features.HaveProgramHelper(ebpf.RawTracepoint, asm.FnLoop) != nil {
						// The sensor takes the bounded-loop build of this
						// object here (sensor/kernel/walker.go).
						fmt.Printf("VMTEST UNVERIFIED %s %s limit %s\n", obj, name, attachKindOf(one.Programs[name]))
						t.Skipf("this kernel has no bpf_loop, which %s's path walk uses: %v", obj, err)
					}
					if limit, ok := knownLimits[name]; ok && strings.Contains(loadErrorText(err), limit) {
						fmt.Printf("VMTEST UNVERIFIED %s %s limit %s\n", obj, name, attachKindOf(one.Programs[name]))
						t.Skipf("this kernel cannot load %s (%q), which the sensor leaves out: %v", name, limit, err)
					}
					fmt.Printf("VMTEST UNVERIFIED %s %s rejected\n", obj, name)
					var ve *ebpf.VerifierError
					if errors.As(err, &ve) {
						t.Fatalf("load %s: verifier rejected it; log tail:\n%-30v", name, ve)
					}
					t.Fatalf("load %s: %v", name, err)
				}
				defer coll.Close()
				p := coll.Programs[name]
				n, ok := verifiedInsns(p.VerifierLog)
				if !ok {
					info, err := p.Info()
					if err != nil {
						t.Fatalf("program info: %v", err)
					}
					v, vok := info.VerifiedInstructions()
					if !vok {
						t.Fatalf("no instruction count in verifier log %q nor in program info", p.VerifierLog)
					}
					n = int(v)
				}
				if n <= 0 {
					t.Fatalf("verified instruction count %d", n)
				}
				fmt.Printf("VMTEST VERIFIED %s %s %d\n", obj, name, n)
			})
		}
	}
}

// attachKindOf names each probe program with the kind it is probed as, so
// a refused program is judged against the same VMTEST_REQUIRE_ATTACH
// names as the probe. Needs no privileges.
func TestAttachKindOf(t *testing.T) {
	spec, err := loadSmoke()
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range attachKinds {
		p, ok := spec.Programs[k.prog]
		if !ok {
			t.Errorf("program %s not in the smoke object", k.prog)
			continue
		}
		if got := attachKindOf(p); got != k.name {
			t.Errorf("attachKindOf(%s) = %q, want %q", k.prog, got, k.name)
		}
	}
	if got := attachKindOf(spec.Programs[smokeProgSmokeExecve]); got != "tracepoint" {
		t.Errorf("attachKindOf(%s) = %q, want tracepoint", smokeProgSmokeExecve, got)
	}
}
