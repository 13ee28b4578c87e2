package posture

import (
	"encoding/binary"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func cat(parts ...[]byte) []byte {
	var b []byte
	for _, p := range parts {
		b = append(b, p...)
	}
	return b
}

func TestParseNFTChain(t *testing.T) {
	base := cat(
		nlAttr(unix.NFTA_CHAIN_TABLE, strz("filter")),
		nlAttr(unix.NFTA_CHAIN_NAME, strz("input")),
		nlAttr(unix.NFTA_CHAIN_TYPE, strz("filter")),
		nlAttr(unix.NFTA_CHAIN_POLICY, be32(0)),
		nlAttr(unix.NFTA_CHAIN_HOOK|unix.NLA_F_NESTED, cat(
			nlAttr(unix.NFTA_HOOK_PRIORITY, be32(0)),
			nlAttr(unix.NFTA_HOOK_HOOKNUM, be32(unix.NF_INET_LOCAL_IN)),
		)),
	)
	c, err := parseNFTChain(unix.NFPROTO_INET, base)
	want := nftChain{Family: "inet", Table: "filter", Name: "input", Type: "filter", Base: true, Hook: unix.NF_INET_LOCAL_IN, Policy: "drop"}
	if err != nil || c != want {
		t.Fatalf("base chain = %+v, %v; want %+v", c, err, want)
	}
	c, err = parseNFTChain(unix.NFPROTO_IPV6, cat(
		nlAttr(unix.NFTA_CHAIN_TABLE, strz("t")),
		nlAttr(unix.NFTA_CHAIN_NAME, strz("mine")),
	))
	if want := (nftChain{Family: "ip6", Table: "t", Name: "mine"}); err != nil || c != want {
		t.Fatalf("regular chain = %+v, %v; want %+v", c, err, want)
	}
	for _, tc := range []struct {
		name  string
		attrs []byte
		want  string
	}{
		{"short policy", nlAttr(unix.NFTA_CHAIN_POLICY, []byte{1}), "malformed chain policy"},
		{"short hook number", nlAttr(unix.NFTA_CHAIN_HOOK, nlAttr(unix.NFTA_HOOK_HOOKNUM, []byte{1, 2})), "malformed hook number"},
		{"truncated attribute", nlAttr(unix.NFTA_CHAIN_NAME, strz("input"))[:6], "malformed netlink attribute"},
	} {
		if _, err := parseNFTChain(unix.NFPROTO_INET, tc.attrs); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
}

func TestParseNFTRule(t *testing.T) {
	k, err := parseNFTRule(unix.NFPROTO_IPV4, cat(
		nlAttr(unix.NFTA_RULE_TABLE, strz("filter")),
		nlAttr(unix.NFTA_RULE_CHAIN, strz("input")),
		nlAttr(unix.NFTA_RULE_HANDLE, binary.BigEndian.AppendUint64(nil, 7)),
	))
	if want := (nftChainKey{"ip", "filter", "input"}); err != nil || k != want {
		t.Fatalf("rule = %+v, %v; want %+v", k, err, want)
	}
	if _, err := parseNFTRule(unix.NFPROTO_IPV4, []byte{8, 0, 1}); err != nil {
		t.Fatalf("a trailing fragment under a header's size is ignored, got %v", err)
	}
	if _, err := parseNFTRule(unix.NFPROTO_IPV4, []byte{200, 0, 1, 0}); err == nil {
		t.Fatal("an attribute longer than the message was accepted")
	}
}
