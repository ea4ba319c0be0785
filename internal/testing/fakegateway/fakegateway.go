// Package fakegateway is a test double of server.Gateway, for the tests of
// server and client: a function-field fake over a small lifecycle model.
// Its mutex guards the call log and the model; its change channel wakes
// WaitChange callers.
package fakegateway

import (
	"context"
	"strings"
	"sync"

	"github.com/quiesce-dev/quiesce/api"
	"github.com/quiesce-dev/quiesce/fsm"
	"github.com/quiesce-dev/quiesce/gateway"
	"github.com/quiesce-dev/quiesce/server"
)

var _ server.Gateway = (*Gateway)(nil) // the fake stays in step with the interface

// Gateway is a function-field fake of server.Gateway that records the
// order of calls. A nil function field falls back to a small model: a
// state that BeginDrain sets to draining (reporting WasDraining when it
// already was) and CancelDrain back to running, and a Turn that the model
// refuses unless running; BeginShutdown is idempotent like the real one
// (a repeat reports AlreadyShuttingDown, force sticks once asked for).
type Gateway struct {
	TurnFn          func(ctx context.Context, session, text string) (string, error)
	EventFn         func(ctx context.Context, session, text string) (api.EventReceipt, error)
	BeginDrainFn    func(ctx context.Context, req gateway.DrainRequest) (gateway.DrainResult, error)
	CancelDrainFn   func(ctx context.Context, requestID string) (gateway.CancelResult, error)
	StatusFn        func() api.Status
	WaitIdleFn      func(ctx context.Context) error
	WaitChangeFn    func(ctx context.Context, after uint64) (api.Status, error)
	BeginShutdownFn func(force bool) gateway.ShutdownStart
	StreamFn        func(ctx context.Context, req gateway.TurnRequest) (string, error)
	TurnsFn         func() []api.TurnInfo
	HistoryFn       func() []api.HistoryEntry
	ReplayEventsFn  func(ctx context.Context) (api.ReplayResult, error)

	mu     sync.Mutex
	calls  []string
	state  fsm.State
	seq    uint64        // grows on every change of state, like gateway.Status.Seq
	change chan struct{} // closed and replaced when seq grows; nil until a WaitChange needs it
	forced bool          // a BeginShutdown asked for force
}

// InState returns a fake whose model starts in state s (no change is
// counted: Status's Seq is 0).
func InState(s fsm.State) *Gateway { return &Gateway{state: s} }

// Calls returns the names of the methods called so far, in order.
func (g *Gateway) Calls() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]string(nil), g.calls...)
}

func (g *Gateway) record(name string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.calls = append(g.calls, name)
}

// State returns the model's state (running until a drain, a cancel or
// SetState changes it).
func (g *Gateway) State() fsm.State {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.state == "" {
		return fsm.Running
	}
	return g.state
}

// SetState sets the model's state; a change grows Status's Seq and wakes
// WaitChange callers.
func (g *Gateway) SetState(s fsm.State) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.setStateLocked(s)
}

// setStateLocked sets the state and, if it changed, grows seq and wakes
// WaitChange callers. g.mu must be held.
func (g *Gateway) setStateLocked(s fsm.State) {
	if g.state == s || (g.state == "" && s == fsm.Running) {
		g.state = s
		return
	}
	g.state = s
	g.seq++
	if g.change != nil {
		close(g.change)
		g.change = nil
	}
}

// changed returns the channel the next change closes, and seq now.
func (g *Gateway) changed() (<-chan struct{}, uint64) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.change == nil {
		g.change = make(chan struct{})
	}
	return g.change, g.seq
}

// Turn implements server.Gateway.
func (g *Gateway) Turn(ctx context.Context, session, text string) (string, error) {
	g.record("Turn")
	if g.TurnFn != nil {
		return g.TurnFn(ctx, session, text)
	}
	if st := g.State(); st != fsm.Running {
		return "", &gateway.RefusedError{State: st}
	}
	return text, nil
}

// Stream implements server.Gateway: Turn, with Started after a
// successful "gate" and each word of the reply as a delta.
func (g *Gateway) Stream(ctx context.Context, req gateway.TurnRequest) (string, error) {
	if g.StreamFn != nil {
		return g.StreamFn(ctx, req)
	}
	if st := g.State(); st != fsm.Running {
		g.record("Turn")
		return "", &gateway.RefusedError{State: st}
	}
	if req.Started != nil {
		req.Started()
	}
	reply, err := g.Turn(ctx, req.Session, req.Text)
	if err == nil && req.Delta != nil {
		for _, w := range strings.SplitAfter(reply, " ") {
			req.Delta(w)
		}
	}
	return reply, err
}

