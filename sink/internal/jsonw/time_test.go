package jsonw

import (
	"math/rand/v2"
	"testing"
	"time"
)

// AppendTime writes exactly what time.Format with TimeLayout writes, in
// UTC, for any time: the zero time, the years' edges, random instants in
// other zones.
func TestAppendTimeMatchesFormat(t *testing.T) {
	zone := time.FixedZone("x", -7*3600-1800)
	times := []time.Time{
		{}, time.Unix(0, 0), time.Unix(0, 1), time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC),
		time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(2026, 12, 3, 4, 5, 6, 7, zone),
	}
	r := rand.New(rand.NewPCG(1, 2))
	for range 10000 {
		times = append(times, time.Unix(r.Int64N(1<<36), r.Int64N(1e9)).In(zone))
	}
	for _, tm := range times {
		want := `"` + tm.UTC().Format(TimeLayout) + `"`
		if got := string(AppendTime(nil, tm)); got != want {
			t.Fatalf("AppendTime(%v) = %s, want %s", tm, got, want)
		}
	}
}

func BenchmarkAppendTime(b *testing.B) {
	tm := time.Date(2026, 12, 3, 4, 5, 6, 7, time.UTC)
	buf := make([]byte, 0, 64)
	for range b.N {
		buf = AppendTime(buf[:0], tm)
	}
}
