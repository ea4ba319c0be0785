package fsm

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	looplab "github.com/looplab/fsm"
)

// Transition is one committed state change, as told to observers.
type Transition struct {
	Event Event
	From  State
	To    State
	// InFlight is the in-flight count at the instant the gate switched to
	// To. While To is not running, the count never exceeds it (I1).
	InFlight int
}

// Machine is the lifecycle of one gateway: a looplab/fsm definition driven
// through one mutex, plus the lock-free accept gate. The zero value is not
// usable; call New. All methods are safe for concurrent use.
type Machine struct {
	// word is the gate: state and in-flight count (gate.go).
	word atomic.Uint64

	// mu serializes every looplab Event call: looplab/fsm v1.0.3 reads its
	// current state unlocked after releasing its own event lock, so two
	// concurrent Events can run each other's enter_ callbacks.
	mu sync.Mutex
	f  *looplab.FSM

	// observers are told of each committed transition inside Fire, with
	// mu held, so they see transitions in commit order; guarded by mu.
	observers map[int]func(Transition)
	nextObs   int
	last      Transition // the transition commit just made; guarded by mu

	// Idle signalling: waiters counts WaitIdle callers; Release takes idleMu
	// only when a waiter exists and the count reached zero.
	waiters atomic.Int32
	idleMu  sync.Mutex
	idleCh  chan struct{}

	rules map[Event]map[State]rule
}

// New returns a Machine in the running state with nothing in flight.
func New() *Machine { return newMachine(nil) }

// newMachine builds a Machine; extra callbacks (tests only) are added to
// the machine's own.
func newMachine(extra looplab.Callbacks) *Machine {
	m := &Machine{idleCh: make(chan struct{}), observers: map[int]func(Transition){}}
	m.rules = ruleIndex(rules)
	cb := m.callbacks()
	for k, fn := range extra {
		cb[k] = fn
	}
	m.f = looplab.NewFSM(string(Running), looplabEvents(rules), cb)
	return m
}

// ruleIndex indexes rules by event and source state.
func ruleIndex(rs []rule) map[Event]map[State]rule {
	idx := map[Event]map[State]rule{}
	for _, r := range rs {
		if idx[r.event] == nil {
			idx[r.event] = map[State]rule{}
		}
		idx[r.event][r.from] = r
	}
	return idx
}

// looplabEvents turns the rules into looplab's declaration: refused and
// no-op cells become self-transitions, so the guard in before_<event> runs
// for them and a no-op ends in looplab's NoTransitionError.
func looplabEvents(rs []rule) looplab.Events {
	evs := make(looplab.Events, 0, len(rs))
	for _, r := range rs {
		evs = append(evs, looplab.EventDesc{Name: string(r.event), Src: []string{string(r.from)}, Dst: string(r.to)})
	}
	return evs
}

// callbacks returns the looplab callbacks: one guard per event and the
// commit that writes the gate. Each is a one-line call into the Machine.
func (m *Machine) callbacks() looplab.Callbacks {
	cb := looplab.Callbacks{
		"enter_state": func(_ context.Context, e *looplab.Event) { m.commit(e) },
	}
	for _, ev := range Events {
		cb["before_"+string(ev)] = func(_ context.Context, e *looplab.Event) { m.guard(e) }
	}
	return cb
}

// guard refuses the event when its rule says so. It runs inside looplab's
// locks, so it reads only e.Src and the rules table (a call back into
// the library from a before_ callback would deadlock on its event lock).
func (m *Machine) guard(e *looplab.Event) {
	if r := m.rules[Event(e.Event)][State(e.Src)]; r.err != nil {
		e.Cancel(r.err)
	}
}

// commit switches the gate to the new state, keeping the in-flight count,
// and records the transition for Fire to tell observers. It runs in
// enter_state, after looplab committed, while m.mu is held: the gate
// closes before any observer (a log line, a supervisor's notification)
// runs.
func (m *Machine) commit(e *looplab.Event) {
	to := State(e.Dst)
	for {
		w := m.word.Load()
		nw := withState(w, to)
		if m.word.CompareAndSwap(w, nw) {
			m.last = Transition{Event: Event(e.Event), From: State(e.Src), To: to, InFlight: wordCount(w)}
			return
		}
	}
}

