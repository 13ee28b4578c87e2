package posture

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"unsafe"

	"github.com/lineaged/lineaged/tests/testutil"
	"golang.org/x/sys/unix"
)

type fakeFirewall struct {
	chains   []nftChain
	nftErr   error
	legacy   map[string]legacyFilter
	legacyEr error
}

func (f fakeFirewall) NFTChains(context.Context) ([]nftChain, error) { return f.chains, f.nftErr }

func (f fakeFirewall) LegacyFilter(family string) (legacyFilter, bool, error) {
	t, found := f.legacy[family]
	return t, found, f.legacyEr
}

func TestFirewallDecision(t *testing.T) {
	input := func(fam string, rules int, policy string) nftChain {
		return nftChain{Family: fam, Table: "filter", Name: "input", Base: true, Hook: nfInetLocalIn, Type: "filter", Policy: policy, Rules: rules}
	}
	for _, tc := range []struct {
		name   string
		k      fakeFirewall
		ok     bool
		detail string
	}{
		{"nothing", fakeFirewall{}, false, "no inbound filtering: nftables: 0 chains, 0 rules"},
		{"input rules", fakeFirewall{chains: []nftChain{input("inet", 4, "accept")}}, true, "nft inet filter input: 4 rules, policy accept"},
		{"input drop policy", fakeFirewall{chains: []nftChain{input("ip", 0, "drop")}}, true, "policy drop"},
		{"empty accepting input", fakeFirewall{chains: []nftChain{input("ip6", 0, "accept")}}, false, "no inbound filtering: nft ip6 filter input: 0 rules, policy accept"},
		{"docker-like: nat and forward only", fakeFirewall{chains: []nftChain{
			{Family: "ip", Table: "nat", Name: "PREROUTING", Base: true, Hook: 0, Type: "nat", Policy: "accept", Rules: 2},
			{Family: "ip", Table: "filter", Name: "FORWARD", Base: true, Hook: 2, Type: "filter", Policy: "drop", Rules: 9},
			{Family: "ip", Table: "filter", Name: "DOCKER", Rules: 3},
		}}, false, "nftables: 3 chains, 14 rules, no inbound filter chain"},
		{"netdev ingress", fakeFirewall{chains: []nftChain{{Family: "netdev", Table: "t", Name: "in", Base: true, Hook: nfNetdevIngress, Type: "filter", Policy: "accept", Rules: 1}}}, true, "nft netdev t in"},
		{"inet ingress", fakeFirewall{chains: []nftChain{{Family: "inet", Table: "t", Name: "in", Base: true, Hook: nfInetIngress, Type: "filter", Policy: "drop"}}}, true, "nft inet t in"},
		{"ip ingress hook number is not input", fakeFirewall{chains: []nftChain{{Family: "ip", Table: "t", Name: "pre", Base: true, Hook: 0, Type: "filter", Policy: "drop"}}}, false, "no inbound filter chain"},
		{"legacy rules", fakeFirewall{legacy: map[string]legacyFilter{"ip": {InputRules: true, Policy: "ACCEPT"}}}, true, "iptables filter INPUT: rules true, policy ACCEPT"},
		{"legacy drop", fakeFirewall{legacy: map[string]legacyFilter{"ip6": {Policy: "DROP"}}}, true, "ip6tables filter INPUT: rules false, policy DROP"},
		{"legacy empty", fakeFirewall{legacy: map[string]legacyFilter{"ip": {Policy: "ACCEPT"}}}, false, "iptables filter INPUT: no rules, policy ACCEPT"},
		{"nft error, nothing else", fakeFirewall{nftErr: unix.EPERM}, false, "cannot determine: nftables: operation not permitted"},
		{"nft error but legacy filters", fakeFirewall{nftErr: unix.EPERM, legacy: map[string]legacyFilter{"ip": {Policy: "DROP"}}}, true, "iptables filter INPUT"},
		{"legacy error", fakeFirewall{legacyEr: errors.New("boom")}, false, "cannot determine: iptables: boom; ip6tables: boom"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := Firewall{kernel: tc.k}.Run(t.Context(), Root("/"))
			assertCheck(t, r, tc.ok, tc.detail)
		})
	}
}

func TestFirewallNotLiveRoot(t *testing.T) {
	r := Firewall{}.Run(t.Context(), Root(t.TempDir()))
	assertCheck(t, r, false, "cannot determine: rule sets are read from the live kernel")
}

// inNetns runs fn on a thread moved into a fresh network namespace, so the
// test can build rule sets without touching the host's. The thread is never
// unlocked: Go discards it when the goroutine ends.
func inNetns(t *testing.T, fn func() error) {
	t.Helper()
	testutil.RequireRoot(t, "(CAP_SYS_ADMIN) for a network namespace")
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("unshare: %w", err)
			return
		}
		errc <- fn()
	}()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
}

