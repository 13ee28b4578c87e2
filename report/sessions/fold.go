package sessions

import (
	"path"
	"time"
)

// minFold is the size from which similar file operations (the same
// operation in the same directory) are folded into one line.
const minFold = 3

// FileLine is one line of a process's file activity: one operation on
// one path (Count times), or a fold of Count operations of the same kind
// in Dir, whose Paths are the distinct paths in order.
type FileLine struct {
	Op      string    `json:"op"`
	Time    time.Time `json:"time"`
	Path    string    `json:"path,omitempty"`
	NewPath string    `json:"new_path,omitempty"`
	Dir     string    `json:"dir,omitempty"`
	Count   int       `json:"count"`
	Paths   []string  `json:"paths,omitempty"`
}

// Folded reports whether l folds several paths.
func (l FileLine) Folded() bool { return l.Dir != "" }

// Fold groups ops for reading: the same operation on the same path is one
// line with a count, and minFold or more operations of one kind in one
// directory are one line; lines keep the order of their first operation.
func Fold(ops []FileOp) []FileLine {
	type key struct{ op, dir string }
	groups := make(map[key][]int) // indexes into ops, per (op, dir)
	var order []key
	for i, o := range ops {
		k := key{o.Op, path.Dir(o.Path)}
		if o.NewPath != "" {
			k.dir = "\x00" + o.Path // renames and links are never folded
		}
		if _, ok := groups[k]; !ok {
			order = append(order, k)
		}
		groups[k] = append(groups[k], i)
	}
	var out []FileLine
	for _, k := range order {
		idx := groups[k]
		first := ops[idx[0]]
		var paths []string
		seen := make(map[string]int)
		for _, i := range idx {
			p := ops[i].Path
			if _, ok := seen[p]; !ok {
				seen[p] = len(paths)
				paths = append(paths, p)
			}
		}
		if len(paths) >= minFold && k.dir[0] != 0 {
			out = append(out, FileLine{Op: k.op, Time: first.Time, Dir: k.dir, Count: len(idx), Paths: paths})
			continue
		}
		// Few distinct paths: one line each, with its count.
		for _, p := range paths {
			n := 0
			var l FileLine
			for _, i := range idx {
				if ops[i].Path == p {
					if n == 0 {
						l = FileLine{Op: k.op, Time: ops[i].Time, Path: p, NewPath: ops[i].NewPath}
					}
					n++
				}
			}
			l.Count = n
			out = append(out, l)
		}
	}
	return out
}
