package testevents

import (
	"fmt"
	"reflect"
	"time"

	"github.com/lineaged/lineaged/lineage/event"
)

// Filled returns an event of kind with every field of the contract set to a
// distinct non-zero value: two ancestors, one posture check, one partial
// entry. With hostile, every string also ends in an invalid UTF-8 byte, so
// each one is marked in invalid_utf8. The golden-output tests encode it to
// catch any byte an encoder change moves.
func Filled(kind string, hostile bool) *event.Event {
	ev := &event.Event{}
	n := 0
	fill(reflect.ValueOf(ev).Elem(), &n, hostile)
	ev.Schema = event.Schema
	ev.Kind = kind
	ev.Ancestry = append(ev.Ancestry, ev.Ancestry[0])
	ev.Ancestry[1].ExecID += "-grandparent"
	return ev
}

func fill(v reflect.Value, n *int, hostile bool) {
	*n++
	switch v.Kind() {
	case reflect.Pointer:
		v.Set(reflect.New(v.Type().Elem()))
		fill(v.Elem(), n, hostile)
	case reflect.Struct:
		if v.Type() == reflect.TypeOf(time.Time{}) {
			v.Set(reflect.ValueOf(time.Date(2026, 1, 2, 3, 4, 5, 6000+*n, time.UTC)))
			return
		}
		for i := 0; i < v.NumField(); i++ {
			// json:"-" fields are hand-offs between stages, not contract.
			if f := v.Type().Field(i); f.IsExported() && f.Tag.Get("json") != "-" {
				fill(v.Field(i), n, hostile)
			}
		}
	case reflect.Slice:
		s := reflect.MakeSlice(v.Type(), 1, 1)
		fill(s.Index(0), n, hostile)
		v.Set(s)
	case reflect.Map:
		m := reflect.MakeMap(v.Type())
		k := reflect.New(v.Type().Key()).Elem()
		fill(k, n, hostile)
		e := reflect.New(v.Type().Elem()).Elem()
		fill(e, n, hostile)
		m.SetMapIndex(k, e)
		v.Set(m)
	case reflect.String:
		s := fmt.Sprintf("v%d", *n)
		if hostile {
			s += "\xff"
		}
		v.SetString(s)
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		v.SetInt(int64(*n))
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		v.SetUint(uint64(*n))
	}
}
