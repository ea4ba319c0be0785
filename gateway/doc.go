// Package gateway is the quiesce runtime: it composes the lifecycle
// (package fsm), the drain marker (package marker) and notifications
// (package notify) into a gateway that runs conversation turns on an Agent.
//
// A Gateway owns its fsm.Machine, its session table and its marker watcher;
// nothing else fires lifecycle events. Reconcile reads the marker and fires
// drain or resume; it runs at Start (before the first turn can be
// accepted), on every watcher signal, and inside BeginDrain/CancelDrain
// before they return, so an API caller's next turn already sees the result.
//
// Turns pass the accept gate first, then claim their session's slot (one
// turn per session). Internal events are never refused: they go to a
// durable spool (events.spool.jsonl) and start as system turns when the
// gateway runs and the session is free, so the in-flight count never rises
// while draining (I1) and nothing is lost.
//
// Shutdown runs the sequence of DESIGN.md: refuse new turns, broadcast
// once unless the marker suppresses it, wait for in-flight turns up to the
// drain timeout, interrupt what is left and ping each cut-off session,
// flush the sinks within the notify timeout, stop.
//
// The package parses no HTTP and no flags. The exec agent relies on Unix
// process groups.
package gateway
