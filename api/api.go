package api

import (
	"time"

	"github.com/quiesce-dev/quiesce/fsm"
)

// The drain actions accepted by POST /api/gateway/drain.
const (
	ActionDrain  = "drain"
	ActionCancel = "cancel"
)

// DrainBody is the body of POST /api/gateway/drain. Every field is
// optional and an empty body means {"action":"drain"}. RequestID names the
// drain to create or refresh (drain) or the one to cancel (cancel). A
// drain naming the active drain's request id refreshes it: its
// requested_at renews, and suppress_notification and reason stay as they
// were unless given; so an absent (or null) flag or reason is nil here,
// not false or "". Reason is at most 200 characters of printable text.
// AnnounceSeconds (drain only, a number from 0 to the server's MaxAnnounceSeconds)
// announces the drain first: /readyz fails at once while the gate stays
// open that long, then the drain takes effect and only then is it
// answered (see gateway.DrainRequest.Announce); 0 or absent: at once.
type DrainBody struct {
	Action               *string  `json:"action,omitempty"`
	SuppressNotification *bool    `json:"suppress_notification,omitempty"`
	RequestID            string   `json:"request_id,omitempty"`
	Reason               *string  `json:"reason,omitempty"`
	AnnounceSeconds      *float64 `json:"announce_seconds,omitempty"`
}

// DrainResponse answers a drain: the upstream shape (ok, action,
// requested_at, draining, suppress_notification) plus who asked, the
// request id, the state after reconciling, whether it replaced an active
// drain request (was_draining), whether it refreshed the active one
// (refreshed), the reason, whether the marker was written (persisted:
// always true in a 200; see CodeMarkerUnwritable) and when the marker
// expires (expires_at, absent when unknown).
type DrainResponse struct {
	OK                   bool      `json:"ok"`
	Action               string    `json:"action"`
	RequestedAt          time.Time `json:"requested_at"`
	Draining             bool      `json:"draining"`
	SuppressNotification bool      `json:"suppress_notification"`
	Principal            string    `json:"principal"`
	RequestID            string    `json:"request_id"`
	State                fsm.State `json:"state"`
	ActiveAgents         int       `json:"active_agents"`
	WasDraining          bool      `json:"was_draining"`
	Refreshed            bool      `json:"refreshed"`
	Reason               string    `json:"reason"`
	Persisted            bool      `json:"persisted"`
	ExpiresAt            time.Time `json:"expires_at,omitzero"`
}

// CancelResponse answers a cancel. WasDraining reports whether a drain
// marker existed and was removed; a repeated cancel answers false.
type CancelResponse struct {
	OK           bool      `json:"ok"`
	Action       string    `json:"action"`
	WasDraining  bool      `json:"was_draining"`
	State        fsm.State `json:"state"`
	ActiveAgents int       `json:"active_agents"`
}

// StatusResponse is the body of GET /api/gateway/status: Status,
// plus, only for ?wait=idle, whether the gateway became idle before the
// timeout.
type StatusResponse struct {
	Status
	Idle *bool `json:"idle,omitempty"`
}

// Paths of the read-only lists (GET, token required).
const (
	TurnsPath   = "/api/gateway/turns"
	HistoryPath = "/api/gateway/history"
)

// TurnsResponse is the body of GET /api/gateway/turns: the turns in
// flight, oldest first.
type TurnsResponse struct {
	Turns []TurnInfo `json:"turns"`
}

// HistoryResponse is the body of GET /api/gateway/history: the last
// gateway.HistorySize lifecycle events, oldest first.
type HistoryResponse struct {
	Events []HistoryEntry `json:"events"`
}

// ShutdownBody is the body of POST /api/gateway/shutdown (optional).
type ShutdownBody struct {
	Force bool `json:"force"`
}

// ShutdownResponse answers POST /api/gateway/shutdown (202 Accepted: the
// sequence runs on; poll status or /healthz to see it end).
type ShutdownResponse struct {
	OK         bool      `json:"ok"`
	ShutdownID string    `json:"shutdown_id"`
	Force      bool      `json:"force"`
	State      fsm.State `json:"state"`
	// AlreadyShuttingDown reports a repeat: without force it changed nothing.
	AlreadyShuttingDown bool `json:"already_shutting_down"`
}

// MessageBody is the body of POST /v1/sessions/{id}/messages.
type MessageBody struct {
	Text string `json:"text"`
}

// MessageResponse answers a turn with the agent's reply.
type MessageResponse struct {
	Session string `json:"session"`
	Reply   string `json:"reply"`
}

// EventBody is the body of POST /api/gateway/events.
type EventBody struct {
	Session string `json:"session"`
	Text    string `json:"text"`
}

// ReplayBody is the body of POST /api/gateway/events/replay: empty, or
// an empty object.
type ReplayBody struct{}

// ReplayResponse answers POST /api/gateway/events/replay: how many
// rejected events were moved back into the spool and their ids, in the
// order they run, plus the lines of the rejected file that are not events
// (unparseable spool lines), which stay there.
type ReplayResponse struct {
	OK bool `json:"ok"`
	ReplayResult
}

// HealthResponse answers /healthz.
type HealthResponse struct {
	OK    bool      `json:"ok"`
	State fsm.State `json:"state,omitempty"`
}

// ReadyResponse answers /readyz, without a token: 200 with ok true while
// running, else 503 with ok false and the error body's error and message
// (not_ready). Both carry what the status page shows anyone (state and
// turns in flight) and what local status needs to tell this gateway's
// live state from its state file's (pid, seq, uptime); never the drain
// request, whose principal and reason need a token.
type ReadyResponse struct {
	OK      bool      `json:"ok"`
	Error   string    `json:"error,omitempty"`
	Message string    `json:"message,omitempty"`
	State   fsm.State `json:"state"`
	// StateSince is when the gateway entered State.
	StateSince        time.Time `json:"state_since,omitzero"`
	ActiveAgents      int       `json:"active_agents"`
	OldestTurnSeconds float64   `json:"oldest_turn_seconds"`
	PID               int       `json:"pid"`
	Seq               uint64    `json:"seq"`
	UptimeSeconds     float64   `json:"uptime_seconds"`
}
