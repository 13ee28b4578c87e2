package audit

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"strconv"

	"github.com/lineaged/lineaged/lineage/event"
)

// entry is one line of the stream under verification.
type entry struct {
	src      string
	line     int
	instance string
	seq      uint64
	prev     [sha256.Size]byte
	hash     [sha256.Size]byte // as claimed by the line
	intact   bool              // the claimed hash is the line's
	sig      []byte            // checkpoints only
	lost     *bridge
	eventID  string
	kind     string
	cp       *event.Checkpoint
	loss     *event.Loss
	covered  bool
	verified bool // a checkpoint whose signature was checked
}

// bridge is the lost member of a sensor.loss.
type bridge struct{ after, last [sha256.Size]byte }

// maxMember bounds the chain member's usual length: instance, seq, three
// hashes and a signature.
const maxMember = 1024

var errNoChain = errors.New("no chain member (not a chained lineaged line)")

// parseLine reads the chain member of one line (without its newline),
// checks its hash and, for sensor.* lines that the walk needs, decodes the
// body.
func parseLine(data []byte) (*entry, error) {
	// The member is the line's last and short: look for it in the tail
	// first (the whole line when it is not there, e.g. a long sig).
	from := max(0, len(data)-maxMember)
	i := bytes.LastIndex(data[from:], []byte(memberStart))
	if i >= 0 {
		i += from
	} else if i = bytes.LastIndex(data, []byte(memberStart)); i < 0 {
		return nil, errNoChain
	}
	e := &entry{}
	p := data[i+len(memberStart):]
	j := bytes.IndexByte(p, '"')
	if j <= 0 {
		return nil, errors.New("chain: bad instance")
	}
	e.instance = string(p[:j])
	p = p[j:]
	var ok bool
	if p, ok = cut(p, `","seq":`); !ok {
		return nil, errors.New("chain: no seq")
	}
	j = 0
	for j < len(p) && p[j] >= '0' && p[j] <= '9' {
		j++
	}
	seq, err := strconv.ParseUint(string(p[:j]), 10, 64)
	if err != nil {
		return nil, errors.New("chain: bad seq")
	}
	e.seq = seq
	p = p[j:]
	if p, ok = cut(p, `,"prev":"`); !ok {
		return nil, errors.New("chain: no prev")
	}
	if p, ok = hexHash(p, &e.prev); !ok {
		return nil, errors.New("chain: bad prev")
	}
	if q, ok := cut(p, `","lost":{"after":"`); ok {
		b := &bridge{}
		if q, ok = hexHash(q, &b.after); !ok {
			return nil, errors.New("chain: bad lost.after")
		}
		if q, ok = cut(q, `","last":"`); !ok {
			return nil, errors.New("chain: bad lost")
		}
		if q, ok = hexHash(q, &b.last); !ok {
			return nil, errors.New("chain: bad lost.last")
		}
		if p, ok = cut(q, `"}`); !ok {
			return nil, errors.New("chain: bad lost")
		}
		e.lost = b
	} else {
		p = p[1:] // the closing quote of prev
	}
	if q, ok := cut(p, padKey); ok {
		j = 0
		for j < len(q) && q[j] == ' ' {
			j++
		}
		if j == len(q) || q[j] != '"' {
			return nil, errors.New("chain: bad pad")
		}
		p = q[j+1:]
	}
	hashAt := len(data) - len(p) + len(hashKey)
	if p, ok = cut(p, hashKey); !ok {
		return nil, errors.New("chain: no hash")
	}
	if p, ok = hexHash(p, &e.hash); !ok {
		return nil, errors.New("chain: bad hash")
	}
	p = p[1:]
	if q, ok := cut(p, sigKey); ok {
		j = bytes.IndexByte(q, '"')
		if j <= 0 {
			return nil, errors.New("chain: bad sig")
		}
		if e.sig, err = base64.StdEncoding.AppendDecode(nil, q[:j]); err != nil {
			return nil, errors.New("chain: sig is not base64")
		}
		p = q[j+1:]
	}
	if string(p) != "}}" {
		return nil, errors.New("chain: the chain member is not the line's last")
	}
	h := sha256.New()
	h.Write(data[:hashAt])
	h.Write(zeros[:])
	h.Write([]byte(`"}}`))
	var sum [sha256.Size]byte
	h.Sum(sum[:0])
	e.intact = sum == e.hash
	if id := bytes.Index(data, []byte(`"event_id":"`)); id >= 0 {
		rest := data[id+len(`"event_id":"`):]
		if k := bytes.IndexByte(rest, '"'); k > 0 && k <= 64 {
			e.eventID = string(rest[:k])
		}
	}
	// The kind is near the start in both formats (native kind, OCSF
	// metadata.event_code): only loss reports and checkpoints are decoded.
	if e.intact && (e.sig != nil || e.lost != nil || bytes.Contains(data[:min(len(data), 1024)], []byte(`"sensor.loss"`))) {
		e.decodeBody(data)
	}
	return e, nil
}

var zeros = func() (z [hexLen]byte) {
	for i := range z {
		z[i] = '0'
	}
	return
}()

// body is what the walk reads of a sensor.* line, native or OCSF.
type body struct {
	Kind       string            `json:"kind"`
	Checkpoint *event.Checkpoint `json:"checkpoint"`
	Loss       *event.Loss       `json:"loss"`
	Unmapped   struct {
		Lineaged struct {
			Kind       string            `json:"kind"`
			Checkpoint *event.Checkpoint `json:"checkpoint"`
			Loss       *event.Loss       `json:"loss"`
		} `json:"lineaged"`
	} `json:"unmapped"`
}

func (e *entry) decodeBody(data []byte) {
	var b body
	if json.Unmarshal(data, &b) != nil {
		return
	}
	e.kind, e.cp, e.loss = b.Kind, b.Checkpoint, b.Loss
	if u := b.Unmapped.Lineaged; u.Kind != "" {
		e.kind, e.cp, e.loss = u.Kind, u.Checkpoint, u.Loss
	}
	if e.kind != event.KindSensorCheckpoint {
		e.cp = nil
	}
	if e.kind != event.KindSensorLoss {
		e.loss = nil
	}
}

func cut(p []byte, prefix string) ([]byte, bool) {
	if !bytes.HasPrefix(p, []byte(prefix)) {
		return p, false
	}
	return p[len(prefix):], true
}

// hexHash reads 64 hex digits into h; the rest starts at the closing quote.
func hexHash(p []byte, h *[sha256.Size]byte) ([]byte, bool) {
	if len(p) < hexLen+1 || p[hexLen] != '"' {
		return p, false
	}
	if _, err := hex.Decode(h[:], p[:hexLen]); err != nil {
		return p, false
	}
	return p[hexLen:], true
}
