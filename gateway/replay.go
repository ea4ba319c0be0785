package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/quiesce-dev/quiesce/api"
	"github.com/quiesce-dev/quiesce/internal/homefile"
)

const (
	// maxRejectedBytes bounds how much of the rejected file a replay reads.
	maxRejectedBytes = 256 << 20
	// localLockWait is how long LocalReplay retries the home's lock: a
	// client probing it (HomeLive) holds it for an instant; a gateway
	// holds it for its life.
	localLockWait = 250 * time.Millisecond
)

// ReplayEvents moves every event of the rejected file
// (events.spool.rejected.jsonl) back into the spool, after the events
// already there, and dispatches: each runs again, in order per session,
// with its event id, and a new retry window. Lines of the rejected file
// that are not events stay there (api.ReplayResult.Unreplayable). It is
// crash-safe: the spool append is fsynced before the rejected file is
// rewritten atomically, and an event a crash left in both files runs
// once (see spool.replayRejected). While shutting down the events wait in
// the spool for the next start. An error wraps ErrSpoolUnavailable, and
// nothing was moved.
func (g *Gateway) ReplayEvents(_ context.Context) (api.ReplayResult, error) {
	res, err := g.spool.replayRejected()
	if err != nil {
		g.log.Error("rejected events not replayed", "error", err)
		return api.ReplayResult{}, fmt.Errorf("%w: %w", ErrSpoolUnavailable, err)
	}
	if res.Moved > 0 {
		g.log.Info("rejected events replayed into the spool", "moved", res.Moved, "event_ids", res.EventIDs,
			"unreplayable", res.Unreplayable)
		g.state.kick() // spooled_events changed
		g.dispatch()
	}
	return res, nil
}

// LocalReplay is ReplayEvents on the home of a gateway that is not
// running (the CLI without a URL): it takes the home's lock for the
// moment of the move (a live gateway holding it gives an error wrapping
// ErrLocked, and nothing is changed: replay through its API instead),
// opens the spool as a start does, and moves the rejected events back.
// The next gateway started on the home runs them. log gets what opening
// the spool reports (nil: discarded).
func LocalReplay(home string, log *slog.Logger) (api.ReplayResult, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	lock, err := flockHome(home, localLockWait)
	if err != nil {
		return api.ReplayResult{}, err
	}
	defer func() { _ = lock.release() }()
	if _, err := os.Lstat(filepath.Join(home, RejectedFileName)); homefile.IsNotExist(err) {
		return api.ReplayResult{EventIDs: []string{}}, nil // nothing was ever rejected here
	}
	sp, err := openSpool(filepath.Join(home, SpoolFileName), filepath.Join(home, RejectedFileName), log)
	if err != nil {
		return api.ReplayResult{}, fmt.Errorf("%w: %w", ErrSpoolUnavailable, err)
	}
	res, err := sp.replayRejected()
	if cerr := sp.close(); err == nil && cerr != nil {
		err = cerr
	}
	if err != nil {
		return api.ReplayResult{}, fmt.Errorf("%w: %w", ErrSpoolUnavailable, err)
	}
	return res, nil
}

// rejectedLine is one line of the rejected file: the event it holds, if
// it is one that can run again, and the line as it is.
type rejectedLine struct {
	event *spoolEntry
	raw   []byte
}

// readRejectedLocked reads the rejected file (a missing one is empty).
func (s *spool) readRejectedLocked() ([]rejectedLine, bool, error) {
	data, _, truncated, err := homefile.ReadFile(s.rejected, maxRejectedBytes)
	if homefile.IsNotExist(err) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("read %s: %w", s.rejected, err)
	}
	if truncated {
		return nil, false, fmt.Errorf("read %s: larger than %d bytes: move it away", s.rejected, maxRejectedBytes)
	}
	var out []rejectedLine
	for len(data) > 0 {
		var line []byte
		line, data, _ = bytes.Cut(data, []byte{'\n'})
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		l := rejectedLine{raw: bytes.Clone(line)}
		var r rejectedRecord
		if json.Unmarshal(line, &r) == nil && r.Event != nil && r.Event.ID != "" && r.Event.Session != "" {
			l.event = r.Event
		}
		out = append(out, l)
	}
	return out, true, nil
}

