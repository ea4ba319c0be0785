package server_test

import (
	"context"
	"sync"

	"github.com/quiesce-dev/quiesce/fsm"
	"github.com/quiesce-dev/quiesce/gateway"
	"github.com/quiesce-dev/quiesce/server"
)

var _ server.Gateway = (*Gateway)(nil)

// Gateway is a function-field fake of server.Gateway that records the
// order of calls. A nil function field falls back to a small model: a
// state that BeginDrain sets to draining (reporting WasDraining when it
// already was) and CancelDrain back to running, and a Turn that the model
// refuses unless running; BeginShutdown is idempotent like the real one
// (a repeat reports AlreadyShuttingDown, force sticks once asked for).
type Gateway struct {
	TurnFn          func(ctx context.Context, session, text string) (string, error)
	EventFn         func(ctx context.Context, session, text string) (gateway.EventReceipt, error)
	BeginDrainFn    func(ctx context.Context, req gateway.DrainRequest) (gateway.DrainResult, error)
	CancelDrainFn   func(ctx context.Context, requestID string) (gateway.CancelResult, error)
	StatusFn        func() gateway.Status
	WaitIdleFn      func(ctx context.Context) error
	BeginShutdownFn func(force bool) gateway.ShutdownStart

	mu     sync.Mutex
	calls  []string
	state  fsm.State
	forced bool // a BeginShutdown asked for force
}

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

func (g *Gateway) getState() fsm.State {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.state == "" {
		return fsm.Running
	}
	return g.state
}

func (g *Gateway) setState(s fsm.State) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.state = s
}

// Turn implements server.Gateway.
func (g *Gateway) Turn(ctx context.Context, session, text string) (string, error) {
	g.record("Turn")
	if g.TurnFn != nil {
		return g.TurnFn(ctx, session, text)
	}
	if st := g.getState(); st != fsm.Running {
		return "", &gateway.RefusedError{State: st}
	}
	return text, nil
}

// Event implements server.Gateway.
func (g *Gateway) Event(ctx context.Context, session, text string) (gateway.EventReceipt, error) {
	g.record("Event")
	if g.EventFn != nil {
		return g.EventFn(ctx, session, text)
	}
	return gateway.EventReceipt{ID: "ev1", Spooled: g.getState() != fsm.Running}, nil
}

// BeginDrain implements server.Gateway.
func (g *Gateway) BeginDrain(ctx context.Context, req gateway.DrainRequest) (gateway.DrainResult, error) {
	g.record("BeginDrain")
	if g.BeginDrainFn != nil {
		return g.BeginDrainFn(ctx, req)
	}
	was := g.getState() == fsm.Draining
	g.setState(fsm.Draining)
	id := req.RequestID
	if id == "" {
		id = "generated"
	}
	return gateway.DrainResult{
		Drain: gateway.DrainInfo{Action: "drain", Principal: req.Principal, RequestID: id,
			SuppressNotification: req.SuppressNotification, Status: "active"},
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
	was := g.getState() == fsm.Draining
	if was {
		g.setState(fsm.Running)
	}
	return gateway.CancelResult{WasDraining: was, State: g.getState()}, nil
}

// Status implements server.Gateway.
func (g *Gateway) Status() gateway.Status {
	g.record("Status")
	if g.StatusFn != nil {
		return g.StatusFn()
	}
	return gateway.Status{State: g.getState(), Epoch: "boot:1", PID: 42}
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
	g.state = fsm.ShuttingDown
	g.forced = g.forced || force
	return gateway.ShutdownStart{ID: "sd1", Force: g.forced, AlreadyShuttingDown: already}
}
