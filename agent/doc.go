// Package agent is what runs a turn: the Agent interface, the Turn it is
// given, and the built-in agents the quiesce binary offers with --agent:
//
//   - NewEcho: replies with the text (a fixed work time; word by word to a
//     delta listener);
//   - NewExec: a command per turn under /bin/sh, in its own process group
//     (killed whole on cancellation; on Linux also when the gateway dies);
//   - NewHTTP: an upstream agent service over one pooled HTTP client,
//     answering JSON or a text/event-stream whose events it passes on as
//     deltas.
//
// An agent knows nothing of the gate, sessions or HTTP serving: package
// gateway decides when a turn runs and cancels its context (with a cause)
// when a shutdown cuts it off. The exec agent relies on Unix process
// groups (and, on Linux, the parent-death signal).
//
// Concurrency: the http agent's *http.Client is shared by all turns (safe
// for concurrent use); each Run of any agent is independent, and an exec
// run's stderr logger is used by the one goroutine os/exec copies with.
package agent