// writeRejectedLocked replaces the rejected file atomically with lines.
func (s *spool) writeRejectedLocked(lines []rejectedLine) error {
	var buf bytes.Buffer
	for _, l := range lines {
		buf.Write(l.raw)
		buf.WriteByte('\n')
	}
	if err := homefile.WriteAtomic(s.rejected, buf.Bytes(), 0o600); err != nil {
		return fmt.Errorf("rewrite %s: %w", s.rejected, err)
	}
	return nil
}

// pendingLocked returns the ids of the pending events.
func (s *spool) pendingLocked() map[string]bool {
	ids := make(map[string]bool, len(s.pending))
	for _, e := range s.pending {
		ids[e.ID] = true
	}
	return ids
}

// replayRejected moves the events of the rejected file into the spool:
// first it appends those not pending already (one write, fsync), then it
// rewrites the rejected file atomically without any of them. A crash
// between the two leaves an event in both files: the next openSpool drops
// it from the rejected file (settleReplayLocked), and a replay before that
// finds it pending and does not append it again, so it runs once. When
// the rewrite fails, the appended events are completed again (out of the
// spool), so an error leaves the events where they were.
func (s *spool) replayRejected() (api.ReplayResult, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	res := api.ReplayResult{EventIDs: []string{}}
	lines, exists, err := s.readRejectedLocked()
	if err != nil || !exists {
		return res, err
	}
	pending := s.pendingLocked()
	var (
		kept  []rejectedLine
		added []spoolEntry
		data  []byte
		seen  = map[string]bool{}
	)
	for _, l := range lines {
		if l.event == nil {
			kept = append(kept, l)
			res.Unreplayable++
			continue
		}
		id := l.event.ID
		if seen[id] {
			continue // rejected twice: moved once
		}
		seen[id] = true
		res.EventIDs = append(res.EventIDs, id)
		if pending[id] {
			continue // a crashed replay put it back already
		}
		line, err := json.Marshal(spoolRecord{spoolEntry: *l.event})
		if err != nil {
			return api.ReplayResult{EventIDs: []string{}}, fmt.Errorf("spool: replay: %w", err)
		}
		data = append(append(data, line...), '\n')
		added = append(added, *l.event)
	}
	res.Moved = len(res.EventIDs)
	if res.Moved == 0 {
		return res, nil
	}
	if len(added) > 0 {
		if err := s.appendLinesLocked(data); err != nil {
			return api.ReplayResult{EventIDs: []string{}}, err
		}
		s.pending = append(s.pending, added...)
		s.size.Store(int64(len(s.pending)))
	}
	if err := s.writeRejectedLocked(kept); err != nil {
		for _, e := range added {
			if cerr := s.completeLocked(e.ID); cerr != nil {
				s.log.Error("replay undo not recorded; compacted at the next chance", "event_id", e.ID, "error", cerr)
			}
		}
		return api.ReplayResult{EventIDs: []string{}}, fmt.Errorf("spool: replay: %w", err)
	}
	return res, nil
}

// settleReplayLocked finishes a replay that a crash cut off between its
// spool append and its rewrite of the rejected file, and a rejection cut
// off between its two writes: an event in both files stays in the spool
// (it runs) and leaves the rejected file. openSpool calls it before any
// event can run.
func (s *spool) settleReplayLocked() error {
	lines, exists, err := s.readRejectedLocked()
	if err != nil || !exists {
		return err
	}
	pending := s.pendingLocked()
	kept := lines[:0:0]
	var both []string
	for _, l := range lines {
		if l.event != nil && pending[l.event.ID] {
			both = append(both, l.event.ID)
			continue
		}
		kept = append(kept, l)
	}
	if len(both) == 0 {
		return nil
	}
	if err := s.writeRejectedLocked(kept); err != nil {
		return err
	}
	s.log.Warn("events found both in the spool and in the rejected file (a replay or rejection cut off by a crash): they stay in the spool and run",
		"event_ids", both, "file", s.rejected)
	return nil
}
