package jsonw

import "testing"

// BenchmarkAppendStringPlain is a plain ASCII argv element or path, the
// common case: nothing to escape.
func BenchmarkAppendStringPlain(b *testing.B) {
	s := "source /home/dev/.claude/shell-snapshots/snapshot-bash-1796268783863-q11yxa.sh 2>/dev/null || true && builtin shopt -u extglob 2>/dev/null || true && eval make -j4 test < /dev/null && pwd -P >| /tmp/claude-6c7-cwd"
	buf := make([]byte, 0, 512)
	b.SetBytes(int64(len(s)))
	for range b.N {
		buf, _ = AppendStringBody(buf[:0], s)
	}
}
