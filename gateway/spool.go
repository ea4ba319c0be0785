package gateway

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quiesce-dev/quiesce/internal/homefile"
)

// spoolEntry is one accepted internal event.
type spoolEntry struct {
	ID      string    `json:"id"`
	Session string    `json:"session"`
	Text    string    `json:"text"`
	At      time.Time `json:"at"`
}

// spoolRecord is one line of the spool: an accepted event, or the record
// that an event completed (Done holds its id). Lines written before
// completions were recorded are plain events.
type spoolRecord struct {
	spoolEntry
	Done string `json:"done,omitempty"`
}

// rejectedRecord is one line of events.spool.rejected.jsonl.
type rejectedRecord struct {
	At     time.Time       `json:"at"`
	Reason string          `json:"reason"`
	Event  *spoolEntry     `json:"event,omitempty"`
	Line   json.RawMessage `json:"line,omitempty"` // an unparseable line, as a JSON string
}

// compactAfter is how many completion records the spool collects before it
// rewrites itself with only the pending events.
const compactAfter = 256

// maxSpoolLine bounds one spool line; Event refuses texts that could not
// fit (maxEventText).
const (
	maxSpoolLine = 4 << 20
	maxEventText = 1 << 20
)

// closeCompactTries and closeCompactGap bound how hard close tries to
// record completions a full or read-only disk refused (a home briefly
// unwritable must not make finished events run again after a restart).
const (
	closeCompactTries = 3
	closeCompactGap   = 100 * time.Millisecond
)

// spool is the durable queue of internal events (events.spool.jsonl), an
// append-only log: an event is appended (fsync) before it is acknowledged
// and leaves only when a completion record for it is appended, after its
// turn has completed. Compaction rewrites the file atomically with only
// the pending events. A torn last line (crash or full disk mid-append) is
// cut before the next append; an unparseable line goes to the rejected
// file with a log line.
//
// Concurrency: mu serialises every file operation and guards pending;
// size mirrors len(pending) so the hot path can check it without the lock.
type spool struct {
	mu       sync.Mutex
	path     string
	rejected string
	log      *slog.Logger
	f        *os.File     // append handle; nil once closed
	good     int64        // file size up to the last complete line
	torn     bool         // rewrite before the next append: a partial line may follow good, or a completion is unrecorded
	pending  []spoolEntry // accepted, not completed, in order
	done     int          // completion records since the last compaction
	size     atomic.Int64
}

// openSpool loads path, moving unparseable lines to rejected, and opens it
// for appending. A FIFO, directory or symlink at either path is refused
// with an error naming it (homefile.ErrNotRegular).
func openSpool(path, rejected string, log *slog.Logger) (*spool, error) {
	s := &spool{path: path, rejected: rejected, log: log}
	f, err := homefile.Open(path, os.O_RDWR|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	data, err := io.ReadAll(f)
	if err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("spool: read %s: %w", path, err)
	}
	s.f = f
	var bad [][]byte
	s.pending, s.done, bad, err = parseSpool(data)
	if err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("spool: %s: a line longer than %d bytes (%w): move the file away", path, maxSpoolLine, err)
	}
	s.good = int64(len(data))
	if len(data) > 0 && data[len(data)-1] != '\n' {
		s.good = int64(bytes.LastIndexByte(data, '\n') + 1)
		s.torn = true
	}
	if len(bad) > 0 {
		if err := s.reject(nil, "unparseable spool line", bad...); err != nil {
			_ = f.Close()
			return nil, fmt.Errorf("spool: %w", err)
		}
	}
	if s.torn || s.done > 0 || len(bad) > 0 {
		if err := s.compactLocked(); err != nil {
			_ = f.Close()
			return nil, fmt.Errorf("spool: %w", err)
		}
	}
	s.size.Store(int64(len(s.pending)))
	if err := s.settleReplayLocked(); err != nil {
		_ = s.f.Close()
		return nil, fmt.Errorf("spool: %w", err)
	}
	return s, nil
}

// parseSpool replays the log: events in order, minus completed ones. It
// returns the lines it could not parse (a torn last line included).
func parseSpool(data []byte) (pending []spoolEntry, done int, bad [][]byte, err error) {
	var order []spoolEntry
	completed := map[string]bool{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64<<10), maxSpoolLine)
	for sc.Scan() {
		line := sc.Bytes()
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		var r spoolRecord
		dec := json.NewDecoder(bytes.NewReader(line))
		dec.DisallowUnknownFields()
		switch err := dec.Decode(&r); {
		case err != nil, dec.More():
			bad = append(bad, bytes.Clone(line))
		case r.Done != "":
			completed[r.Done] = true
			done++
		case r.ID != "" && r.Session != "":
			order = append(order, r.spoolEntry)
		default:
			bad = append(bad, bytes.Clone(line))
		}
	}
	if err := sc.Err(); err != nil {
		// A line over maxSpoolLine (not one Event writes): refuse the
		// file rather than drop it and every later event.
		return nil, 0, nil, err
	}
	for _, e := range order {
		if !completed[e.ID] {
			pending = append(pending, e)
		}
	}
	return pending, done, bad, nil
}

// len returns the number of pending events without taking the lock.
func (s *spool) len() int { return int(s.size.Load()) }

// entries returns the pending events in order.
func (s *spool) entries() []spoolEntry {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]spoolEntry(nil), s.pending...)
}

// ids returns the ids of the pending events, in order.
func (s *spool) ids() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, len(s.pending))
	for i, e := range s.pending {
		out[i] = e.ID
	}
	return out
}

