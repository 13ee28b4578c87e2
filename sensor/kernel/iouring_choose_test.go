//go:build linux && (386 || amd64 || arm64)

package kernel

import "testing"

// The program follows the tracepoint's arguments: a raw tracepoint
// program reading an argument past the count is refused at attach, which
// on 6.1 (io_uring_submit_sqe(req, force_nonblock)) stopped the whole
// sensor from starting.
func TestIOURingChooseByArguments(t *testing.T) {
	for _, c := range []struct {
		name     string
		have     map[string]int
		tp, prog string
	}{
		{"6.4+", map[string]int{"io_uring_submit_req": 1}, "io_uring_submit_req", iouringProgIouringSubmitReq},
		{"6.0 to 6.3", map[string]int{"io_uring_submit_sqe": 2}, "io_uring_submit_sqe", iouringProgIouringSubmitReq},
		{"5.15 to 5.19", map[string]int{"io_uring_submit_sqe": 7}, "io_uring_submit_sqe", iouringProgIouringSubmitSqe},
		{"5.5 to 5.14", map[string]int{"io_uring_submit_sqe": 5}, "io_uring_submit_sqe", iouringProgIouringSubmitSqe},
		{"unknown layout", map[string]int{"io_uring_submit_sqe": 3}, "", ""},
		{"no io_uring", map[string]int{}, "", ""},
	} {
		tp, prog, why := iouringChoose(func(name string) (int, bool) {
			n, ok := c.have[name]
			return n, ok
		})
		if tp != c.tp || prog != c.prog || (tp == "") != (why != "") {
			t.Errorf("%s: %q %q %q, want %q %q", c.name, tp, prog, why, c.tp, c.prog)
		}
	}
	// This kernel's choice attaches.
	if tp, prog := iouringTracepoint(); tp == "" {
		t.Logf("no io_uring submission program here: %s", iouringWhyNot())
	} else {
		t.Logf("%s at %s", prog, tp)
	}
}
