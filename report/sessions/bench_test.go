package sessions

import (
	"bytes"
	"fmt"
	"io"
	"testing"
)

// benchInput is about n events: copies of the recorded session, each with
// its own root exec id (so its own session) and event ids.
func benchInput(b *testing.B, n int) ([]byte, int) {
	fx := readFixture(b)
	lines := bytes.Count(fx, []byte("\n"))
	root := []byte("5fdb88914fc971de12fde644ec90655e")
	var buf bytes.Buffer
	events := 0
	for i := 0; events < n; i++ {
		c := bytes.ReplaceAll(fx, root, []byte(fmt.Sprintf("%032x", i)))
		buf.Write(bytes.ReplaceAll(c, []byte(`"event_id":"`), []byte(fmt.Sprintf(`"event_id":"%04d-`, i))))
		events += lines
	}
	return buf.Bytes(), events
}

// `lineaged sessions --html` on a 100k-event input: read, build the
// sessions, write the page.
func BenchmarkSessionsHTML100k(b *testing.B) {
	in, n := benchInput(b, 100_000)
	b.SetBytes(int64(len(in)))
	b.ResetTimer()
	for b.Loop() {
		bl := NewBuilder()
		if err := Read(bytes.NewReader(in), "bench", bl.Add); err != nil {
			b.Fatal(err)
		}
		if err := WriteHTML(io.Discard, bl.Report()); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "events/s")
}
