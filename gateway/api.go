package gateway

import (
	"errors"
	"fmt"
	"syscall"
	"time"

	"github.com/quiesce-dev/quiesce/agent"
	"github.com/quiesce-dev/quiesce/api"
	"github.com/quiesce-dev/quiesce/fsm"
	"github.com/quiesce-dev/quiesce/marker"
)

// Sentinel errors callers branch on (test with errors.Is).
var (
	// ErrRefused is wrapped by *RefusedError: the gate refused a new turn
	// because the gateway is not running.
	ErrRefused = errors.New("gateway: not accepting new turns")
	// ErrSessionBusy is returned by Turn when the session already has a
	// turn running (one turn per session).
	ErrSessionBusy = errors.New("gateway: session busy")
	// ErrInterrupted is returned by Turn when a forced shutdown cut the
	// turn off.
	ErrInterrupted = errors.New("gateway: turn interrupted by shutdown")
	// ErrInvalid is returned for bad input (empty session id, empty text,
	// a session id with control characters or over 256 bytes).
	ErrInvalid = errors.New("gateway: invalid input")
	// ErrRequestMismatch is returned by CancelDrain when a request id was
	// given and is not the active drain's; the marker is left untouched.
	ErrRequestMismatch = marker.ErrRequestMismatch
	// ErrAgent is wrapped by *AgentError: the agent failed the turn
	// (error, non-zero exit, panic, an upstream that gave no reply).
	ErrAgent = errors.New("gateway: agent failed")
	// ErrSpoolUnavailable is returned by Event when the event could not be
	// appended to the spool (disk full, home unwritable): nothing was
	// accepted and the caller should retry later.
	ErrSpoolUnavailable = errors.New("gateway: event spool unavailable")
	// ErrMarkerUnusable is returned by BeginDrain and CancelDrain (and
	// LocalDrain, LocalCancel) when the marker path holds something that
	// is not a regular file (a directory, FIFO, symlink): nothing was
	// changed; the wrapped error names the path.
	ErrMarkerUnusable = errors.New("gateway: drain marker unusable")
	// ErrMarkerUnwritable is wrapped by the *UnwritableError BeginDrain
	// returns when the drain marker could not be written (a full disk, a
	// read-only home): the gate closed anyway, the drain is in effect in
	// memory only (a restart forgets it) until a later write succeeds or a
	// cancel ends it. LocalDrain wraps it too (nothing is drained then:
	// the marker is the only channel it has).
	ErrMarkerUnwritable = errors.New("gateway: drain marker unwritable")
	// ErrDrainCancelled is returned by BeginDrain for a drain waiting in an
	// announce window (DrainRequest.Announce) that a cancel ended: nothing
	// was written and the gateway is ready again.
	ErrDrainCancelled = errors.New("gateway: drain cancelled during its announce window")
	// ErrShuttingDown is returned by BeginDrain and CancelDrain once the
	// shutdown sequence has begun (shutdown wins): the marker is untouched.
	ErrShuttingDown = errors.New("gateway: shutting down")
	// ErrLocked is returned by New when another live process holds the
	// home's lock (one home, one gateway); the error names its pid.
	ErrLocked = errors.New("gateway: home is held by another gateway")
	// ErrHome is returned by New when a file of the home cannot be used
	// (a FIFO, directory or symlink where a file belongs, or unreadable);
	// the error names the file.
	ErrHome = errors.New("gateway: unusable file in home")
)

// RefusedError is returned by Turn when the gate refuses a new turn. It
// carries the state the gateway was in; errors.Is(err, ErrRefused) holds.
// Turn returns one shared value per state (a refusal allocates nothing),
// so callers must not modify it.
type RefusedError struct{ State fsm.State }

// Error implements error.
func (e *RefusedError) Error() string {
	return fmt.Sprintf("gateway: %s: not accepting new turns", e.State)
}

// Unwrap makes errors.Is(err, ErrRefused) true.
func (e *RefusedError) Unwrap() error { return ErrRefused }

// MismatchError is returned by CancelDrain when the request id given is
// not the active drain's; errors.Is(err, ErrRequestMismatch) holds. Active
// is the active drain's request id ("" if it has none).
type MismatchError struct{ Active string }

// Error implements error.
func (e *MismatchError) Error() string {
	if e.Active == "" {
		return ErrRequestMismatch.Error() + " (the active drain has no request id)"
	}
	return ErrRequestMismatch.Error() + " (active request_id " + e.Active + ")"
}

// Unwrap makes errors.Is(err, ErrRequestMismatch) true.
func (e *MismatchError) Unwrap() error { return ErrRequestMismatch }

// ActiveRequestID returns the active drain's request id.
func (e *MismatchError) ActiveRequestID() string { return e.Active }

// UnwritableError is returned by BeginDrain when the drain marker could
// not be written; errors.Is(err, ErrMarkerUnwritable) holds, and so does
// errors.Is(err, cause) for the cause (syscall.ENOSPC, say). The gate
// closed anyway (fail safe toward quiescing): Result is the drain in
// effect, in memory only (Result.Drain.Persisted is false).
type UnwritableError struct {
	Result DrainResult
	// Path is the marker's path.
	Path string
	// Err is why the write failed.
	Err error
}

// Error implements error.
func (e *UnwritableError) Error() string {
	return fmt.Sprintf("%v: %s: %v (draining in memory only)", ErrMarkerUnwritable, e.Path, e.Err)
}

// Unwrap makes errors.Is(err, ErrMarkerUnwritable) and errors.Is(err,
// cause) true.
func (e *UnwritableError) Unwrap() []error { return []error{ErrMarkerUnwritable, e.Err} }