// expect runs the live firewall check (on the calling, namespaced thread).
func expect(ok bool, detail string) error {
	r := Firewall{}.Run(context.Background(), Root("/"))
	if r.OK != ok || !strings.Contains(r.Detail, detail) {
		return fmt.Errorf("got ok=%t detail=%q; want ok=%t detail containing %q", r.OK, r.Detail, ok, detail)
	}
	return nil
}

func contains(s, sub string) bool {
	return len(sub) == 0 || (len(s) >= len(sub) && indexOf(s, sub) >= 0)
}

func indexOf(s, sub string) int {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return i
		}
	}
	return -1
}

func TestFirewallNFTablesLive(t *testing.T) {
	inNetns(t, func() error {
		if err := expect(false, "no inbound filtering: nftables: 0 chains, 0 rules"); err != nil {
			return fmt.Errorf("empty namespace: %w", err)
		}
		b := &nftBatch{}
		b.table(unix.NFPROTO_IPV4, "t1")
		b.chain(unix.NFPROTO_IPV4, "t1", "out", 3 /* NF_INET_LOCAL_OUT */, "accept")
		b.rule(unix.NFPROTO_IPV4, "t1", "out")
		b.chain(unix.NFPROTO_IPV4, "t1", "helper", -1, "")
		b.rule(unix.NFPROTO_IPV4, "t1", "helper")
		if err := b.commit(); err != nil {
			return err
		}
		if err := expect(false, "nftables: 2 chains, 2 rules, no inbound filter chain"); err != nil {
			return fmt.Errorf("output-only: %w", err)
		}
		b = &nftBatch{}
		b.chain(unix.NFPROTO_IPV4, "t1", "in", nfInetLocalIn, "accept")
		if err := b.commit(); err != nil {
			return err
		}
		if err := expect(false, "nft ip t1 in: 0 rules, policy accept"); err != nil {
			return fmt.Errorf("empty input chain: %w", err)
		}
		b = &nftBatch{}
		b.rule(unix.NFPROTO_IPV4, "t1", "in")
		b.rule(unix.NFPROTO_IPV4, "t1", "in")
		if err := b.commit(); err != nil {
			return err
		}
		if err := expect(true, "nft ip t1 in: 2 rules, policy accept"); err != nil {
			return fmt.Errorf("input rules: %w", err)
		}
		return nil
	})
	inNetns(t, func() error {
		b := &nftBatch{}
		b.table(unix.NFPROTO_INET, "t2")
		b.chain(unix.NFPROTO_INET, "t2", "in", nfInetLocalIn, "drop")
		if err := b.commit(); err != nil {
			return err
		}
		return expect(true, "nft inet t2 in: 0 rules, policy drop")
	})
}

// xtFamily describes the legacy table ABI of one address family: struct
// ipt_entry is 112 bytes with target_offset at 88, struct ip6t_entry 168
// with target_offset at 140.
type xtFamily struct {
	name             string
	af, level        int
	entrySize, tgOff int
}

func TestFirewallLegacyLive(t *testing.T) {
	for _, fam := range []xtFamily{
		{"iptables", unix.AF_INET, unix.SOL_IP, 112, 88},
		{"ip6tables", unix.AF_INET6, unix.SOL_IPV6, 168, 140},
	} {
		t.Run(fam.name, func(t *testing.T) {
			inNetns(t, func() error {
				if err := expect(false, "nftables: 0 chains"); err != nil {
					return err
				}
				// Instantiate the legacy filter table in this namespace, as
				// iptables-legacy would, then check the sensor reads it.
				s, err := unix.Socket(fam.af, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_RAW)
				if err != nil {
					return err
				}
				defer unix.Close(s)
				var info iptGetinfo
				copy(info.Name[:], "filter")
				if err := getsockopt(s, fam.level, iptSoGetInfo, unsafe.Pointer(&info), unsafe.Sizeof(info)); err != nil {
					return fmt.Errorf("instantiate filter: %w", err)
				}
				if err := expect(false, fam.name+" filter INPUT: no rules, policy ACCEPT"); err != nil {
					return fmt.Errorf("default table: %w", err)
				}
				if err := iptReplace(s, fam, info, -1 /* DROP */, false); err != nil {
					return err
				}
				if err := expect(true, fam.name+" filter INPUT: rules false, policy DROP"); err != nil {
					return fmt.Errorf("drop policy: %w", err)
				}
				if err := getsockopt(s, fam.level, iptSoGetInfo, unsafe.Pointer(&info), unsafe.Sizeof(info)); err != nil {
					return err
				}
				if err := iptReplace(s, fam, info, -2 /* ACCEPT */, true); err != nil {
					return err
				}
				return expect(true, fam.name+" filter INPUT: rules true, policy ACCEPT")
			})
		})
	}
}

