//go:build linux

package kernel

import (
	"sync"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/features"
)

// The objects that walk paths are built twice (gen.go): with bounded loops
// every kernel runs, and with the path walk's rounds and the exec
// program's agent-rule passes as bpf_loop callbacks (5.17+), which the
// verifier checks once instead of once per round: handle_exec verifies in
// a fifth of the instructions, which leaves the rest of the complexity
// budget to the code around the loops.

// walkerOverride, when set (tests), forces one build: "loop" or "bounded".
var walkerOverride string

var haveLoop = sync.OnceValue(func() bool {
	return features.HaveProgramHelper(ebpf.RawTracepoint, asm.FnLoop) == nil
})

// loopWalker says whether the loader takes the bpf_loop builds.
func loopWalker() bool {
	switch walkerOverride {
	case "loop":
		return true
	case "bounded":
		return false
	}
	return haveLoop()
}

// WalkerName names the path walk the objects use on this kernel, for the
// doctor and the start log.
func WalkerName() string {
	if loopWalker() {
		return "bpf_loop: the verifier checks one round of the path walk and of the agent rules"
	}
	return "bounded loops: no bpf_loop on this kernel (5.17+), the verifier follows every round of the path walk and of the agent rules"
}

// pickWalker loads the spec of the build this kernel takes.
func pickWalker(bounded, loop func() (*ebpf.CollectionSpec, error)) (*ebpf.CollectionSpec, error) {
	if loopWalker() {
		return loop()
	}
	return bounded()
}

// processBytes is the process object build this kernel takes (the pinned
// objects' version hashes it).
func processBytes() []byte {
	if loopWalker() {
		return _ProcessLoopBytes
	}
	return _ProcessBytes
}