// Cause says briefly why the write failed: the system's text for the
// errno ("no space left on device", "read-only file system") when there
// is one, else the error's text.
func (e *UnwritableError) Cause() string {
	if errno, ok := errors.AsType[syscall.Errno](e.Err); ok {
		return errno.Error()
	}
	return e.Err.Error()
}

// AgentError is returned by Turn and Stream when the agent failed the
// turn (an error, a non-zero exit, a panic, an http agent's upstream that
// gave no reply); errors.Is(err, ErrAgent) holds, and so does errors.As
// for the agent's own error. Besides Err, whose text may hold what a
// client must not see, it carries what may be told about an upstream.
type AgentError struct {
	// Upstream is true when an http agent's upstream gave no reply; the
	// fields below are about it.
	Upstream bool
	// Status is the upstream's HTTP status (0 when it never answered).
	Status int
	// Timeout is the agent's timeout when the upstream did not answer
	// within it (0 otherwise).
	Timeout time.Duration
	// Err is the agent's error.
	Err error
}

// newAgentError wraps the agent's error, keeping what an upstream's
// failure may tell a client.
func newAgentError(err error) *AgentError {
	ae := &AgentError{Err: err}
	if ue, ok := errors.AsType[*agent.UpstreamError](err); ok {
		ae.Upstream, ae.Status, ae.Timeout = true, ue.Status, ue.Timeout
	}
	return ae
}

// Error implements error.
func (e *AgentError) Error() string { return ErrAgent.Error() + ": " + e.Err.Error() }

// Unwrap makes errors.Is(err, ErrAgent) true and keeps the agent's error
// reachable.
func (e *AgentError) Unwrap() []error { return []error{ErrAgent, e.Err} }

// DrainRequest asks for an external drain, or refreshes the active one.
//
// A request whose RequestID names the active drain (an active marker's,
// or the drain held in memory when the marker could not be written)
// refreshes it: requested_at (and with it the expiry) renews, the
// principal stays the one who asked first, and SuppressNotification and
// Reason stay as they were unless set (non-nil) here. Any other request
// replaces whatever drain is active; nil fields are then false and "".
type DrainRequest struct {
	Principal            string  // who asked (recorded in the marker and logs)
	SuppressNotification *bool   // skip the home-channel broadcast if the drain ends in shutdown; nil: keep (refresh) or false
	RequestID            string  // optional; generated when empty
	Reason               *string // why (marker.CheckReason); nil: keep (refresh) or ""
	// Announce, when above zero (at most MaxAnnounce), announces the drain
	// before it takes effect: Ready turns false (so /readyz fails and a
	// load balancer stops sending new turns) while the gate stays open for
	// Announce; then the request is applied and the gate closes, and only
	// then does BeginDrain return. It matters only while running: when a
	// drain is already in effect the gate is closed and the request
	// applies at once. See BeginDrain for joins, cancel and shutdown.
	Announce time.Duration
}

// DrainResult is what BeginDrain did.
type DrainResult struct {
	Drain        api.DrainInfo // the marker as written; Drain.ExpiresAt is when it expires (requested_at + max age)
	State        fsm.State     // after reconciling
	ActiveAgents int
	WasDraining  bool // a drain request was active (replaced, or refreshed)
	Refreshed    bool // the request named the active drain and refreshed it
}

// CancelResult is what CancelDrain did.
type CancelResult struct {
	WasDraining  bool // a marker existed and was removed
	State        fsm.State
	ActiveAgents int
}

// ShutdownStart is what BeginShutdown did.
type ShutdownStart struct {
	ID string `json:"shutdown_id"`
	// Force reports that the sequence is now forced (this call or an
	// earlier one asked for it).
	Force bool `json:"force"`
	// AlreadyShuttingDown reports that the sequence was already running:
	// a repeat without force changed nothing.
	AlreadyShuttingDown bool `json:"already_shutting_down"`
}

// ShutdownReport tells what a shutdown did.
type ShutdownReport struct {
	ID          string   `json:"shutdown_id"`
	Broadcast   bool     `json:"broadcast"`   // the home broadcast was sent
	Suppressed  bool     `json:"suppressed"`  // the marker suppressed it
	Interrupted []string `json:"interrupted"` // sessions cut off (each pinged once)
	Forced      bool     `json:"forced"`
}

// Metrics receives the events /metrics counts. Implementations must be
// cheap and safe for concurrent use; a nil Metrics in Config is allowed.
type Metrics interface {
	// TurnEnded counts a turn by result: "ok", "error", "refused",
	// "busy", "interrupted".
	TurnEnded(result string)
	// TurnDuration observes how long an accepted turn ran (from claiming
	// its session to its end), by result: "ok", "error", "interrupted".
	TurnDuration(result string, d time.Duration)
	// DrainReaction observes the time from a drain request (the marker's
	// requested_at) to the gate closing.
	DrainReaction(d time.Duration)
	// EventRejected counts an internal event moved to the rejected file
	// after its last failed try.
	EventRejected()
	// EventRetried counts a failed try of an internal event that will be
	// tried again (after a backoff).
	EventRetried()
	// MarkerRead counts a reconcile's marker read by outcome: absent,
	// active, contentless, stale or expired.
	MarkerRead(outcome string)
	// Notified counts a notification outcome for a sink: result is one
	// of notify's Result* constants (delivered, retried, undelivered,
	// failed). It is the notify.Observer the gateway's Notifier reports to.
	Notified(sink, result string)
}
