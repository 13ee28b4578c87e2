package main

import (
	"github.com/lineaged/lineaged/deploy/agents"
	"github.com/lineaged/lineaged/lineage/agent"
)

// AgentsConfig is what the sensor knows of the agents themselves.
type AgentsConfig struct {
	// KnownReleases are files listing agent releases beyond the list built
	// into lineaged (deploy/agents/known-releases): lines "sha256 <hex>
	// <agent> <version>" or "signer <agent> <key id>". A session root
	// whose binary is listed for its agent is verified; any other is
	// agent-unverified (docs/agents.md, "Agent identity"). Add a line here
	// for a release newer than this lineaged.
	KnownReleases []string `mapstructure:"known_releases"`
}

// agentReleases loads the built-in release list and the configured ones.
func (c AgentsConfig) agentReleases() (*agent.Releases, error) {
	return agent.LoadReleases(agents.KnownReleases, c.KnownReleases)
}

// validate checks that every configured release list loads.
func (c AgentsConfig) validate(p *problems) {
	if _, err := c.agentReleases(); err != nil {
		p.bad("agents.known_releases", "%v", err)
	}
}
