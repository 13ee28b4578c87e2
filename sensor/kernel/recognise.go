package kernel

import (
	"encoding/binary"

	"github.com/lineaged/lineaged/sensor"
)

// kernelRecognisers encodes a validated table for the BPF map: masked
// little-endian words, so the program compares without a byte loop.
func kernelRecognisers(table []sensor.Recogniser) ([]processRecogniser, error) {
	if err := sensor.ValidateRecognisers(table); err != nil {
		return nil, err
	}
	out := make([]processRecogniser, len(table))
	for i, r := range table {
		k := &out[i]
		k.Agent = uint8(r.Agent)
		for j, m := range r.Exe {
			km := &k.M[j]
			km.Op = uint8(m.Op)
			km.Level = uint8(m.Level)
			km.Len = uint8(len(m.Text))
			var text, mask [sensor.MaxMatchText]byte
			copy(text[:], m.Text)
			for b := range len(m.Text) {
				mask[b] = 0xff
			}
			for w := range len(km.Text) {
				km.Text[w] = binary.LittleEndian.Uint64(text[w*8:])
				km.Mask[w] = binary.LittleEndian.Uint64(mask[w*8:])
			}
		}
		k.DenyN = uint8(len(r.NotArgv0))
		for d, a := range r.NotArgv0 {
			var text [sensor.MaxMatchText]byte
			copy(text[:], a)
			for w := range len(k.DenyArgv0[d]) {
				k.DenyArgv0[d][w] = binary.LittleEndian.Uint64(text[w*8:])
			}
		}
		if r.Script != "" {
			// Right-aligned, as the kernel places the argument's tail.
			var text, mask [sensor.MaxScriptSuffix]byte
			off := sensor.MaxScriptSuffix - len(r.Script)
			copy(text[off:], r.Script)
			for b := off; b < sensor.MaxScriptSuffix; b++ {
				mask[b] = 0xff
			}
			k.ScriptLen = uint8(len(r.Script))
			for w := range len(k.ScriptText) {
				k.ScriptText[w] = binary.LittleEndian.Uint64(text[w*8:])
				k.ScriptMask[w] = binary.LittleEndian.Uint64(mask[w*8:])
			}
		}
	}
	return out, nil
}
