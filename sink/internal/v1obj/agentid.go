package v1obj

import (
	"github.com/lineaged/lineaged/lineage/event"
	"github.com/lineaged/lineaged/sink/internal/jsonw"
)

// agentIdentity writes the end of the agent object: whether the session's
// root binary was verified (verified, verification, verified_at, release),
// and closes the object.
func agentIdentity(m *Marks, dst []byte, prefix string, a *event.Agent) []byte {
	if a.Verified != nil {
		dst = jsonw.AppendBool(jsonw.AppendKey(dst, "verified"), *a.Verified)
	}
	dst = m.OptStr(dst, "verification", prefix, a.Verification)
	if a.VerifiedAt != nil {
		dst = jsonw.AppendTime(jsonw.AppendKey(dst, "verified_at"), *a.VerifiedAt)
	}
	dst = m.OptStr(dst, "release", prefix, a.Release)
	return append(dst, '}')
}
