package gateway

import (
	"slices"
	"sync"
	"time"

	"github.com/quiesce-dev/quiesce/fsm"
)

// HistorySize is how many lifecycle events a Gateway keeps for History:
// the last ones, older ones are dropped.
const HistorySize = 50

// maxHistorySessions bounds the sessions an "interrupted" entry names;
// Count still says how many there were.
const maxHistorySessions = 20

// The kinds of HistoryEntry.
const (
	// HistoryStart: the gateway started (To is running).
	HistoryStart = "start"
	// HistoryTransition: the lifecycle state changed (From, To, Event).
	HistoryTransition = "transition"
	// HistoryDrain: a drain request took effect: one that drained the
	// gateway (through the API or a marker written by another process),
	// or one made through the API while it was already draining (a
	// refresh, Refreshed, or a replacement, WasDraining). Principal,
	// RequestID, Reason and SuppressNotification are the request's;
	// NotPersisted marks one held in memory (its marker unwritable).
	HistoryDrain = "drain"
	// HistoryCancel: the drain was cancelled through the API (RequestID,
	// if the cancel named one; WasDraining).
	HistoryCancel = "cancel"
	// HistoryShutdown: the shutdown sequence began (ShutdownID), or was
	// forced (Force).
	HistoryShutdown = "shutdown"
	// HistoryInterrupted: a forced shutdown cut user turns off (Sessions,
	// at most 20 of them, and Count).
	HistoryInterrupted = "interrupted"
)

// HistoryEntry is one lifecycle event of History. Kind says which fields
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

// history is the ring of the last HistorySize entries. mu guards it:
// writers are lifecycle events (a few a minute at most), readers the API;
// it is never taken on a turn's path.
type history struct {
	mu   sync.Mutex
	seq  uint64
	buf  [HistorySize]HistoryEntry
	next int // index of the slot the next entry takes
	n    int // entries held, at most HistorySize
}

// add numbers e and keeps it, dropping the oldest entry when full.
func (h *history) add(e HistoryEntry) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.seq++
	e.Seq = h.seq
	h.buf[h.next] = e
	h.next = (h.next + 1) % HistorySize
	h.n = min(h.n+1, HistorySize)
}

// list returns the entries held, oldest first.
func (h *history) list() []HistoryEntry {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]HistoryEntry, 0, h.n)
	start := (h.next - h.n + HistorySize) % HistorySize
	for i := range h.n {
		e := h.buf[(start+i)%HistorySize]
		e.Sessions = slices.Clone(e.Sessions)
		out = append(out, e)
	}
	return out
}

// History returns the last HistorySize lifecycle events, oldest first:
// the start, transitions, drain requests with their principal and
// reason, cancels, shutdowns and interrupted sessions. It is kept in
// memory: a restart begins a new one.
func (g *Gateway) History() []HistoryEntry { return g.history.list() }

// record adds an entry stamped now.
func (g *Gateway) record(e HistoryEntry) {
	e.At = g.cfg.Now().UTC()
	g.history.add(e)
}

// recordDrain adds a drain entry for the drain request d (nil: none).
func (g *Gateway) recordDrain(d *DrainInfo, wasDraining, refreshed bool) {
	if d == nil {
		return
	}
	g.record(HistoryEntry{Kind: HistoryDrain, Principal: d.Principal, RequestID: d.RequestID, Reason: d.Reason,
		SuppressNotification: d.SuppressNotification, WasDraining: wasDraining, Refreshed: refreshed,
		NotPersisted: !d.Persisted})
}

// recordInterrupted adds an interrupted entry for sessions.
func (g *Gateway) recordInterrupted(shutdownID string, sessions []string) {
	if len(sessions) == 0 {
		return
	}
	named := slices.Clone(sessions[:min(len(sessions), maxHistorySessions)])
	g.record(HistoryEntry{Kind: HistoryInterrupted, ShutdownID: shutdownID, Sessions: named, Count: len(sessions)})
}
