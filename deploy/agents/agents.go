// Package agents holds the release list lineaged ships: the SHA-256 of each
// known agent binary (known-releases, parsed by lineage/agent.ParseReleases).
package agents

import _ "embed"

// KnownReleases is the text of deploy/agents/known-releases.
//
//go:embed known-releases
var KnownReleases []byte
