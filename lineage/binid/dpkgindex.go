package binid

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"math"
	"slices"
	"sort"
)

// fileIndex is a loaded package database: the record of one path, exactly
// as listed (aliases are the caller's).
type fileIndex interface {
	find(path string) (PackageFile, bool)
}

// fileMap is a fileIndex in a map (the rpm database).
type fileMap map[string]PackageFile

func (m fileMap) find(path string) (PackageFile, bool) {
	f, ok := m[path]
	return f, ok
}

// dpkgBlock is how many paths share a block of the front-coded list: a
// lookup decodes at most this many after its binary search.
const dpkgBlock = 16

// dpkgIndex is the dpkg database packed for its size (37 bytes a file on
// a Debian host, against 230 in a map of strings): the paths sorted and
// front-coded in blocks of dpkgBlock, each path after a block's first
// stored as the length it shares with the previous one and the rest; the
// digests 16 bytes each in one slice; the package names once each,
// referred to by number. Immutable once built, so lookups need no lock.
type dpkgIndex struct {
	paths  []byte   // per block: uvarint len, path; then per path: uvarint shared, uvarint len, suffix
	blocks []uint32 // offset in paths of each block
	n      int      // paths
	sums   []byte   // 16 bytes per path, in path order
	pkg16  []uint16 // package of each path, an index in pkgs (pkg32 when there are more than 65536)
	pkg32  []uint32
	pkgs   []string
}

// find implements fileIndex.
func (x *dpkgIndex) find(path string) (PackageFile, bool) {
	i, ok := x.search(path)
	if !ok {
		return PackageFile{}, false
	}
	var p uint32
	if x.pkg16 != nil {
		p = uint32(x.pkg16[i])
	} else {
		p = x.pkg32[i]
	}
	return PackageFile{Package: x.pkgs[p], Algo: "md5", Digest: x.sums[16*i : 16*i+16 : 16*i+16]}, true
}

// head is the first path of block b.
func (x *dpkgIndex) head(b int) []byte {
	p := x.paths[x.blocks[b]:]
	n, w := binary.Uvarint(p)
	return p[w : w+int(n)]
}

// search is the position of path in the sorted list.
func (x *dpkgIndex) search(q string) (int, bool) {
	// The last block whose first path is not after q.
	b := sort.Search(len(x.blocks), func(b int) bool { return string(x.head(b)) > q }) - 1
	if b < 0 {
		return 0, false
	}
	p := x.paths[x.blocks[b]:]
	n, w := binary.Uvarint(p)
	cur := p[w : w+int(n)]
	p = p[w+int(n):]
	// match is the length q shares with the path just decoded, which is
	// before q in the order: the paths are scanned without rebuilding
	// them. A path sharing less than that with the previous one is
	// after q (it differs from it where q still matched it); one
	// sharing more differs from q where the previous one did, so is
	// still before q.
	match := commonPrefix(q, cur)
	if match == len(q) && match == len(cur) {
		return b * dpkgBlock, true
	}
	for i := b*dpkgBlock + 1; i < min((b+1)*dpkgBlock, x.n); i++ {
		s, w1 := binary.Uvarint(p)
		l, w2 := binary.Uvarint(p[w1:])
		suf := p[w1+w2 : w1+w2+int(l)]
		p = p[w1+w2+int(l):]
		switch shared := int(s); {
		case shared < match:
			return 0, false
		case shared > match:
			continue
		}
		m := commonPrefix(q[match:], suf)
		switch {
		case m == len(suf) && match+m == len(q):
			return i, true
		case m == len(suf):
			// A proper prefix of q: still before it.
		case match+m == len(q) || suf[m] > q[match+m]:
			return 0, false
		}
		match += m
	}
	return 0, false
}

func commonPrefix(a string, b []byte) int {
	n := min(len(a), len(b))
	for i := range n {
		if a[i] != b[i] {
			return i
		}
	}
	return n
}

func commonPrefixBytes(a, b []byte) int {
	n := min(len(a), len(b))
	for i := range n {
		if a[i] != b[i] {
			return i
		}
	}
	return n
}