// ReplayEvents implements server.Gateway: nothing to replay unless
// ReplayEventsFn says otherwise.
func (g *Gateway) ReplayEvents(ctx context.Context) (api.ReplayResult, error) {
	g.record("ReplayEvents")
	if g.ReplayEventsFn != nil {
		return g.ReplayEventsFn(ctx)
	}
	return api.ReplayResult{EventIDs: []string{}}, nil
}

// Event implements server.Gateway.
func (g *Gateway) Event(ctx context.Context, session, text string) (api.EventReceipt, error) {
	g.record("Event")
	if g.EventFn != nil {
		return g.EventFn(ctx, session, text)
	}
	return api.EventReceipt{ID: "ev1", Spooled: g.State() != fsm.Running}, nil
}

// BeginDrain implements server.Gateway.
func (g *Gateway) BeginDrain(ctx context.Context, req gateway.DrainRequest) (gateway.DrainResult, error) {
	g.record("BeginDrain")
	if g.BeginDrainFn != nil {
		return g.BeginDrainFn(ctx, req)
	}
	was := g.State() == fsm.Draining
	g.SetState(fsm.Draining)
	id := req.RequestID
	if id == "" {
		id = "generated"
	}
	info := api.DrainInfo{Action: "drain", Principal: req.Principal, RequestID: id, Status: "active", Persisted: true}
	if req.SuppressNotification != nil {
		info.SuppressNotification = *req.SuppressNotification
	}
	if req.Reason != nil {
		info.Reason = *req.Reason
	}
	return gateway.DrainResult{
		Drain:       info,
		State:       fsm.Draining,
		WasDraining: was,
	}, nil
}

// CancelDrain implements server.Gateway.
func (g *Gateway) CancelDrain(ctx context.Context, requestID string) (gateway.CancelResult, error) {
	g.record("CancelDrain")
	if g.CancelDrainFn != nil {
		return g.CancelDrainFn(ctx, requestID)
	}
	was := g.State() == fsm.Draining
	if was {
		g.SetState(fsm.Running)
	}
	return gateway.CancelResult{WasDraining: was, State: g.State()}, nil
}

// Status implements server.Gateway.
func (g *Gateway) Status() api.Status {
	g.record("Status")
	if g.StatusFn != nil {
		return g.StatusFn()
	}
	g.mu.Lock()
	seq := g.seq
	g.mu.Unlock()
	st := g.State()
	return api.Status{Seq: seq, State: st, Ready: st == fsm.Running, Epoch: "boot:1", PID: 42}
}

// Turns implements server.Gateway: none in flight unless TurnsFn says.
func (g *Gateway) Turns() []api.TurnInfo {
	g.record("Turns")
	if g.TurnsFn != nil {
		return g.TurnsFn()
	}
	return nil
}

// History implements server.Gateway: empty unless HistoryFn says.
func (g *Gateway) History() []api.HistoryEntry {
	g.record("History")
	if g.HistoryFn != nil {
		return g.HistoryFn()
	}
	return nil
}

// WaitChange implements server.Gateway: it waits until Status().Seq
// exceeds after (in the model: a state change) or ctx is done.
func (g *Gateway) WaitChange(ctx context.Context, after uint64) (api.Status, error) {
	g.record("WaitChange")
	if g.WaitChangeFn != nil {
		return g.WaitChangeFn(ctx, after)
	}
	for {
		ch, _ := g.changed()
		if st := g.Status(); st.Seq > after {
			return st, nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return g.Status(), ctx.Err()
		}
	}
}

// WaitIdle implements server.Gateway.
func (g *Gateway) WaitIdle(ctx context.Context) error {
	g.record("WaitIdle")
	if g.WaitIdleFn != nil {
		return g.WaitIdleFn(ctx)
	}
	return nil
}

// BeginShutdown implements server.Gateway.
func (g *Gateway) BeginShutdown(force bool) gateway.ShutdownStart {
	g.record("BeginShutdown")
	if g.BeginShutdownFn != nil {
		return g.BeginShutdownFn(force)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	already := g.state == fsm.ShuttingDown
	g.setStateLocked(fsm.ShuttingDown)
	g.forced = g.forced || force
	return gateway.ShutdownStart{ID: "sd1", Force: g.forced, AlreadyShuttingDown: already}
}
