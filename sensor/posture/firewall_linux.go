package posture

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// liveFirewall queries the kernel of the calling thread's network namespace.
type liveFirewall struct{}

// nftFamilies names nfproto values (linux/netfilter.h).
func nftFamily(p uint8) string {
	switch p {
	case unix.NFPROTO_INET:
		return "inet"
	case unix.NFPROTO_IPV4:
		return "ip"
	case unix.NFPROTO_ARP:
		return "arp"
	case unix.NFPROTO_NETDEV:
		return "netdev"
	case unix.NFPROTO_BRIDGE:
		return "bridge"
	case unix.NFPROTO_IPV6:
		return "ip6"
	}
	return fmt.Sprintf("family-%d", p)
}

// NFTChains dumps chains and rules over nfnetlink and counts rules per chain.
// A dump the kernel marks as interrupted (the rule set changed meanwhile) is
// retried a few times.
func (liveFirewall) NFTChains(ctx context.Context) ([]nftChain, error) {
	var err error
	for range 3 {
		var chains []nftChain
		chains, err = nftChainsOnce(ctx)
		if !errors.Is(err, errDumpInterrupted) {
			return chains, err
		}
	}
	return nil, err
}

// nftChainsOnce makes one attempt: dump the chains, then dump the rules
// and count each into the chain it belongs to.
func nftChainsOnce(ctx context.Context) ([]nftChain, error) {
	s, err := openNetfilter(ctx)
	if err != nil {
		return nil, err
	}
	defer unix.Close(s)

	var chains []nftChain
	buf := make([]byte, 1<<16)
	err = nftDump(s, buf, 1, unix.NFT_MSG_GETCHAIN, func(fam uint8, attrs []byte) error {
		c, err := parseNFTChain(fam, attrs)
		if err != nil {
			return err
		}
		chains = append(chains, c)
		return nil
	})
	if err != nil {
		return nil, err
	}
	index := make(map[nftChainKey]int, len(chains))
	for i, c := range chains {
		index[nftChainKey{c.Family, c.Table, c.Name}] = i
	}
	err = nftDump(s, buf, 2, unix.NFT_MSG_GETRULE, func(fam uint8, attrs []byte) error {
		k, err := parseNFTRule(fam, attrs)
		if err != nil {
			return err
		}
		// A rule whose chain appeared after the chain dump is simply not
		// attributed; the next sample sees both.
		if i, found := index[k]; found {
			chains[i].Rules++
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return chains, nil
}

// nftChainKey names a chain: chain names are unique within a table, table
// names within a family.
type nftChainKey struct{ family, table, chain string }

// parseNFTChain decodes the attributes of one NFT_MSG_NEWCHAIN message of
// a chain dump.
func parseNFTChain(fam uint8, attrs []byte) (nftChain, error) {
	c := nftChain{Family: nftFamily(fam)}
	err := forAttrs(attrs, func(typ uint16, v []byte) error {
		switch typ {
		case unix.NFTA_CHAIN_TABLE:
			c.Table = cString(v)
		case unix.NFTA_CHAIN_NAME:
			c.Name = cString(v)
		case unix.NFTA_CHAIN_TYPE:
			c.Type = cString(v)
		case unix.NFTA_CHAIN_POLICY:
			if len(v) != 4 {
				return errors.New("malformed chain policy")
			}
			c.Policy = "accept"
			if binary.BigEndian.Uint32(v) == 0 { // NF_DROP
				c.Policy = "drop"
			}
		case unix.NFTA_CHAIN_HOOK:
			c.Base = true
			return forAttrs(v, func(t uint16, hv []byte) error {
				if t == unix.NFTA_HOOK_HOOKNUM {
					if len(hv) != 4 {
						return errors.New("malformed hook number")
					}
					c.Hook = binary.BigEndian.Uint32(hv)
				}
				return nil
			})
		}
		return nil
	})
	return c, err
}

// parseNFTRule decodes, from the attributes of one NFT_MSG_NEWRULE message
// of a rule dump, the chain the rule belongs to.
func parseNFTRule(fam uint8, attrs []byte) (nftChainKey, error) {
	k := nftChainKey{family: nftFamily(fam)}
	err := forAttrs(attrs, func(typ uint16, v []byte) error {
		switch typ {
		case unix.NFTA_RULE_TABLE:
			k.table = cString(v)
		case unix.NFTA_RULE_CHAIN:
			k.chain = cString(v)
		}
		return nil
	})
	return k, err
}

// openNetfilter opens an nfnetlink socket whose receive timeout follows ctx,
// so a kernel that never answers cannot stall sampling.
func openNetfilter(ctx context.Context) (int, error) {
	s, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_NETFILTER)
	if err != nil {
		return -1, fmt.Errorf("netlink socket: %w", err)
	}
	timeout := 5 * time.Second
	if d, set := ctx.Deadline(); set {
		timeout = max(time.Until(d), time.Millisecond)
	}
	tv := unix.NsecToTimeval(timeout.Nanoseconds())
	if err := unix.SetsockoptTimeval(s, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		unix.Close(s)
		return -1, fmt.Errorf("netlink timeout: %w", err)
	}
	if err := unix.Bind(s, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		unix.Close(s)
		return -1, fmt.Errorf("netlink bind: %w", err)
	}
	return s, nil
}

// nftDump sends one nftables GET dump request for all families and calls fn
// with each reply's family and attributes. buf receives the datagrams: the
// kernel fills each dump datagram up to the reader's buffer size, at most
// 32 KiB, so 64 KiB never truncates.
func nftDump(s int, buf []byte, seq uint32, msg uint16, fn func(fam uint8, attrs []byte) error) error {
	req := make([]byte, unix.SizeofNlMsghdr+sizeofNfgenmsg)
	binary.NativeEndian.PutUint32(req[0:], uint32(len(req)))
	binary.NativeEndian.PutUint16(req[4:], unix.NFNL_SUBSYS_NFTABLES<<8|msg)
	binary.NativeEndian.PutUint16(req[6:], unix.NLM_F_REQUEST|unix.NLM_F_DUMP)
	binary.NativeEndian.PutUint32(req[8:], seq)
	req[16] = unix.NFPROTO_UNSPEC
	req[17] = unix.NFNETLINK_V0
	if err := unix.Sendto(s, req, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return fmt.Errorf("netlink send: %w", err)
	}
	interrupted := false
	for {
		n, _, rflags, _, err := unix.Recvmsg(s, buf, nil, 0)
		if err != nil {
			if errors.Is(err, unix.EAGAIN) {
				return errors.New("netlink: no reply before timeout")
			}
			return fmt.Errorf("netlink recv: %w", err)
		}
		if rflags&unix.MSG_TRUNC != 0 {
			return fmt.Errorf("netlink: reply larger than %d bytes", len(buf))
		}
		msgs, err := parseNetlink(buf[:n])
		if err != nil {
			return err
		}
		for _, m := range msgs {
			if m.Header.Seq != seq {
				continue
			}
			if m.Header.Flags&unix.NLM_F_DUMP_INTR != 0 {
				interrupted = true
			}
			switch m.Header.Type {
			case unix.NLMSG_DONE:
				if interrupted {
					return errDumpInterrupted
				}
				return nil
			case unix.NLMSG_ERROR:
				if len(m.Data) < 4 {
					return errors.New("netlink: short error message")
				}
				if errno := int32(binary.NativeEndian.Uint32(m.Data)); errno != 0 {
					return unix.Errno(-errno)
				}
				continue
			}
			if len(m.Data) < sizeofNfgenmsg {
				return errors.New("netlink: short nftables message")
			}
			if err := fn(m.Data[0], m.Data[sizeofNfgenmsg:]); err != nil {
				return err
			}
		}
	}
}

// struct nfgenmsg and the nlattr type mask (linux/netlink.h).
const (
	sizeofNfgenmsg = 4
	nlaTypeMask    = 0x3fff
)

type nlMsg struct {
	Header unix.NlMsghdr
	Data   []byte
}

// parseNetlink splits a datagram into netlink messages (4-byte aligned).
func parseNetlink(b []byte) ([]nlMsg, error) {
	var out []nlMsg
	for len(b) >= unix.SizeofNlMsghdr {
		var h unix.NlMsghdr
		h.Len = binary.NativeEndian.Uint32(b)
		h.Type = binary.NativeEndian.Uint16(b[4:])
		h.Flags = binary.NativeEndian.Uint16(b[6:])
		h.Seq = binary.NativeEndian.Uint32(b[8:])
		h.Pid = binary.NativeEndian.Uint32(b[12:])
		if int(h.Len) < unix.SizeofNlMsghdr || int(h.Len) > len(b) {
			return nil, fmt.Errorf("malformed netlink message (len %d of %d)", h.Len, len(b))
		}
		out = append(out, nlMsg{Header: h, Data: b[unix.SizeofNlMsghdr:h.Len]})
		l := min(int(h.Len+3)&^3, len(b))
		b = b[l:]
	}
	return out, nil
}

// forAttrs walks netlink attributes (struct nlattr, 4-byte aligned).
func forAttrs(b []byte, fn func(typ uint16, v []byte) error) error {
	for len(b) >= 4 {
		l := int(binary.NativeEndian.Uint16(b))
		typ := binary.NativeEndian.Uint16(b[2:]) & nlaTypeMask
		if l < 4 || l > len(b) {
			return fmt.Errorf("malformed netlink attribute (len %d of %d)", l, len(b))
		}
		if err := fn(typ, b[4:l]); err != nil {
			return err
		}
		l = (l + 3) &^ 3
		if l > len(b) {
			l = len(b)
		}
		b = b[l:]
	}
	return nil
}

func cString(b []byte) string {
	if i := strings.IndexByte(string(b), 0); i >= 0 {
		b = b[:i]
	}
	return string(b)
}

// Legacy xtables socket options (linux/netfilter_ipv4/ip_tables.h; the
// ip6tables values are the same numbers at level SOL_IPV6).
const (
	iptSoGetInfo    = 64
	iptSoGetEntries = 65
	xtTableMaxName  = 32
	nfNumHooks      = 5
)

// iptGetinfo is struct ipt_getinfo (identical to ip6t_getinfo).
type iptGetinfo struct {
	Name       [xtTableMaxName]byte
	ValidHooks uint32
	HookEntry  [nfNumHooks]uint32
	Underflow  [nfNumHooks]uint32
	NumEntries uint32
	Size       uint32
}

// LegacyFilter reads the legacy filter table. The table is only queried when
// /proc lists it as loaded: asking the kernel about an absent table makes it
// instantiate one (with packet hooks) in this network namespace.
func (liveFirewall) LegacyFilter(family string) (legacyFilter, bool, error) {
	names, level, af, entryTargetOff := "/proc/thread-self/net/ip_tables_names", unix.SOL_IP, unix.AF_INET, 88
	if family == "ip6" {
		names, level, af, entryTargetOff = "/proc/thread-self/net/ip6_tables_names", unix.SOL_IPV6, unix.AF_INET6, 140
	}
	b, err := os.ReadFile(names)
	if errors.Is(err, os.ErrNotExist) {
		return legacyFilter{}, false, nil // legacy xtables not built into this kernel
	}
	if err != nil {
		return legacyFilter{}, false, err
	}
	loaded := false
	for _, n := range strings.Fields(string(b)) {
		loaded = loaded || n == "filter"
	}
	if !loaded {
		return legacyFilter{}, false, nil
	}
	s, err := unix.Socket(af, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_RAW)
	if err != nil {
		return legacyFilter{}, false, fmt.Errorf("raw socket: %w", err)
	}
	defer unix.Close(s)
	var info iptGetinfo
	copy(info.Name[:], "filter")
	if err := getsockopt(s, level, iptSoGetInfo, unsafe.Pointer(&info), unsafe.Sizeof(info)); err != nil {
		return legacyFilter{}, false, fmt.Errorf("get filter table info: %w", err)
	}
	if info.ValidHooks&(1<<nfInetLocalIn) == 0 {
		return legacyFilter{}, false, errors.New("filter table has no INPUT chain")
	}
	// The first rule of INPUT is at its hook entry and the policy at its
	// underflow: they coincide exactly when INPUT holds no rule.
	t := legacyFilter{InputRules: info.HookEntry[nfInetLocalIn] != info.Underflow[nfInetLocalIn]}

	// struct ipt_get_entries: name, size, then 8-byte aligned entries.
	const hdr = 40
	buf := make([]byte, hdr+int(info.Size))
	copy(buf, "filter")
	binary.NativeEndian.PutUint32(buf[xtTableMaxName:], info.Size)
	if err := getsockopt(s, level, iptSoGetEntries, unsafe.Pointer(&buf[0]), uintptr(len(buf))); err != nil {
		return legacyFilter{}, false, fmt.Errorf("get filter table entries: %w", err)
	}
	entries := buf[hdr:]
	// The policy is a standard target (struct xt_entry_target, 32 bytes)
	// followed by its verdict: -NF_DROP-1 or -NF_ACCEPT-1.
	at := int(info.Underflow[nfInetLocalIn])
	if at+entryTargetOff+2 > len(entries) {
		return legacyFilter{}, false, errors.New("filter table: INPUT policy outside table")
	}
	tgt := at + int(binary.NativeEndian.Uint16(entries[at+entryTargetOff:]))
	if tgt+36 > len(entries) {
		return legacyFilter{}, false, errors.New("filter table: INPUT policy target outside table")
	}
	switch v := int32(binary.NativeEndian.Uint32(entries[tgt+32:])); v {
	case -1:
		t.Policy = "DROP"
	case -2:
		t.Policy = "ACCEPT"
	default:
		t.Policy = fmt.Sprintf("verdict %d", v)
	}
	return t, true, nil
}

func getsockopt(s, level, opt int, p unsafe.Pointer, size uintptr) error {
	l := uint32(size)
	_, _, e := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(s), uintptr(level), uintptr(opt), uintptr(p), uintptr(unsafe.Pointer(&l)), 0)
	if e != 0 {
		return e
	}
	return nil
}
