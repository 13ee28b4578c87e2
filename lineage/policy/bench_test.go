package policy

import (
	"testing"

	"github.com/lineaged/lineaged/lineage/event"
)

// BenchmarkDefaultRules measures the rule evaluation cost per event with
// the default set (deploy/rules): the stage's evaluate step alone, without
// redaction, over events of each kind and over a mix shaped like an agent
// session's stream (mostly file opens, some execs, exits and connects, a
// few events outside sessions). Target: < 2 µs per event.
func BenchmarkDefaultRules(b *testing.B) {
	rs := defaultRules(b)
	src := open("/home/dev/proj/src/main.go", "read")
	write := open("/home/dev/proj/src/main.go", "write")
	ex := exec("/usr/bin/git", "/home/dev/proj", event.VerdictPackageVerified, "status")
	unsigned := exec("/home/dev/proj/target/debug/app", "/home/dev/proj", event.VerdictUnsigned)
	exit := session(event.KindProcessExit, "/usr/bin/git", "/home/dev/proj")
	conn := connect("140.82.112.3", 443)
	cred := open("/home/dev/.ssh/id_ed25519", "read")
	out := outside(open("/etc/ld.so.cache", "read"))
	mix := []*event.Event{src, src, src, write, src, ex, exit, src, out, conn, src, src, unsigned, exit, src, out}
	for _, c := range []struct {
		name string
		evs  []*event.Event
	}{
		{"mix", mix},
		{"file.open", []*event.Event{src}},
		{"file.open-write", []*event.Event{write}},
		{"file.open-credential", []*event.Event{cred}},
		{"process.exec", []*event.Event{ex}},
		{"process.exec-unsigned", []*event.Event{unsigned}},
		{"net.connect", []*event.Event{conn}},
		{"outside-session", []*event.Event{out}},
	} {
		b.Run(c.name, func(b *testing.B) {
			st, err := New(Config{Rules: rs})
			if err != nil {
				b.Fatal(err)
			}
			buf := make([]*event.Event, 0, 4)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				buf = st.evaluate(buf[:0], c.evs[i%len(c.evs)])
			}
		})
	}
}
