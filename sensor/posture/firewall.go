package posture

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
)

// Firewall requires inbound packet filtering: a filter chain on the input
// (or ingress) hook that drops by default or holds at least one rule, in
// nftables (which also holds iptables-nft rules) or in legacy iptables /
// ip6tables. Rule sets live in the kernel, not in files, so it asks the
// kernel of the sensor's network namespace directly (nfnetlink dump,
// IPT_SO_GET_INFO), without shelling out to nft or iptables; on a root that
// is not the live "/", it cannot tell and says so. NAT-only or
// forward/output-only rule sets (what Docker alone installs) do not count.
type Firewall struct {
	// kernel answers for the live kernel; nil means the real one when the
	// root is live. Tests substitute a fake.
	kernel firewallKernel
}

// Name implements Check.
func (Firewall) Name() string { return CheckFirewall }

// firewallKernel is the live kernel's view of packet filtering.
type firewallKernel interface {
	// NFTChains lists every nftables chain with its rule count.
	NFTChains(ctx context.Context) ([]nftChain, error)
	// LegacyFilter reads the legacy (ip|ip6)tables "filter" table of
	// family "ip" or "ip6"; present is false when that table is not
	// loaded (it is never instantiated by the query).
	LegacyFilter(family string) (t legacyFilter, present bool, err error)
}

// nftChain is one nftables chain.
type nftChain struct {
	Family string // ip, ip6, inet, arp, bridge, netdev
	Table  string
	Name   string
	Base   bool // attached to a hook
	Hook   uint32
	Type   string // filter, nat, route
	Policy string // accept, drop ("" for non-base chains)
	Rules  int
}

// legacyFilter is the INPUT chain of a legacy filter table.
type legacyFilter struct {
	InputRules bool   // INPUT holds at least one rule
	Policy     string // ACCEPT, DROP
}

// Hook numbers (linux/netfilter.h): NF_INET_LOCAL_IN; NF_INET_INGRESS and
// NF_NETDEV_INGRESS see packets before routing.
const (
	nfInetLocalIn   = 1
	nfInetIngress   = 5
	nfNetdevIngress = 0
)

// inbound reports whether the chain filters traffic addressed to this host.
func (c nftChain) inbound() bool {
	if !c.Base || c.Type != "filter" {
		return false
	}
	switch c.Family {
	case "ip", "ip6", "inet":
		return c.Hook == nfInetLocalIn || (c.Family == "inet" && c.Hook == nfInetIngress)
	case "netdev":
		return c.Hook == nfNetdevIngress
	}
	return false
}

// Run implements Check.
func (f Firewall) Run(ctx context.Context, root Root) Result {
	k := f.kernel
	if k == nil {
		if !root.Live() {
			return fail("cannot determine: rule sets are read from the live kernel, root is %s", string(root))
		}
		k = liveFirewall{}
	}
	var filtering []string // chains that filter inbound traffic
	var seen []string      // what else was found, for the failure detail
	var errs []string

	chains, err := k.NFTChains(ctx)
	if err != nil {
		errs = append(errs, "nftables: "+err.Error())
	} else {
		total := 0
		for _, c := range chains {
			total += c.Rules
			if !c.inbound() {
				continue
			}
			desc := fmt.Sprintf("nft %s %s %s: %d rules, policy %s", c.Family, c.Table, c.Name, c.Rules, c.Policy)
			if c.Rules > 0 || c.Policy == "drop" {
				filtering = append(filtering, desc)
			} else {
				seen = append(seen, desc)
			}
		}
		if len(filtering) == 0 && len(seen) == 0 {
			seen = append(seen, fmt.Sprintf("nftables: %d chains, %d rules, no inbound filter chain", len(chains), total))
		}
	}
	for _, fam := range []string{"ip", "ip6"} {
		name := map[string]string{"ip": "iptables", "ip6": "ip6tables"}[fam]
		t, present, err := k.LegacyFilter(fam)
		switch {
		case err != nil:
			errs = append(errs, name+": "+err.Error())
		case !present:
		case t.InputRules || t.Policy == "DROP":
			filtering = append(filtering, fmt.Sprintf("%s filter INPUT: rules %t, policy %s", name, t.InputRules, t.Policy))
		default:
			seen = append(seen, fmt.Sprintf("%s filter INPUT: no rules, policy %s", name, t.Policy))
		}
	}
	sort.Strings(filtering)
	if len(filtering) > 0 {
		return ok("%s", strings.Join(filtering, "; "))
	}
	if len(errs) > 0 {
		return fail("cannot determine: %s", strings.Join(errs, "; "))
	}
	return fail("no inbound filtering: %s", strings.Join(seen, "; "))
}

// errDumpInterrupted is returned when the rule set changed during a dump.
var errDumpInterrupted = errors.New("dump interrupted by a concurrent change")
