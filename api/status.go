package api

import (
	"time"

	"github.com/quiesce-dev/quiesce/fsm"
)

// DrainInfo is the drain marker as the API shows it.
type DrainInfo struct {
	Action               string    `json:"action"`
	RequestedAt          time.Time `json:"requested_at,omitzero"` // absent for a contentless marker
	Principal            string    `json:"principal"`
	Epoch                string    `json:"epoch"`
	SuppressNotification bool      `json:"suppress_notification"`
	RequestID            string    `json:"request_id"`
	// Reason says why the drain was requested ("" when not given).
	Reason string `json:"reason"`
	// Status is "active", "stale", "expired" or "contentless" (what the
	// marker says), or "announcing" (gateway.DrainStatusAnnouncing) while an
	// announce window is open and no drain is in effect yet.
	Status string `json:"status"`
	// Persisted is false for a drain held in memory only, because the
	// marker could not be written (see gateway.ErrMarkerUnwritable); a restart
	// forgets such a drain. It is true for every drain read from the
	// marker.
	Persisted bool `json:"persisted"`
	// ExpiresAt is when the marker stops draining (its age reaches the
	// max age); zero when unknown.
	ExpiresAt time.Time `json:"expires_at,omitzero"`
	// AnnounceUntil is, while an announce window is open, when the gate
	// will close (the window's end); zero otherwise.
	AnnounceUntil time.Time `json:"announce_until,omitzero"`
}

// Status is a snapshot of the gateway for the API and the CLI.
type Status struct {
	// Seq grows on every change the state file records (see WaitChange).
	Seq   uint64    `json:"seq"`
	State fsm.State `json:"state"`
	// StateSince is when the gateway entered State (its start, if it has
	// not changed since), taken as the transition's first step, before
	// the state file is written or the change logged.
	StateSince time.Time `json:"state_since,omitzero"`
	// Ready is true exactly when /readyz answers 200: running, with no
	// announce window open (gateway.Gateway.Ready). A status read from the home
	// (gateway.LocalStatus) says the same of a live gateway, false of a dead one.
	Ready         bool       `json:"ready"`
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
	// Live reports, for gateway.LocalStatus, whether a gateway holds the home's
	// lock (its state file is current); always true from a live gateway.
	Live bool `json:"live"`
	// Version is the version of the running build (gateway.Config.Version).
	Version string `json:"version"`
	// Agent is what the agent did: its kind and failures. Nil when not
	// known (gateway.LocalStatus).
	Agent *AgentStatus `json:"agent,omitempty"`
}

// AgentStatus is the agent's part of Status: its kind and how often it
// failed a turn by itself (an error, a non-zero exit, an upstream's error
// answer, a panic; not a cancel by the client or a forced shutdown), with
// the last failure. A gateway whose agent fails every turn stays ready:
// readiness is about the gate, not the upstream.
type AgentStatus struct {
	Kind        string    `json:"kind"`
	Failures    uint64    `json:"failures"`
	LastError   string    `json:"last_error,omitempty"`
	LastErrorAt time.Time `json:"last_error_at,omitzero"`
}

// TurnInfo is one turn in flight (gateway.Gateway.Turns).
type TurnInfo struct {
	Session    string    `json:"session"`
	TurnID     string    `json:"turn_id"`
	StartedAt  time.Time `json:"started_at"`
	AgeSeconds float64   `json:"age_seconds"`
	// Streaming: the client asked for server-sent events.
	Streaming bool `json:"streaming"`
	// System: an internal event's turn, EventID its event.
	System  bool   `json:"system"`
	EventID string `json:"event_id,omitempty"`
}

// ReplayResult is what gateway.Gateway.ReplayEvents (or gateway.LocalReplay) did: the rejected
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

// HistoryEntry is one lifecycle event of gateway.Gateway.History. Kind (one of gateway.History*) says which fields
// are set.
type HistoryEntry struct {
	// Seq numbers the entries of this process in order, from 1.
	Seq  uint64    `json:"seq"`
	At   time.Time `json:"at"`
	Kind string    `json:"kind"`
	// From, To and Event describe a transition (To alone: a start).
	From  fsm.State `json:"from,omitempty"`
	To    fsm.State `json:"to,omitempty"`
	Event fsm.Event `json:"event,omitempty"`
	// Principal, RequestID, Reason and SuppressNotification describe a
	// drain request (RequestID also a cancel's).
	Principal            string `json:"principal,omitempty"`
	RequestID            string `json:"request_id,omitempty"`
	Reason               string `json:"reason,omitempty"`
	SuppressNotification bool   `json:"suppress_notification,omitempty"`
	// WasDraining: a drain replaced or refreshed an active request; a
	// cancel removed one. Refreshed: the drain named the active request
	// and renewed it, keeping what it did not set.
	WasDraining bool `json:"was_draining,omitempty"`
	Refreshed   bool `json:"refreshed,omitempty"`
	// NotPersisted: the drain's marker could not be written; the drain
	// was held in memory only.
	NotPersisted bool   `json:"not_persisted,omitempty"`
	ShutdownID   string `json:"shutdown_id,omitempty"`
	Force        bool   `json:"force,omitempty"`
	// Sessions and Count describe interrupted sessions.
	Sessions []string `json:"sessions,omitempty"`
	Count    int      `json:"count,omitempty"`
}

// EventReceipt acknowledges an internal event (the 202 answer of POST
// /api/gateway/events).
type EventReceipt struct {
	ID      string `json:"event_id"`
	Spooled bool   `json:"spooled"` // written to the spool (not running) rather than started
}
