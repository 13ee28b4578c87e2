package agent

import (
	"github.com/lineaged/lineaged/lineage"
	"github.com/lineaged/lineaged/lineage/event"
)

// Lineage adapts o to the engine's observer interface: pass it as
// lineage.Deps.Observer.
func (o *Observer) Lineage() lineage.AgentObserver { return lineageObserver{o} }

type lineageObserver struct{ o *Observer }

func (l lineageObserver) Exec(x lineage.AgentExec) lineage.AgentResult {
	return lineage.AgentResult(l.o.Exec(ExecInput(x)))
}

func (l lineageObserver) File(x lineage.AgentFile) lineage.AgentResult {
	return lineage.AgentResult(l.o.File(FileInput(x)))
}

func (l lineageObserver) Exit(p *event.Process) { l.o.Exit(p) }
