// Package fsm is the lifecycle of a quiesce gateway: four states (running,
// draining, shutting_down, stopped), four events (drain, resume, shutdown,
// stop), the guards that make shutdown win and repeated events no-ops, and
// the accept gate that admits a new turn only while running.
//
// The transitions are declared once, in the rules table of lifecycle.go. That
// table builds the github.com/looplab/fsm definition that runs the
// transitions and is what Describe draws as Mermaid or Graphviz DOT.
//
// looplab/fsm v1.0.3 has measured traps, each avoided here:
//   - concurrent Event calls race inside the library (the wrong enter_
//     callback can run), so every event goes through Machine.Fire, which
//     holds one mutex around the library call;
//   - a cancelled context wedges the library forever (looplab/fsm#115), so
//     Fire passes context.WithoutCancel to it;
//   - before_/leave_ callbacks must not call back into the library
//     (deadlock), so the guards read only e.Src and the rules table;
//   - Visualize reads without locks, so diagrams are drawn from the table,
//     never from a live machine.
//
// Concurrency: the gate is one atomic word (state and in-flight count)
// updated by CAS; mu serialises every library call and the
// observers, which Fire tells of each transition before it returns, in
// commit order; idleMu and the waiter count let the Release that ends the
// last turn wake WaitIdle callers without polling.
//
// The package does no I/O and knows nothing about files, HTTP or time.
package fsm