// iptReplace rewrites the filter table: INPUT's policy verdict set to
// policy, and optionally one unconditional ACCEPT rule inserted at the head
// of INPUT (IPT_SO_SET_REPLACE, what iptables-legacy does).
func iptReplace(s int, fam xtFamily, info iptGetinfo, policy int32, addRule bool) error {
	const hdr = 40
	ne := binary.NativeEndian
	buf := make([]byte, hdr+int(info.Size))
	copy(buf, "filter")
	ne.PutUint32(buf[32:], info.Size)
	if err := getsockopt(s, fam.level, iptSoGetEntries, unsafe.Pointer(&buf[0]), uintptr(len(buf))); err != nil {
		return fmt.Errorf("get entries: %w", err)
	}
	entries := buf[hdr:]
	under := info.Underflow[nfInetLocalIn]
	tgt := int(under) + int(ne.Uint16(entries[int(under)+fam.tgOff:]))
	ne.PutUint32(entries[tgt+32:], uint32(policy))
	num, size := info.NumEntries, info.Size
	hooks, unders := info.HookEntry, info.Underflow
	if addRule {
		// An all-zero entry matches every packet; then a struct
		// xt_standard_target (32 + verdict, padded to 40).
		elen := fam.entrySize + 40
		rule := make([]byte, elen)
		ne.PutUint16(rule[fam.tgOff:], uint16(fam.entrySize)) // target_offset
		ne.PutUint16(rule[fam.tgOff+2:], uint16(elen))        // next_offset
		ne.PutUint16(rule[fam.entrySize:], 40)                // target_size
		ne.PutUint32(rule[fam.entrySize+32:], uint32(0xfffffffe))
		at := info.HookEntry[nfInetLocalIn]
		entries = append(entries[:at:at], append(rule, entries[at:]...)...)
		for h := range nfNumHooks {
			if info.ValidHooks&(1<<h) == 0 {
				continue
			}
			if hooks[h] > at {
				hooks[h] += uint32(elen)
			}
			if unders[h] >= at {
				unders[h] += uint32(elen)
			}
		}
		num++
		size += uint32(elen)
	}
	// struct ipt_replace (ip6t_replace is the same): name, valid_hooks,
	// num_entries, size, hook_entry[5], underflow[5], num_counters,
	// counters pointer, entries.
	rep := make([]byte, 96+len(entries))
	copy(rep, "filter")
	ne.PutUint32(rep[32:], info.ValidHooks)
	ne.PutUint32(rep[36:], num)
	ne.PutUint32(rep[40:], size)
	for h := range nfNumHooks {
		ne.PutUint32(rep[44+4*h:], hooks[h])
		ne.PutUint32(rep[64+4*h:], unders[h])
	}
	counters := make([]byte, 16*int(info.NumEntries))
	ne.PutUint32(rep[84:], info.NumEntries)
	ne.PutUint64(rep[88:], uint64(uintptr(unsafe.Pointer(&counters[0]))))
	copy(rep[96:], entries)
	_, _, e := unix.Syscall6(unix.SYS_SETSOCKOPT, uintptr(s), uintptr(fam.level), 64 /* IPT_SO_SET_REPLACE */, uintptr(unsafe.Pointer(&rep[0])), uintptr(len(rep)), 0)
	runtime.KeepAlive(counters)
	if e != 0 {
		return fmt.Errorf("set replace: %w", e)
	}
	return nil
}

// nftBatch builds an nftables transaction (linux/netfilter/nf_tables.h).
type nftBatch struct {
	msgs [][]byte
	acks int
}

