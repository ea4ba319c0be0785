package gateway

import (
	"errors"
	"fmt"
	"time"

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
	// ErrAgent wraps an agent failure (error, non-zero exit or panic).
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

// DrainRequest asks for an external drain.
type DrainRequest struct {
	Principal            string // who asked (recorded in the marker and logs)
	SuppressNotification bool   // skip the home-channel broadcast if the drain ends in shutdown
	RequestID            string // optional; generated when empty
}

// DrainInfo is the drain marker as the API shows it.
type DrainInfo struct {
	Action               string    `json:"action"`
	RequestedAt          time.Time `json:"requested_at,omitzero"` // absent for a contentless marker
	Principal            string    `json:"principal"`
	Epoch                string    `json:"epoch"`
	SuppressNotification bool      `json:"suppress_notification"`
	RequestID            string    `json:"request_id"`
	// Status is "active", "stale", "expired" or "contentless".
	Status string `json:"status"`
	// ExpiresAt is when the marker stops draining (its age reaches the
	// max age); zero when unknown.
	ExpiresAt time.Time `json:"expires_at,omitzero"`
}

// DrainResult is what BeginDrain did.
type DrainResult struct {
	Drain        DrainInfo // the marker as written
	State        fsm.State // after reconciling
	ActiveAgents int
	WasDraining  bool      // an active drain request was replaced
	ExpiresAt    time.Time // when the marker expires (requested_at + max age)
}

// CancelResult is what CancelDrain did.
type CancelResult struct {
	WasDraining  bool // a marker existed and was removed
	State        fsm.State
	ActiveAgents int
}

// Status is a snapshot of the gateway for the API and the CLI.
type Status struct {
	// Seq grows on every change the state file records (see WaitChange).
	Seq   uint64    `json:"seq"`
	State fsm.State `json:"state"`
	// StateSince is when the gateway entered State (its start, if it has
	// not changed since), taken as the transition's first step, before
	// the state file is written or the change logged.
	StateSince    time.Time  `json:"state_since,omitzero"`
	ActiveAgents  int        `json:"active_agents"`
	Drain         *DrainInfo `json:"drain"` // nil when no marker file exists
	Epoch         string     `json:"epoch"`
	PID           int        `json:"pid"`
	UptimeSeconds float64    `json:"uptime_seconds"`
	// EpochError says why the epoch could not be computed ("" when it
	// could): markers then drain by presence only and never suppress.
	EpochError string `json:"epoch_error,omitempty"`
	// OldestTurnSeconds is the age of the oldest turn in flight (0 if none).
	OldestTurnSeconds float64 `json:"oldest_turn_seconds"`
	// SpooledEvents counts internal events waiting or running.
	SpooledEvents int `json:"spooled_events"`
	// WebhookPending counts the notifications the webhook could not
	// deliver yet and keeps for redelivery (webhook.pending.jsonl; 0
	// without a webhook).
	WebhookPending int `json:"webhook_pending"`
	// Live reports, for LocalStatus, whether a gateway holds the home's
	// lock (its state file is current); always true from a live gateway.
	Live bool `json:"live"`
}

// EventReceipt acknowledges an internal event.
type EventReceipt struct {
	ID      string `json:"event_id"`
	Spooled bool   `json:"spooled"` // written to the spool (not running) rather than started
}

// ReplayResult is what ReplayEvents (or LocalReplay) did: the rejected
// events it moved back into the spool, in the order they will run.
type ReplayResult struct {
	// Moved counts the events moved back (also those a crashed earlier
	// replay had already put in the spool: each is there once).
	Moved int `json:"moved"`
	// EventIDs are the ids of the moved events.
	EventIDs []string `json:"event_ids"`
	// Unreplayable counts the lines of the rejected file that are not
	// events (a spool line that could not be parsed): they stay there.
	Unreplayable int `json:"unreplayable"`
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
