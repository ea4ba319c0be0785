package gateway

import (
	"slices"
	"sync"

	"github.com/quiesce-dev/quiesce/api"
)

// HistorySize is how many lifecycle events a Gateway keeps for History:
// the last ones, older ones are dropped.
const HistorySize = 50

// maxHistorySessions bounds the sessions an "interrupted" entry names;
// Count still says how many there were.
const maxHistorySessions = 20

// The kinds of api.HistoryEntry.
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

// history is the ring of the last HistorySize entries. mu guards it:
// writers are lifecycle events (a few a minute at most), readers the API;
// it is never taken on a turn's path.
type history struct {
	mu   sync.Mutex
	seq  uint64
	buf  [HistorySize]api.HistoryEntry
	next int // index of the slot the next entry takes
	n    int // entries held, at most HistorySize
}

// add numbers e and keeps it, dropping the oldest entry when full.
func (h *history) add(e api.HistoryEntry) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.seq++
	e.Seq = h.seq
	h.buf[h.next] = e
	h.next = (h.next + 1) % HistorySize
	h.n = min(h.n+1, HistorySize)
}

// list returns the entries held, oldest first.
func (h *history) list() []api.HistoryEntry {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]api.HistoryEntry, 0, h.n)
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
func (g *Gateway) History() []api.HistoryEntry { return g.history.list() }

// record adds an entry stamped now.
func (g *Gateway) record(e api.HistoryEntry) {
	e.At = g.cfg.Now().UTC()
	g.history.add(e)
}

// recordDrain adds a drain entry for the drain request d (nil: none).
func (g *Gateway) recordDrain(d *api.DrainInfo, wasDraining, refreshed bool) {
	if d == nil {
		return
	}
	g.record(api.HistoryEntry{Kind: HistoryDrain, Principal: d.Principal, RequestID: d.RequestID, Reason: d.Reason,
		SuppressNotification: d.SuppressNotification, WasDraining: wasDraining, Refreshed: refreshed,
		NotPersisted: !d.Persisted})
}

// recordInterrupted adds an interrupted entry for sessions.
func (g *Gateway) recordInterrupted(shutdownID string, sessions []string) {
	if len(sessions) == 0 {
		return
	}
	named := slices.Clone(sessions[:min(len(sessions), maxHistorySessions)])
	g.record(api.HistoryEntry{Kind: HistoryInterrupted, ShutdownID: shutdownID, Sessions: named, Count: len(sessions)})
}