func nlAttr(typ uint16, data []byte) []byte {
	b := make([]byte, 4, 4+len(data)+3)
	binary.NativeEndian.PutUint16(b, uint16(4+len(data)))
	binary.NativeEndian.PutUint16(b[2:], typ)
	b = append(b, data...)
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

func strz(s string) []byte { return append([]byte(s), 0) }

func be32(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }

func (b *nftBatch) add(typ, flags uint16, family uint8, resID uint16, attrs ...[]byte) {
	m := make([]byte, 20)
	binary.NativeEndian.PutUint16(m[4:], typ)
	binary.NativeEndian.PutUint16(m[6:], unix.NLM_F_REQUEST|flags)
	binary.NativeEndian.PutUint32(m[8:], uint32(len(b.msgs)+1))
	m[16] = family
	binary.BigEndian.PutUint16(m[18:], resID)
	for _, a := range attrs {
		m = append(m, a...)
	}
	binary.NativeEndian.PutUint32(m, uint32(len(m)))
	if flags&unix.NLM_F_ACK != 0 {
		b.acks++
	}
	b.msgs = append(b.msgs, m)
}

const nftMsg = unix.NFNL_SUBSYS_NFTABLES << 8

func (b *nftBatch) table(fam uint8, name string) {
	b.add(nftMsg|unix.NFT_MSG_NEWTABLE, unix.NLM_F_CREATE|unix.NLM_F_ACK, fam, 0, nlAttr(unix.NFTA_TABLE_NAME, strz(name)))
}

// chain adds a chain; hook < 0 makes a regular (non-base) chain.
func (b *nftBatch) chain(fam uint8, table, name string, hook int, policy string) {
	attrs := [][]byte{nlAttr(unix.NFTA_CHAIN_TABLE, strz(table)), nlAttr(unix.NFTA_CHAIN_NAME, strz(name))}
	if hook >= 0 {
		h := append(nlAttr(unix.NFTA_HOOK_HOOKNUM, be32(uint32(hook))), nlAttr(unix.NFTA_HOOK_PRIORITY, be32(0))...)
		verdict := uint32(1) // NF_ACCEPT
		if policy == "drop" {
			verdict = 0
		}
		attrs = append(attrs, nlAttr(unix.NFTA_CHAIN_HOOK|unix.NLA_F_NESTED, h),
			nlAttr(unix.NFTA_CHAIN_POLICY, be32(verdict)), nlAttr(unix.NFTA_CHAIN_TYPE, strz("filter")))
	}
	b.add(nftMsg|unix.NFT_MSG_NEWCHAIN, unix.NLM_F_CREATE|unix.NLM_F_ACK, fam, 0, attrs...)
}

// rule appends a rule holding one counter expression.
func (b *nftBatch) rule(fam uint8, table, chain string) {
	expr := nlAttr(unix.NFTA_LIST_ELEM|unix.NLA_F_NESTED, nlAttr(unix.NFTA_EXPR_NAME, strz("counter")))
	b.add(nftMsg|unix.NFT_MSG_NEWRULE, unix.NLM_F_CREATE|unix.NLM_F_APPEND|unix.NLM_F_ACK, fam, 0,
		nlAttr(unix.NFTA_RULE_TABLE, strz(table)), nlAttr(unix.NFTA_RULE_CHAIN, strz(chain)),
		nlAttr(unix.NFTA_RULE_EXPRESSIONS|unix.NLA_F_NESTED, expr))
}

// commit sends the batch between BATCH_BEGIN/END and waits for every ack.
func (b *nftBatch) commit() error {
	inner := b.msgs
	b.msgs = nil
	b.add(unix.NFNL_MSG_BATCH_BEGIN, 0, unix.NFPROTO_UNSPEC, unix.NFNL_SUBSYS_NFTABLES)
	begin := b.msgs[0]
	b.msgs = append([][]byte{begin}, inner...)
	b.add(unix.NFNL_MSG_BATCH_END, 0, unix.NFPROTO_UNSPEC, unix.NFNL_SUBSYS_NFTABLES)
	var req []byte
	for i, m := range b.msgs {
		binary.NativeEndian.PutUint32(m[8:], uint32(i+1))
		req = append(req, m...)
	}
	s, err := openNetfilter(context.Background())
	if err != nil {
		return err
	}
	defer unix.Close(s)
	if err := unix.Sendto(s, req, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return err
	}
	buf := make([]byte, 1<<16)
	for got := 0; got < b.acks; {
		n, _, err := unix.Recvfrom(s, buf, 0)
		if err != nil {
			return fmt.Errorf("batch recv: %w", err)
		}
		msgs, err := parseNetlink(buf[:n])
		if err != nil {
			return err
		}
		for _, m := range msgs {
			if m.Header.Type != unix.NLMSG_ERROR {
				continue
			}
			if errno := int32(binary.NativeEndian.Uint32(m.Data)); errno != 0 {
				return fmt.Errorf("nftables batch message %d: %w", m.Header.Seq, unix.Errno(-errno))
			}
			got++
		}
	}
	return nil
}

// TestFirewallWithoutCapability drops CAP_NET_ADMIN and CAP_NET_RAW from one
// thread (capabilities are per thread) and checks the firewall check then
// says it cannot tell, instead of reporting a firewall or its absence.
func TestFirewallWithoutCapability(t *testing.T) {
	testutil.RequireRoot(t, "to hold the capabilities it drops")
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread is discarded
		hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
		var data [2]unix.CapUserData
		if err := unix.Capget(&hdr, &data[0]); err != nil {
			errc <- err
			return
		}
		drop := uint32(1<<unix.CAP_NET_ADMIN | 1<<unix.CAP_NET_RAW)
		data[0].Effective &^= drop
		data[0].Permitted &^= drop
		if err := unix.Capset(&hdr, &data[0]); err != nil {
			errc <- err
			return
		}
		errc <- expect(false, "cannot determine: nftables: operation not permitted")
	}()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
}
