package fsm

import "errors"

// State is a lifecycle state.
type State string

// The lifecycle states.
const (
	Running      State = "running"       // accepting new turns
	Draining     State = "draining"      // refusing new turns, in-flight turns finish; reversible
	ShuttingDown State = "shutting_down" // on the way to stopped; never leaves except to stopped
	Stopped      State = "stopped"       // terminal
)

// States lists every state in declaration order.
var States = []State{Running, Draining, ShuttingDown, Stopped}

// Event is a lifecycle event.
type Event string

// The lifecycle events.
const (
	Drain    Event = "drain"    // external, reversible: stop starting new turns
	Resume   Event = "resume"   // undo a drain
	Shutdown Event = "shutdown" // start the shutdown sequence
	Stop     Event = "stop"     // the shutdown sequence finished
)

// Events lists every event in declaration order.
var Events = []Event{Drain, Resume, Shutdown, Stop}

// Sentinel errors returned (wrapped) by Machine.Fire when the current state
// refuses an event. Test them with errors.Is.
var (
	// ErrShutdownWins is returned when drain or resume is fired while
	// shutting down: once shutdown has begun, nothing leads back.
	ErrShutdownWins = errors.New("fsm: shutdown wins")
	// ErrStopped is returned for every event fired after stop.
	ErrStopped = errors.New("fsm: stopped is terminal")
	// ErrNotShuttingDown is returned when stop is fired before shutdown.
	ErrNotShuttingDown = errors.New("fsm: stop requires shutting_down")
	// ErrUnknownEvent is returned for an event that is not declared.
	ErrUnknownEvent = errors.New("fsm: unknown event")
	// ErrNotAccepted is returned by Machine.Release when no turn is in
	// flight: a release without a matching accept.
	ErrNotAccepted = errors.New("fsm: release without accept")
)

// rule is one (event, from) cell of the lifecycle: the state it leads to, or
// the error that refuses it. A rule with to == from and no error is a no-op.
type rule struct {
	event Event
	from  State
	to    State
	err   error
}

// transition reports whether the rule changes the state.
func (r rule) transition() bool { return r.err == nil && r.to != r.from }

// noop reports whether the rule is an accepted repeat that changes nothing.
func (r rule) noop() bool { return r.err == nil && r.to == r.from }

// rules is the single definition of the lifecycle: every (event, state)
// pair appears exactly once. It builds the looplab/fsm definition and the
// diagrams.
var rules = []rule{
	{Drain, Running, Draining, nil},
	{Drain, Draining, Draining, nil},
	{Drain, ShuttingDown, ShuttingDown, ErrShutdownWins},
	{Drain, Stopped, Stopped, ErrStopped},

	{Resume, Draining, Running, nil},
	{Resume, Running, Running, nil},
	{Resume, ShuttingDown, ShuttingDown, ErrShutdownWins},
	{Resume, Stopped, Stopped, ErrStopped},

	{Shutdown, Running, ShuttingDown, nil},
	{Shutdown, Draining, ShuttingDown, nil},
	{Shutdown, ShuttingDown, ShuttingDown, nil},
	{Shutdown, Stopped, Stopped, ErrStopped},

	{Stop, ShuttingDown, Stopped, nil},
	{Stop, Running, Running, ErrNotShuttingDown},
	{Stop, Draining, Draining, ErrNotShuttingDown},
	{Stop, Stopped, Stopped, ErrStopped},
}

// stateIndex maps a state to its 2-bit code in the gate word.
func stateIndex(s State) uint64 {
	for i, st := range States {
		if st == s {
			return uint64(i)
		}
	}
	panic("fsm: undeclared state " + string(s))
}
