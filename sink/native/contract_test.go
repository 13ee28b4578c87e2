package native

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/lineaged/lineaged/lineage/event"
)

// fill sets every field reachable from v to a non-zero value, so that a
// field added to the contract but forgotten by the hand-written encoder is
// caught here rather than by a SIEM user.
func fill(v reflect.Value, n *int) {
	*n++
	switch v.Kind() {
	case reflect.Pointer:
		v.Set(reflect.New(v.Type().Elem()))
		fill(v.Elem(), n)
	case reflect.Struct:
		if v.Type() == reflect.TypeOf(time.Time{}) {
			v.Set(reflect.ValueOf(time.Date(2026, 1, 2, 3, 4, 5, 6000+*n, time.UTC)))
			return
		}
		for i := 0; i < v.NumField(); i++ {
			// json:"-" fields are hand-offs between stages, not contract.
			if f := v.Type().Field(i); f.IsExported() && f.Tag.Get("json") != "-" {
				fill(v.Field(i), n)
			}
		}
	case reflect.Slice:
		s := reflect.MakeSlice(v.Type(), 1, 1)
		fill(s.Index(0), n)
		v.Set(s)
	case reflect.Map:
		m := reflect.MakeMap(v.Type())
		k := reflect.New(v.Type().Key()).Elem()
		fill(k, n)
		e := reflect.New(v.Type().Elem()).Elem()
		fill(e, n)
		m.SetMapIndex(k, e)
		v.Set(m)
	case reflect.String:
		v.SetString(fmt.Sprintf("v%d", *n))
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		v.SetInt(int64(*n))
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		v.SetUint(uint64(*n))
	}
}

func TestEncoderCoversEveryContractField(t *testing.T) {
	var ev event.Event
	n := 0
	fill(reflect.ValueOf(&ev).Elem(), &n)
	ev.Schema = event.Schema
	ev.Kind = event.KindProcessExec

	out, err := Encoder{}.Append(nil, &ev)
	if err != nil {
		t.Fatal(err)
	}
	var back event.Event
	if err := json.Unmarshal(out, &back); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, out)
	}
	want, _ := json.Marshal(&ev)
	got, _ := json.Marshal(&back)
	if !bytes.Equal(want, got) {
		var w, g map[string]any
		_ = json.Unmarshal(want, &w)
		_ = json.Unmarshal(got, &g)
		t.Fatalf("the native encoder drops or changes contract fields:\n%s", diffKeys("", w, g))
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
