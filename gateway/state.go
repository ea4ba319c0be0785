package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quiesce-dev/quiesce/api"
	"github.com/quiesce-dev/quiesce/fsm"
	"github.com/quiesce-dev/quiesce/internal/homefile"
	"github.com/quiesce-dev/quiesce/marker"
)

// stateWriteGap is the least time between two coalesced state writes
// (in-flight changes); transitions are written at once.
const stateWriteGap = 250 * time.Millisecond

// stateFile is the content of gateway_state.json.
type stateFile struct {
	GatewayState fsm.State      `json:"gateway_state"`
	StateSince   time.Time      `json:"state_since,omitzero"`
	ActiveAgents int            `json:"active_agents"`
	PID          int            `json:"pid"`
	Epoch        string         `json:"epoch"`
	StartedAt    time.Time      `json:"started_at"`
	UpdatedAt    time.Time      `json:"updated_at"`
	Drain        *api.DrainInfo `json:"drain"`
	// OldestTurnSeconds is the age of the oldest turn in flight.
	OldestTurnSeconds float64 `json:"oldest_turn_seconds"`
	// Seq is the gateway's change counter (api.Status.Seq) this write ends.
	Seq uint64 `json:"seq"`
	// Addr is where the gateway's HTTP API listens (SetListenAddr): local
	// status asks a live gateway there, over loopback, for its state.
	Addr string `json:"addr,omitempty"`
}

// stateFileLimit bounds a read of the state file (a few hundred bytes).
const stateFileLimit = 1 << 20

// stateWriter writes gateway_state.json atomically: at once on every
// transition (by the caller of Fire, with the marker it read), coalesced
// (at most one write per stateWriteGap) on in-flight changes. kick never
// blocks and never does I/O.
//
// Each write also ends a change (WaitChange): cmu guards the change
// counter and the channel that is closed and replaced when it grows.
type stateWriter struct {
	g     *Gateway
	path  string
	mu    sync.Mutex    // one write at a time, each with a fresh snapshot
	fixed *marker.State // set by fix; guarded by mu
	wake  chan struct{}

	cmu   sync.Mutex
	count uint64
	ch    chan struct{}

	// addr is the listen address SetListenAddr recorded, read by every
	// write without taking mu's turn.
	addr atomic.Pointer[string]
}

// SetListenAddr records addr, where the HTTP API serving this gateway
// listens, in the state file (from its next write: call it before Start),
// so that local status can ask a live gateway for its state instead of
// trusting a file whose last write may have failed.
func (g *Gateway) SetListenAddr(addr string) { g.state.addr.Store(&addr) }

func newStateWriter(g *Gateway) *stateWriter {
	return &stateWriter{g: g, path: filepath.Join(g.cfg.Home, StateFileName), wake: make(chan struct{}, 1),
		ch: make(chan struct{})}
}

// seq returns the change counter.
func (w *stateWriter) seq() uint64 {
	w.cmu.Lock()
	defer w.cmu.Unlock()
	return w.count
}

// changed returns the channel the next change closes, and the counter.
func (w *stateWriter) changed() (<-chan struct{}, uint64) {
	w.cmu.Lock()
	defer w.cmu.Unlock()
	return w.ch, w.count
}

// bump records a change and wakes WaitChange callers.
func (w *stateWriter) bump() {
	w.cmu.Lock()
	w.count++
	close(w.ch)
	w.ch = make(chan struct{})
	w.cmu.Unlock()
}

// kick asks for a coalesced write.
func (w *stateWriter) kick() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// writeNow writes the current state with the marker read under the lock,
// so the snapshot and the reading are of one moment (once shutting down:
// the shutdown's reading, see fix).
func (w *stateWriter) writeNow() { w.write(nil) }

// writeWith writes the current state with st, the marker as its caller
// read it (a transition's caller has just read it: no second read).
func (w *stateWriter) writeWith(st marker.State) { w.write(&st) }

// fix makes st the marker reading of every later write: the shutdown's
// one reading, which the marker cannot change any more.
func (w *stateWriter) fix(st marker.State) {
	w.mu.Lock()
	w.fixed = &st
	w.mu.Unlock()
}

func (w *stateWriter) write(st *marker.State) {
	w.mu.Lock()
	defer w.mu.Unlock()
	g := w.g
	switch {
	case w.fixed != nil:
		st = w.fixed
	case st == nil:
		read := g.reader.Read()
		st = &read
	}
	snap := g.m.Snapshot()
	doc := stateFile{
		GatewayState: snap.State, StateSince: g.stateSince(snap.State), ActiveAgents: snap.InFlight, PID: os.Getpid(), Epoch: g.epoch,
		StartedAt: g.started.UTC(), UpdatedAt: g.cfg.Now().UTC(), Drain: g.drainView(*st),
		OldestTurnSeconds: g.oldestTurn().Seconds(), Seq: w.seq() + 1, // bump below makes it so
	}
	if a := w.addr.Load(); a != nil {
		doc.Addr = *a
	}
	data, _ := json.MarshalIndent(doc, "", "  ")
	// No directory fsync: after a power loss the previous state file may
	// come back (never a torn one), and readers judge liveness by the lock.
	if err := homefile.WriteAtomicNoDirSync(w.path, append(data, '\n'), 0o600); err != nil {
		g.log.Error("write state file", "path", w.path, "error", err)
	}
	w.bump()
}

// run serves kicks until ctx is done.
func (w *stateWriter) run(ctx context.Context) {
	gap := time.NewTimer(0)
	defer gap.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-w.wake:
		}
		if snap := w.g.m.Snapshot(); snap.State == fsm.Stopped || (snap.State == fsm.ShuttingDown && snap.InFlight == 0) {
			// The last turn of a shutdown ended: the stop transition's
			// own write follows at once, so only one fsync'd write sits
			// between the last reply and the exit.
			continue
		}
		w.writeNow()
		gap.Reset(stateWriteGap)
		select {
		case <-ctx.Done():
			return
		case <-gap.C:
		}
	}
}

// readStateFile reads home's gateway_state.json through homefile's
// non-blocking opener: a FIFO, directory or symlink there is an error
// naming the file (wrapping homefile.ErrNotRegular), never a hang.
func readStateFile(home string) (stateFile, error) {
	var doc stateFile
	path := filepath.Join(home, StateFileName)
	data, _, truncated, err := homefile.ReadFile(path, stateFileLimit)
	if err != nil {
		return doc, fmt.Errorf("gateway: state file: %w", err)
	}
	if truncated {
		return doc, fmt.Errorf("gateway: state file %s: larger than %d bytes: not a state file quiesce wrote", path, stateFileLimit)
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		return doc, fmt.Errorf("gateway: state file %s: %w", path, err)
	}
	return doc, nil
}