// add appends e durably (written and fsynced); only then is it pending.
func (s *spool) add(e spoolEntry) error {
	line, err := json.Marshal(spoolRecord{spoolEntry: e})
	if err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.appendLocked(line); err != nil {
		return err
	}
	s.pending = append(s.pending, e)
	s.size.Store(int64(len(s.pending)))
	return nil
}

// complete records that event id's turn completed, so it never runs
// again, and drops it from the pending events. If the record cannot be
// written the event is still dropped from memory (it does not run again
// in this process) and the next compaction, which rewrites the file
// without it, makes that durable; the error says so.
func (s *spool) complete(id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.completeLocked(id)
}

// completeLocked is complete with mu held.
func (s *spool) completeLocked(id string) error {
	line, _ := json.Marshal(struct {
		Done string `json:"done"`
	}{id})
	if !s.dropLocked(id) {
		return nil
	}
	if err := s.appendLocked(line); err != nil {
		s.torn = true // forces a compaction at the next chance
		return err
	}
	s.done++
	if s.done >= compactAfter {
		if err := s.compactLocked(); err != nil {
			return err
		}
	}
	return nil
}

// rejectEvent moves e to the rejected file and completes it, as one step
// under mu (a replay never sees it in the rejected file while it is still
// pending here). A crash between the two leaves it in both files:
// openSpool then keeps the spool's copy, which runs again.
func (s *spool) rejectEvent(e spoolEntry, reason string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.reject(&e, reason); err != nil {
		return err
	}
	return s.completeLocked(e.ID)
}

// reject appends records to the rejected file (fsync) and logs each.
func (s *spool) reject(e *spoolEntry, reason string, lines ...[]byte) error {
	var buf bytes.Buffer
	now := time.Now().UTC()
	recs := []rejectedRecord{}
	if e != nil {
		recs = append(recs, rejectedRecord{At: now, Reason: reason, Event: e})
	}
	for _, l := range lines {
		q, _ := json.Marshal(string(l))
		recs = append(recs, rejectedRecord{At: now, Reason: reason, Line: q})
	}
	for _, r := range recs {
		b, _ := json.Marshal(r)
		buf.Write(append(b, '\n'))
		if r.Event != nil {
			s.log.Error("internal event rejected", "event_id", r.Event.ID, "session", r.Event.Session, "reason", reason, "file", s.rejected)
		} else {
			s.log.Error("spool line rejected", "reason", reason, "line", string(r.Line), "file", s.rejected)
		}
	}
	f, err := homefile.Open(s.rejected, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("spool: rejected: %w", err)
	}
	defer f.Close()
	if _, err := f.Write(buf.Bytes()); err != nil {
		return fmt.Errorf("spool: rejected %s: %w", s.rejected, err)
	}
	return homefile.Sync(f)
}

// dropLocked removes id from pending and reports whether it was there.
func (s *spool) dropLocked(id string) bool {
	for i, e := range s.pending {
		if e.ID == id {
			s.pending = append(s.pending[:i:i], s.pending[i+1:]...)
			s.size.Store(int64(len(s.pending)))
			return true
		}
	}
	return false
}

// appendLocked writes line durably at the end of the file, first cutting
// a torn tail (or compacting, when completions could not be recorded).
func (s *spool) appendLocked(line []byte) error {
	return s.appendLinesLocked(append(line, '\n'))
}

// appendLinesLocked is appendLocked for whole lines (data ends in a
// newline): one write and one fsync for all of them.
func (s *spool) appendLinesLocked(data []byte) error {
	if s.f == nil {
		return fmt.Errorf("spool: %s: closed", s.path)
	}
	if s.torn {
		if err := s.compactLocked(); err != nil {
			return err
		}
	}
	n, err := s.f.Write(data)
	if err == nil {
		err = homefile.Sync(s.f)
	}
	if err != nil {
		// The line may be partly on disk, or on disk but not durable:
		// cut it now, or (if even that fails) before the next append.
		s.torn = s.f.Truncate(s.good) != nil
		return fmt.Errorf("spool: append %s: %w", s.path, err)
	}
	s.good += int64(n)
	return nil
}

// compactLocked rewrites the file atomically with only the pending events
// and reopens it for appending.
func (s *spool) compactLocked() error {
	var buf bytes.Buffer
	for _, e := range s.pending {
		line, _ := json.Marshal(spoolRecord{spoolEntry: e})
		buf.Write(append(line, '\n'))
	}
	if err := homefile.WriteAtomic(s.path, buf.Bytes(), 0o600); err != nil {
		return fmt.Errorf("spool: compact: %w", err)
	}
	f, err := homefile.Open(s.path, os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		// s.f is the replaced file now: never append there; the next
		// append compacts (and reopens) again first.
		s.torn = true
		return fmt.Errorf("spool: %w", err)
	}
	if s.f != nil {
		_ = s.f.Close()
	}
	s.f, s.good, s.torn, s.done = f, int64(buf.Len()), false, 0
	return nil
}

// close compacts the file if a completion could not be recorded, and
// closes it; later operations fail.
func (s *spool) close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.f == nil {
		return nil
	}
	var err error
	for try := 0; s.torn && try < closeCompactTries; try++ {
		if try > 0 {
			time.Sleep(closeCompactGap)
		}
		err = s.compactLocked()
	}
	err = errors.Join(err, s.f.Close())
	s.f = nil
	return err
}
