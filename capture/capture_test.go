package capture

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// build writes n records in blocks of per records and returns the file and
// the offset where each block starts.
func build(t testing.TB, n, per int) ([]byte, []int) {
	t.Helper()
	var buf bytes.Buffer
	w, err := NewWriter(&buf, Header{SensorVersion: "test", Host: "h", Kernel: "k", ConfigDigest: "d"}, WriterConfig{Interval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	var starts []int
	for i := 0; i < n; i++ {
		if i%per == 0 {
			if err := w.Flush(); err != nil {
				t.Fatal(err)
			}
			starts = append(starts, buf.Len())
		}
		if err := w.Add(TypeEvent, []byte(fmt.Sprintf(`{"n":%d,"pad":"%0*d"}`, i, i%50, 0))); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes(), starts
}

// readAll reads every record; it returns the payloads and the final error
// (nil at a clean end).
func readAll(b []byte, cfg ReaderConfig) ([]string, *Reader, error) {
	r, err := NewReader(bytes.NewReader(b), cfg)
	if err != nil {
		return nil, nil, err
	}
	defer r.Close()
	var got []string
	for {
		rec, err := r.Next()
		if errors.Is(err, io.EOF) {
			return got, r, nil
		}
		if err != nil {
			return got, r, err
		}
		got = append(got, string(rec.Payload))
	}
}

func TestRoundTrip(t *testing.T) {
	b, _ := build(t, 1000, 100)
	got, r, err := readAll(b, ReaderConfig{})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1000 || got[999] != fmt.Sprintf(`{"n":999,"pad":"%0*d"}`, 999%50, 0) {
		t.Fatalf("got %d records, last %q", len(got), got[len(got)-1])
	}
	h := r.Header()
	if h.FormatVersion != FormatVersion || h.SensorVersion != "test" || h.Host != "h" || h.Kernel != "k" || h.ConfigDigest != "d" || h.Raw {
		t.Fatalf("header %+v", h)
	}
	if s := r.Stats(); s.Blocks != 10 || s.Records != 1000 {
		t.Fatalf("stats %+v", s)
	}
}

// A file cut anywhere reads every record of the whole blocks before the cut,
// then says truncated and where.
// Payloads stay valid after later calls (replay keeps them all, uncopied).
func TestPayloadsStayValid(t *testing.T) {
	b, _ := build(t, 50, 7)
	r, err := NewReader(bytes.NewReader(b), ReaderConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var kept [][]byte
	for {
		rec, err := r.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		kept = append(kept, rec.Payload)
	}
	if len(kept) != 50 {
		t.Fatalf("%d records", len(kept))
	}
	for i, p := range kept {
		if want := fmt.Sprintf(`{"n":%d,"pad":"%0*d"}`, i, i%50, 0); string(p) != want {
			t.Fatalf("record %d is now %q, want %q", i, p, want)
		}
	}
}

func TestTruncatedEverywhere(t *testing.T) {
	b, starts := build(t, 60, 10)
	for cut := starts[0]; cut < len(b); cut++ {
		got, _, err := readAll(b[:cut], ReaderConfig{})
		whole := 0
		for i, s := range starts {
			if cut > s {
				whole = i
			}
		}
		atBoundary := false
		for _, s := range starts {
			atBoundary = atBoundary || s == cut
		}
		if atBoundary {
			if err != nil {
				t.Fatalf("cut %d at a block boundary: %v", cut, err)
			}
			continue
		}
		var pe *PositionError
		if !errors.As(err, &pe) || !errors.Is(err, ErrTruncated) || pe.Offset != int64(starts[whole]) {
			t.Fatalf("cut %d: err %v, want truncated at %d", cut, err, starts[whole])
		}
		if len(got) != whole*10 {
			t.Fatalf("cut %d: %d records, want %d", cut, len(got), whole*10)
		}
	}
	// Inside the header.
	for _, cut := range []int{3, 12, starts[0] - 1} {
		if _, _, err := readAll(b[:cut], ReaderConfig{}); !errors.Is(err, ErrTruncated) {
			t.Fatalf("cut %d in the header: %v", cut, err)
		}
	}
}

func TestCorruptRecord(t *testing.T) {
	b, starts := build(t, 30, 10)
	// Flip one byte inside the second block's compressed body.
	bad := bytes.Clone(b)
	bad[starts[1]+blockHeaderLen+5] ^= 0xff
	got, _, err := readAll(bad, ReaderConfig{})
	var pe *PositionError
	if !errors.As(err, &pe) || !errors.Is(err, ErrCorrupt) || pe.Offset != int64(starts[1]) || len(got) != 10 {
		t.Fatalf("err %v, %d records", err, len(got))
	}
	if want := fmt.Sprintf("byte offset %d", starts[1]); !bytes.Contains([]byte(err.Error()), []byte(want)) {
		t.Fatalf("error %q does not name %q", err, want)
	}
	got, r, err := readAll(bad, ReaderConfig{SkipCorrupt: true})
	if err != nil || len(got) != 20 || r.Stats().CorruptBlocks != 1 {
		t.Fatalf("skip: err %v, %d records, %+v", err, len(got), r.Stats())
	}
}

// A record whose own checksum fails inside a sound block (a writer bug or
// memory fault before compression) names the block and the record.
func TestCorruptRecordChecksum(t *testing.T) {
	var recs []byte
	for i := 0; i < 3; i++ {
		recs = appendRecord(recs, Record{Type: TypeFact, Payload: []byte("abc" + strconv.Itoa(i))})
	}
	recs[len(recs)/2] ^= 1 // inside the second record's payload
	hb, _ := encodeHeader(Header{FormatVersion: 1})
	b := append(hb, rawBlock(recs, 3)...)
	_, _, err := readAll(b, ReaderConfig{})
	var pe *PositionError
	if !errors.As(err, &pe) || pe.Record != 1 || pe.Offset != int64(len(hb)) {
		t.Fatalf("err %v", err)
	}
	got, r, err := readAll(b, ReaderConfig{SkipCorrupt: true})
	if err != nil || len(got) != 2 || r.Stats().CorruptRecords != 1 {
		t.Fatalf("skip: %v %q %+v", err, got, r.Stats())
	}
}

// A version 1 file (no snapshot record) still reads; a snapshot record in
// one is damage, and a version 2 file carries it.
func TestVersion1AndSnapshotRecord(t *testing.T) {
	var recs []byte
	recs = appendRecord(recs, Record{Type: TypeFact, Payload: []byte("f")})
	recs = appendRecord(recs, Record{Type: TypeSnapshot, Payload: []byte("{}")})
	recs = appendRecord(recs, Record{Type: TypeStep, Payload: []byte("s")})
	for _, v := range []int{1, 2} {
		hb, _ := encodeHeader(Header{FormatVersion: v})
		b := append(hb, rawBlock(recs, 3)...)
		got, r, err := readAll(b, ReaderConfig{})
		if v == 2 {
			if err != nil || len(got) != 3 || r.Header().FormatVersion != 2 {
				t.Fatalf("version 2: %v %q", err, got)
			}
			continue
		}
		var pe *PositionError
		if !errors.As(err, &pe) || pe.Record != 1 || !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "snapshot record in a version 1 capture") {
			t.Fatalf("version 1: %v", err)
		}
		got, r, err = readAll(b, ReaderConfig{SkipCorrupt: true})
		if err != nil || len(got) != 2 || r.Stats().CorruptRecords != 1 || r.Header().FormatVersion != 1 {
			t.Fatalf("version 1, skipping: %v %q %+v", err, got, r.Stats())
		}
	}
	if TypeSnapshot.String() != "snapshot" {
		t.Fatal(TypeSnapshot.String())
	}
}

func rawBlock(recs []byte, n int) []byte {
	w, _ := NewWriter(io.Discard, Header{}, WriterConfig{})
	defer w.Close()
	z := w.enc.EncodeAll(recs, nil)
	out := append([]byte{}, BlockMagic[:]...)
	out = binary.LittleEndian.AppendUint32(out, uint32(len(z)))
	out = binary.LittleEndian.AppendUint32(out, uint32(n))
	out = binary.LittleEndian.AppendUint32(out, crc(z))
	return append(out, z...)
}

func TestNewerVersion(t *testing.T) {
	b, _ := build(t, 1, 1)
	b = bytes.Clone(b)
	binary.LittleEndian.PutUint16(b[len(Magic):], 7)
	_, _, err := readAll(b, ReaderConfig{})
	var ve *VersionError
	if !errors.As(err, &ve) || ve.File != 7 || ve.Reader != FormatVersion {
		t.Fatalf("err %v", err)
	}
	if msg := err.Error(); !bytes.Contains([]byte(msg), []byte("version 7")) || !bytes.Contains([]byte(msg), []byte("version 2")) {
		t.Fatalf("message %q does not name both versions", msg)
	}
}

func TestNotACapture(t *testing.T) {
	for _, in := range []string{"", "{\"kind\":\"process.exec\"}\n", "\x28\xb5\x2f\xfd garbage"} {
		if _, _, err := readAll([]byte(in), ReaderConfig{}); !errors.Is(err, ErrNotCapture) {
			t.Fatalf("%q: %v", in, err)
		}
	}
}

func TestCreateMode(t *testing.T) {
	p := filepath.Join(t.TempDir(), "c.lcap")
	w, err := Create(p, Header{}, WriterConfig{})
	if err != nil {
		t.Fatal(err)
	}
	w.Close()
	st, err := os.Stat(p)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v %v", st.Mode(), err)
	}
	if _, err := Create(p, Header{}, WriterConfig{}); err == nil {
		t.Fatal("Create overwrote an existing file")
	}
}

// A follower reads records while the file grows.
func TestFollow(t *testing.T) {
	p := filepath.Join(t.TempDir(), "c.lcap")
	w, err := Create(p, Header{}, WriterConfig{Interval: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r, err := NewReader(f, ReaderConfig{Follow: true, Context: ctx, Poll: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 5; i++ {
		w.Add(TypeEvent, []byte(strconv.Itoa(i)))
		rec, err := r.Next()
		if err != nil || string(rec.Payload) != strconv.Itoa(i) {
			t.Fatalf("record %d: %q %v", i, rec.Payload, err)
		}
	}
}

// A writer killed with SIGKILL leaves every flushed record readable.
func TestSurvivesSIGKILL(t *testing.T) {
	if p := os.Getenv("CAPTURE_KILL_CHILD"); p != "" {
		w, err := Create(p, Header{}, WriterConfig{Interval: 5 * time.Millisecond})
		if err != nil {
			os.Exit(3)
		}
		for i := 0; ; i++ {
			w.Add(TypeEvent, []byte(strconv.Itoa(i)))
			if i%100 == 0 {
				time.Sleep(time.Millisecond)
			}
		}
	}
	p := filepath.Join(t.TempDir(), "c.lcap")
	cmd := exec.Command(os.Args[0], "-test.run=^TestSurvivesSIGKILL$")
	cmd.Env = append(os.Environ(), "CAPTURE_KILL_CHILD="+p)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	cmd.Process.Kill()
	cmd.Wait()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	got, _, err := readAll(b, ReaderConfig{})
	if err != nil && !errors.Is(err, ErrTruncated) {
		t.Fatal(err)
	}
	if len(got) < 100 {
		t.Fatalf("only %d records after the kill", len(got))
	}
	for i, g := range got {
		if g != strconv.Itoa(i) {
			t.Fatalf("record %d is %q", i, g)
		}
	}
	t.Logf("%d records readable after SIGKILL (%d bytes, end: %v)", len(got), len(b), err)
}
