package native

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"testing"

	"github.com/lineaged/lineaged/lineage/event"
	"github.com/lineaged/lineaged/sink/internal/testevents"
)

// TestEncoderCoversEveryContractField encodes an event with every field set
// to a non-zero value, so that a field added to the contract but forgotten
// by the hand-written encoder is caught here rather than by a SIEM user.
// Every shape is checked against what it keeps (shaped).
func TestEncoderCoversEveryContractField(t *testing.T) {
	for _, sh := range shapes {
		t.Run(sh.name, func(t *testing.T) {
			for _, kind := range []string{event.KindProcessExec, event.KindPostureChange} {
				covers(t, sh.enc, testevents.Filled(kind, false))
			}
		})
	}
}

func covers(t *testing.T, enc Encoder, ev *event.Event) {
	t.Helper()
	out, err := enc.Append(nil, ev)
	if err != nil {
		t.Fatal(err)
	}
	var back event.Event
	if err := json.Unmarshal(out, &back); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, out)
	}
	want, _ := json.Marshal(shaped(t, ev, enc))
	got, _ := json.Marshal(&back)
	if !bytes.Equal(want, got) {
		var w, g map[string]any
		_ = json.Unmarshal(want, &w)
		_ = json.Unmarshal(got, &g)
		t.Fatalf("%s: the native encoder drops or changes contract fields:\n%s", ev.Kind, diffKeys("", w, g))
	}
}

// diffKeys lists the paths whose values differ between want and got.
func diffKeys(prefix string, want, got map[string]any) string {
	var out string
	for k, wv := range want {
		gv, ok := got[k]
		path := prefix + k
		if !ok {
			out += "missing: " + path + "\n"
			continue
		}
		wm, wok := wv.(map[string]any)
		gm, gok := gv.(map[string]any)
		if wok && gok {
			out += diffKeys(path+".", wm, gm)
			continue
		}
		if wa, ok := wv.([]any); ok {
			if ga, ok := gv.([]any); ok && len(wa) == len(ga) && len(wa) > 0 {
				if wm, ok := wa[0].(map[string]any); ok {
					if gm, ok := ga[0].(map[string]any); ok {
						out += diffKeys(path+"[0].", wm, gm)
						continue
					}
				}
			}
		}
		if !reflect.DeepEqual(wv, gv) {
			out += fmt.Sprintf("differs: %s: want %v got %v\n", path, wv, gv)
		}
	}
	return out
}
