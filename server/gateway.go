package server

import (
	"context"

	"github.com/quiesce-dev/quiesce/api"
	"github.com/quiesce-dev/quiesce/gateway"
)

// Gateway is what the server needs from the runtime. *gateway.Gateway
// implements it; tests use a fake. All methods must be safe for concurrent
// use.
type Gateway interface {
	// Turn runs one conversation turn for session and returns the reply.
	// Returns a *gateway.RefusedError when the gate refuses the turn,
	// gateway.ErrSessionBusy, gateway.ErrInvalid, gateway.ErrInterrupted or
	// an error wrapping gateway.ErrAgent.
	Turn(ctx context.Context, session, text string) (string, error)
	// Stream runs a turn like Turn, calling req.Started once it has been
	// accepted and req.Delta with partial output.
	Stream(ctx context.Context, req gateway.TurnRequest) (string, error)
	// Event accepts an internal event for session: never refused, started
	// or spooled. Returns gateway.ErrInvalid for bad input and an error
	// wrapping gateway.ErrSpoolUnavailable when the event could not be
	// spooled (it was not accepted).
	Event(ctx context.Context, session, text string) (api.EventReceipt, error)
	// BeginDrain writes the drain marker and reconciles before returning,
	// so a turn started after it returns is refused. Once the shutdown
	// began it returns gateway.ErrShuttingDown; a marker path that is not a
	// usable file gives an error wrapping gateway.ErrMarkerUnusable whose
	// innermost error names the path and what is there. Either way nothing
	// was changed.
	BeginDrain(ctx context.Context, req gateway.DrainRequest) (gateway.DrainResult, error)
	// CancelDrain removes the drain marker and reconciles. Returns
	// gateway.ErrRequestMismatch, changing nothing, when requestID is not
	// empty and is not the active drain's (an error that is also an
	// ActiveRequestIDer lets the answer name the active id), and
	// gateway.ErrShuttingDown or gateway.ErrMarkerUnusable as BeginDrain.
	CancelDrain(ctx context.Context, requestID string) (gateway.CancelResult, error)
	// ReplayEvents moves the rejected internal events back into the spool
	// (they run again, once each). An error wrapping
	// gateway.ErrSpoolUnavailable means nothing was moved.
	ReplayEvents(ctx context.Context) (api.ReplayResult, error)
	// Status returns a snapshot of the gateway.
	Status() api.Status
	// Turns returns the turns in flight, oldest first.
	Turns() []api.TurnInfo
	// History returns the last lifecycle events, oldest first.
	History() []api.HistoryEntry
	// WaitIdle blocks until no turn is in flight or ctx is done, and then
	// returns ctx.Err().
	WaitIdle(ctx context.Context) error
	// WaitChange blocks until the status has changed since the one whose
	// Seq is after (Status.Seq > after) or ctx is done, and returns the
	// status then, with ctx.Err() when ctx ended the wait.
	WaitChange(ctx context.Context, after uint64) (api.Status, error)
	// BeginShutdown starts the shutdown sequence without waiting for it;
	// a repeat without force changes nothing (AlreadyShuttingDown), force
	// cuts the remaining turns off.
	BeginShutdown(force bool) gateway.ShutdownStart
}

var _ Gateway = (*gateway.Gateway)(nil)
