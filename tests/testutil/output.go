package testutil

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/lineaged/lineaged/lineage/event"
)

// WaitOutputEvents polls a running lineaged's output file until cond holds
// for the events in it, and returns them; the 90 s deadline only turns a
// hang into a failure, which names what was waited for, the sensor.loss
// events the output holds (a record may have been shed while other test
// packages flood the host) and the tail of the sensor's stderr.
func WaitOutputEvents(t *testing.T, out string, stderr *SyncBuffer, what string, cond func([]*event.Event) bool) []*event.Event {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for {
		var evs []*event.Event
		if b, err := os.ReadFile(out); err == nil {
			sc := bufio.NewScanner(bytes.NewReader(b))
			sc.Buffer(make([]byte, 1<<20), 64<<20)
			for sc.Scan() {
				var e event.Event
				if json.Unmarshal(sc.Bytes(), &e) == nil {
					evs = append(evs, &e)
				}
			}
		}
		if cond(evs) {
			return evs
		}
		if time.Now().After(deadline) {
			s := stderr.String()
			if len(s) > 4000 {
				s = s[len(s)-4000:]
			}
			t.Fatalf("no %s in lineaged's output (%d events; losses reported: %s); stderr:\n%s", what, len(evs), lossSummary(evs), strings.TrimSpace(s))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// lossSummary lists the sensor.loss events of evs: where, of what, how many.
func lossSummary(evs []*event.Event) string {
	var parts []string
	for _, e := range evs {
		if e.Kind == event.KindSensorLoss && e.Loss != nil {
			parts = append(parts, fmt.Sprintf("%s/%s:%d", e.Loss.Where, e.Loss.Of, e.Loss.Count))
		}
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, " ")
}
