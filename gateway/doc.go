// Package gateway is the quiesce runtime: it composes the lifecycle
// (package fsm), the drain marker (package marker) and notifications
// (package notify) into a gateway that runs conversation turns on an
// agent.Agent (package agent).
//
// A Gateway owns its fsm.Machine, its session table and its marker watcher;
// nothing else fires lifecycle events. Reconcile reads the marker and fires
// drain or resume; it runs at Start (before the first turn can be
// accepted), on every watcher signal, and inside BeginDrain/CancelDrain
// before they return, so an API caller's next turn already sees the result.
//
// Turns pass the accept gate first, then claim their session's slot (one
// turn per session); Stream reports partial output as the agent produces
// it. The built-in agents (agent.NewEcho, agent.NewExec, agent.NewHTTP)
// live in package agent; any agent.Agent can be plugged in.
//
// Turns lists the turns in flight (session, turn id, age, streaming,
// internal event id) and History the last HistorySize lifecycle events
// (transitions, drains with their principal, cancels, shutdowns,
// interrupted sessions); Status carries the version and the agent's
// failures. Recording them adds no lock held across I/O to a turn: a turn's
// entry is the session slot it claims anyway.
//
// Internal events (Event) are never refused and never lost: each is
// appended and fsynced to the spool (events.spool.jsonl) before Event
// returns, starts as a system turn when the gateway runs and its session
// is free, and leaves the spool only once that turn has completed. A crash
// or a forced interrupt runs it again (at-least-once), with the same event
// id, so agents can deduplicate; an agent error retries with capped
// exponential backoff until Config.EventRetryFor has passed since the first
// failure, then the event moves to events.spool.rejected.jsonl, from where
// ReplayEvents (or LocalReplay on a stopped home) moves it back. The
// in-flight count never rises while draining: events wait, too. A sink that
// keeps what it could not deliver (a notify.Webhook with a pending file) is
// retried in the background from Start until the gateway stops.
//
// New takes the home's lock (gateway.lock, one gateway per home) before it
// opens anything else for writing, refuses a FIFO, directory or symlink
// where a file of the home belongs, and removes temp files killed writers
// left. Shutdown refuses new turns, broadcasts once unless the marker
// suppresses it, waits for in-flight turns up to the drain timeout,
// interrupts what is left and pings each cut-off user session, flushes the
// sinks within the notify timeout, and stops. A repeated BeginShutdown
// without force changes nothing.
//
// The package parses no HTTP and no flags. The snapshots it returns
// (Status, TurnInfo, HistoryEntry, ReplayResult) are the wire types of
// package api.
package gateway