// dpkgIndexBuilder collects the records of a load, in the order read;
// build sorts them and packs the index. A path listed again (by the same
// package or a later one) replaces the earlier record, as a map's
// assignment would.
type dpkgIndexBuilder struct {
	all   []byte // the md5sums files read, the paths in place
	recs  []dpkgRec
	pkgID map[string]uint32
	pkgs  []string
}

// dpkgRec is one record: its path is all[off:end], its digest the 32 hex
// digits at all[line:]. line also orders the records as read.
type dpkgRec struct {
	line, off, end, pkg uint32
}

// newDpkgIndexBuilder builds from all, the files read, with room for
// maxRecs records.
func newDpkgIndexBuilder(all []byte, maxRecs int) (*dpkgIndexBuilder, error) {
	if len(all) > math.MaxUint32 {
		return nil, fmt.Errorf("dpkg database: %d bytes of md5sums files, over 4 GiB", len(all))
	}
	return &dpkgIndexBuilder{all: all, recs: make([]dpkgRec, 0, maxRecs), pkgID: map[string]uint32{}}, nil
}

// pkg is the number of package name.
func (b *dpkgIndexBuilder) pkg(name string) uint32 {
	if id, ok := b.pkgID[name]; ok {
		return id
	}
	id := uint32(len(b.pkgs))
	b.pkgID[name] = id
	b.pkgs = append(b.pkgs, name)
	return id
}

// add records the path all[off:end], whose digest is the hex at all[line:].
func (b *dpkgIndexBuilder) add(line, off, end int, pkg uint32) {
	b.recs = append(b.recs, dpkgRec{line: uint32(line), off: uint32(off), end: uint32(end), pkg: pkg})
}

func (b *dpkgIndexBuilder) path(r *dpkgRec) []byte { return b.all[r.off:r.end] }

// build packs what was added; every slice of the index is allocated at its
// final size.
func (b *dpkgIndexBuilder) build() *dpkgIndex {
	recs := b.recs
	slices.SortFunc(recs, func(x, y dpkgRec) int {
		if c := bytes.Compare(b.path(&x), b.path(&y)); c != 0 {
			return c
		}
		return cmp.Compare(x.line, y.line)
	})
	// The last record of each path wins.
	u := 0
	for i := range recs {
		if i+1 < len(recs) && bytes.Equal(b.path(&recs[i]), b.path(&recs[i+1])) {
			continue
		}
		recs[u] = recs[i]
		u++
	}
	recs = recs[:u]

	size := 0
	var prev []byte
	for i := range recs {
		p := b.path(&recs[i])
		if i%dpkgBlock == 0 {
			size += uvarintLen(len(p)) + len(p)
		} else {
			s := commonPrefixBytes(prev, p)
			size += uvarintLen(s) + uvarintLen(len(p)-s) + len(p) - s
		}
		prev = p
	}
	x := &dpkgIndex{
		paths:  make([]byte, 0, size),
		blocks: make([]uint32, 0, (len(recs)+dpkgBlock-1)/dpkgBlock),
		n:      len(recs),
		sums:   make([]byte, 16*len(recs)),
		pkgs:   slices.Clip(b.pkgs),
	}
	if len(b.pkgs) <= math.MaxUint16+1 {
		x.pkg16 = make([]uint16, len(recs))
	} else {
		x.pkg32 = make([]uint32, len(recs))
	}
	prev = nil
	for i := range recs {
		r := &recs[i]
		p := b.path(r)
		if i%dpkgBlock == 0 {
			x.blocks = append(x.blocks, uint32(len(x.paths)))
			x.paths = binary.AppendUvarint(x.paths, uint64(len(p)))
			x.paths = append(x.paths, p...)
		} else {
			s := commonPrefixBytes(prev, p)
			x.paths = binary.AppendUvarint(x.paths, uint64(s))
			x.paths = binary.AppendUvarint(x.paths, uint64(len(p)-s))
			x.paths = append(x.paths, p[s:]...)
		}
		prev = p
		// Checked when parsed.
		_, _ = hex.Decode(x.sums[16*i:16*i+16], b.all[r.line:r.line+32])
		if x.pkg16 != nil {
			x.pkg16[i] = uint16(r.pkg)
		} else {
			x.pkg32[i] = r.pkg
		}
	}
	return x
}

func uvarintLen(v int) int {
	n := 1
	for ; v >= 0x80; v >>= 7 {
		n++
	}
	return n
}
