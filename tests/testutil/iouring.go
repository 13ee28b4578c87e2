//go:build linux && amd64

package testutil

import (
	"errors"
	"fmt"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// A minimal io_uring made with raw system calls, the way an attacker who
// avoids the traced syscalls would: one request at a time, optionally
// with a kernel submission thread (SQPOLL).

const (
	ioURingSetupSQPoll    = 1 << 1 // IORING_SETUP_SQPOLL
	ioURingFeatSingleMmap = 1 << 0 // IORING_FEAT_SINGLE_MMAP
	ioURingEnterGetEvents = 1 << 0 // IORING_ENTER_GETEVENTS
	ioURingEnterSQWakeup  = 1 << 1 // IORING_ENTER_SQ_WAKEUP
	ioURingOffSQEs        = 0x10000000
	// IORING_OP_* used by the tests.
	IOURingOpNop      = 0
	IOURingOpConnect  = 16
	IOURingOpOpenat   = 18
	IOURingOpUnlinkat = 36
	// IOURingEntries is the submission queue size NewIOURing asks for.
	IOURingEntries      = 8
	ioURingSQNeedWakeup = 1 << 0
)

// ioURingParams is struct io_uring_params.
type ioURingParams struct {
	SQEntries, CQEntries, Flags, SQThreadCPU, SQThreadIdle, Features, WQFd uint32
	Resv                                                                   [3]uint32
	SQOff                                                                  struct {
		Head, Tail, RingMask, RingEntries, Flags, Dropped, Array, Resv1 uint32
		UserAddr                                                        uint64
	}
	CQOff struct {
		Head, Tail, RingMask, RingEntries, Overflow, CQEs, Flags, Resv1 uint32
		UserAddr                                                        uint64
	}
}

// IOURingSQE is struct io_uring_sqe.
type IOURingSQE struct {
	Opcode      uint8
	Flags       uint8
	Ioprio      uint16
	FD          int32
	Off         uint64
	Addr        uint64
	Len         uint32
	OpFlags     uint32
	UserData    uint64
	BufIndex    uint16
	Personality uint16
	FileIndex   int32
	Addr3       uint64
	Pad         uint64
}

// IOURing is a minimal io_uring: one request at a time.
type IOURing struct {
	fd     int
	sqpoll bool
	ring   []byte
	sqes   []byte
	p      ioURingParams
}

// NewIOURing sets up a ring and maps it; with sqpoll, a kernel thread
// submits its requests.
func NewIOURing(sqpoll bool) (*IOURing, error) {
	r := &IOURing{sqpoll: sqpoll}
	if sqpoll {
		r.p.Flags = ioURingSetupSQPoll
		r.p.SQThreadIdle = 2000
	}
	fd, _, errno := unix.Syscall(unix.SYS_IO_URING_SETUP, IOURingEntries, uintptr(unsafe.Pointer(&r.p)), 0)
	if errno != 0 {
		return nil, fmt.Errorf("io_uring_setup: %w", errno)
	}
	r.fd = int(fd)
	if r.p.Features&ioURingFeatSingleMmap == 0 {
		unix.Close(r.fd)
		return nil, errors.New("no IORING_FEAT_SINGLE_MMAP")
	}
	size := max(r.p.SQOff.Array+r.p.SQEntries*4, r.p.CQOff.CQEs+r.p.CQEntries*16)
	var err error
	r.ring, err = unix.Mmap(r.fd, 0, int(size), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE)
	if err != nil {
		unix.Close(r.fd)
		return nil, fmt.Errorf("mmap ring: %w", err)
	}
	r.sqes, err = unix.Mmap(r.fd, ioURingOffSQEs, int(r.p.SQEntries)*64, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE)
	if err != nil {
		unix.Close(r.fd)
		return nil, fmt.Errorf("mmap sqes: %w", err)
	}
	return r, nil
}

func (r *IOURing) u32(off uint32) *uint32 { return (*uint32)(unsafe.Pointer(&r.ring[off])) }

// Do submits one request and returns its completion's result.
func (r *IOURing) Do(sqe IOURingSQE) (int32, error) {
	tail := atomic.LoadUint32(r.u32(r.p.SQOff.Tail))
	idx := tail & *r.u32(r.p.SQOff.RingMask)
	*(*IOURingSQE)(unsafe.Pointer(&r.sqes[idx*64])) = sqe
	*r.u32(r.p.SQOff.Array + 4*idx) = idx
	atomic.StoreUint32(r.u32(r.p.SQOff.Tail), tail+1)
	toSubmit, flags := uintptr(1), uintptr(ioURingEnterGetEvents)
	if r.sqpoll {
		// The ring's kernel thread submits; this call only waits (and
		// wakes the thread when it sleeps).
		toSubmit = 0
		if atomic.LoadUint32(r.u32(r.p.SQOff.Flags))&ioURingSQNeedWakeup != 0 {
			flags |= ioURingEnterSQWakeup
		}
	}
	for {
		head := atomic.LoadUint32(r.u32(r.p.CQOff.Head))
		if head != atomic.LoadUint32(r.u32(r.p.CQOff.Tail)) {
			cqe := r.p.CQOff.CQEs + 16*(head&*r.u32(r.p.CQOff.RingMask))
			res := int32(*r.u32(cqe + 8))
			atomic.StoreUint32(r.u32(r.p.CQOff.Head), head+1)
			return res, nil
		}
		_, _, errno := unix.Syscall6(unix.SYS_IO_URING_ENTER, uintptr(r.fd), toSubmit, 1, flags, 0, 0)
		if errno != 0 && errno != unix.EINTR {
			return 0, fmt.Errorf("io_uring_enter: %w", errno)
		}
		toSubmit = 0
		if r.sqpoll && atomic.LoadUint32(r.u32(r.p.SQOff.Flags))&ioURingSQNeedWakeup != 0 {
			flags |= ioURingEnterSQWakeup
		}
	}
}

// Close unmaps and closes the ring.
func (r *IOURing) Close() {
	unix.Munmap(r.sqes)
	unix.Munmap(r.ring)
	unix.Close(r.fd)
}