// Fire applies ev. It reports changed=true when the state changed. A repeat
// that the state accepts as a no-op (drain while draining, resume while
// running, shutdown while shutting down) returns changed=false and a nil
// error and tells no observer. A refused event returns an error wrapping
// ErrShutdownWins, ErrStopped, ErrNotShuttingDown or ErrUnknownEvent and
// changes nothing.
//
// ctx is used for its values only: cancellation is stripped before it
// reaches looplab/fsm, which a cancelled context wedges forever. Observers
// have been told of the transition, in commit order, when Fire returns.
func (m *Machine) Fire(ctx context.Context, ev Event) (changed bool, err error) {
	if _, ok := m.rules[ev]; !ok {
		return false, fmt.Errorf("%w: %q", ErrUnknownEvent, ev)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	from := m.State()
	err = m.f.Event(context.WithoutCancel(ctx), string(ev))

	var noop looplab.NoTransitionError
	var canceled looplab.CanceledError
	switch {
	case err == nil:
		m.tell(m.last)
		return true, nil
	case errors.As(err, &noop):
		return false, nil
	case errors.As(err, &canceled):
		return false, fmt.Errorf("fsm: %s in %s: %w", ev, from, canceled.Err)
	default:
		return false, fmt.Errorf("fsm: %s in %s: %w", ev, from, err)
	}
}

// tell calls every observer, in the order they subscribed, with m.mu held.
func (m *Machine) tell(t Transition) {
	for i := 0; i < m.nextObs; i++ {
		if fn, ok := m.observers[i]; ok {
			fn(t)
		}
	}
}

// Subscribe registers fn to be told of every committed transition, once
// each, in commit order, in the order observers subscribed. fn runs inside
// Fire, which holds the Machine's event lock: it must not call Fire or
// Subscribe (that deadlocks) and should be quick (the next event waits for
// it); the gate, State, Snapshot, Accept and Release are free to use. The
// returned func unsubscribes.
func (m *Machine) Subscribe(fn func(Transition)) (unsubscribe func()) {
	m.mu.Lock()
	id := m.nextObs
	m.nextObs++
	m.observers[id] = fn
	m.mu.Unlock()
	return func() {
		m.mu.Lock()
		delete(m.observers, id)
		m.mu.Unlock()
	}
}

// State returns the current state, read from the gate word.
func (m *Machine) State() State { return wordState(m.word.Load()) }

// InFlight returns the number of accepted, unreleased turns.
func (m *Machine) InFlight() int { return wordCount(m.word.Load()) }

// Snapshot returns state and in-flight count read in one atomic load.
func (m *Machine) Snapshot() Snapshot { return snapshotOf(m.word.Load()) }

// idle wakes WaitIdle callers, if any, once the count has reached zero.
func (m *Machine) idle() {
	if m.waiters.Load() > 0 {
		m.wakeIdle()
	}
}

// wakeIdle closes the current idle channel and installs a fresh one.
func (m *Machine) wakeIdle() {
	m.idleMu.Lock()
	close(m.idleCh)
	m.idleCh = make(chan struct{})
	m.idleMu.Unlock()
}

// WaitIdle blocks until no turn is in flight or ctx is done, and returns
// ctx.Err() in the latter case. It is woken by the Release that brings the
// count to zero: no polling. While running, new turns may be accepted right
// after it returns; once not running the count can only fall, so idle then
// stays idle.
func (m *Machine) WaitIdle(ctx context.Context) error {
	m.waiters.Add(1)
	defer m.waiters.Add(-1)
	for {
		m.idleMu.Lock()
		ch := m.idleCh
		m.idleMu.Unlock()
		// The waiter count is raised before this load and Release lowers
		// the count before reading waiters: one of the two sees the other.
		if wordCount(m.word.Load()) == 0 {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}
