// Package api holds the JSON wire types of quiesce's HTTP API and of the
// CLI's --json output: status, drain and cancel, shutdown, events and
// their replay, turns in flight, lifecycle history, error bodies and the
// paths of the read-only lists. server writes them, client and the CLI
// read them, and gateway returns the ones that are snapshots of its state
// (Status, TurnInfo, HistoryEntry, ReplayResult).
//
// The package holds no logic beyond encoding: no I/O, no goroutines, no
// locks. It imports only fsm, for the lifecycle's State and Event.
package api
