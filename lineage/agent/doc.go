// Package agent holds what lineaged knows about AI coding agents.
//
//   - The agent table (Table, DefaultRules): one row per install form of
//     each agent, holding the kernel matchers and the install form and
//     version facts. It is compiled for the kernel's recogniser map
//     (Table.Kernel) and evaluated in Go by the same matchers
//     (Table.Identify), so the kernel, the /proc seed (Table.Seed) and
//     attribution agree by construction. Adding an agent is adding rows.
//   - The interface an agent integration implements (Integration, with Exec,
//     File and Result), which the lineage engine calls for session members.
//   - The Router, which the engine gets: it hands each session to its
//     agent's integration and gives agents without one the generic
//     attribution, and the bookkeeping integrations share (Sessions,
//     Members, Reparented).
//
// Agent specifics live in sibling packages: lineage/agent/claude for Claude
// Code (transcript, Bash tool binding, config, roles). This package imports
// no lineage engine code; the engine imports it.
package agent
