package gateway

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quiesce-dev/quiesce/internal/homefile"
)

// spoolEntry is one internal event waiting to start.
type spoolEntry struct {
	ID      string    `json:"id"`
	Session string    `json:"session"`
	Text    string    `json:"text"`
	At      time.Time `json:"at"`
}

// spool is the durable queue of internal events (events.spool.jsonl): an
// append-only file mirrored in memory, rewritten atomically when started
// events leave it.
type spool struct {
	mu      sync.Mutex
	path    string
	f       *os.File
	entries []spoolEntry
	size    atomic.Int64
}

// openSpool loads path (skipping unparseable lines, e.g. a torn last line)
// and opens it for appending.
func openSpool(path string) (*spool, error) {
	s := &spool{path: path}
	data, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("spool: %w", err)
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64<<10), 1<<22)
	for sc.Scan() {
		var e spoolEntry
		if json.Unmarshal(sc.Bytes(), &e) == nil && e.ID != "" && e.Session != "" {
			s.entries = append(s.entries, e)
		}
	}
	if len(data) > 0 && data[len(data)-1] != '\n' {
		// A torn last line: rewrite so the next append starts a fresh line.
		if err := s.rewriteLocked(); err != nil {
			return nil, err
		}
	} else if err := s.reopenLocked(); err != nil {
		return nil, err
	}
	s.size.Store(int64(len(s.entries)))
	return s, nil
}

func (s *spool) reopenLocked() error {
	_ = s.closeLocked()
	f, err := os.OpenFile(s.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	s.f = f
	return nil
}

// len returns the number of spooled events without taking the lock.
func (s *spool) len() int { return int(s.size.Load()) }

// append adds e durably (written and fsynced) at the end.
func (s *spool) append(e spoolEntry) error {
	line, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.f == nil { // closed at stop: an event after stop still lands
		if err := s.reopenLocked(); err != nil {
			return err
		}
		defer s.closeLocked()
	}
	if _, err := s.f.Write(append(line, '\n')); err != nil {
		return fmt.Errorf("spool: append: %w", err)
	}
	if err := s.f.Sync(); err != nil {
		return fmt.Errorf("spool: fsync: %w", err)
	}
	s.entries = append(s.entries, e)
	s.size.Store(int64(len(s.entries)))
	return nil
}

// rewriteLocked replaces the file with the in-memory entries.
func (s *spool) rewriteLocked() error {
	var buf bytes.Buffer
	for _, e := range s.entries {
		line, _ := json.Marshal(e)
		buf.Write(line)
		buf.WriteByte('\n')
	}
	if err := homefile.WriteAtomic(s.path, buf.Bytes(), 0o600); err != nil {
		return fmt.Errorf("spool: rewrite: %w", err)
	}
	s.size.Store(int64(len(s.entries)))
	return s.reopenLocked()
}

// requeue puts e back at the front (an interrupted system turn).
func (s *spool) requeue(e spoolEntry) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.entries = append([]spoolEntry{e}, s.entries...)
	return s.rewriteLocked()
}

// ids returns the ids of the spooled events, in order.
func (s *spool) ids() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, len(s.entries))
	for i, e := range s.entries {
		out[i] = e.ID
	}
	return out
}

// close closes the append handle; a later append reopens it.
func (s *spool) close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closeLocked()
}

func (s *spool) closeLocked() error {
	if s.f == nil {
		return nil
	}
	err := s.f.Close()
	s.f = nil
	return err
}

// Event takes an internal event for session (e.g. a background job
// finished). It is never refused for the gateway's state: the event is
// appended to the durable spool and starts as a system turn as soon as the
// gateway runs and the session is free (at once, if both hold now). It is
// removed from the spool only once started. Spooled in the receipt reports
// that it did not start at once.
func (g *Gateway) Event(ctx context.Context, session, text string) (EventReceipt, error) {
	if err := validSession(session); err != nil {
		return EventReceipt{}, err
	}
	if text == "" {
		return EventReceipt{}, fmt.Errorf("%w: empty text", ErrInvalid)
	}
	e := spoolEntry{ID: newID(), Session: session, Text: text, At: g.cfg.Now().UTC()}
	if err := g.spool.append(e); err != nil {
		return EventReceipt{}, fmt.Errorf("gateway: event: %w", err)
	}
	started := g.dispatch()
	_, now := started[e.ID]
	return EventReceipt{ID: e.ID, Spooled: !now}, nil
}

// dispatch starts spooled events, in order, whose session is free, while
// the gate admits them; the first event of a session blocks that session's
// later ones. Started events leave the spool. It returns their ids.
func (g *Gateway) dispatch() map[string]struct{} {
	if g.spool.len() == 0 {
		return nil
	}
	s := g.spool
	s.mu.Lock()
	defer s.mu.Unlock()
	seen := map[string]bool{}
	started := map[string]struct{}{}
	var rest []spoolEntry
	type run struct {
		e   spoolEntry
		ctx context.Context
	}
	var runs []run
	for _, e := range s.entries {
		if seen[e.Session] || !g.m.Accept() {
			seen[e.Session] = true
			rest = append(rest, e)
			continue
		}
		seen[e.Session] = true
		ctx, ok := g.claim(context.Background(), e.Session, true)
		if !ok {
			g.release()
			rest = append(rest, e)
			continue
		}
		started[e.ID] = struct{}{}
		runs = append(runs, run{e, ctx})
	}
	if len(runs) == 0 {
		return nil
	}
	s.entries = rest
	if err := s.rewriteLocked(); err != nil {
		// The events run anyway; the file still lists them, so a crash
		// before the next rewrite replays them (at least once).
		g.log.Error("spool rewrite", "error", err)
	}
	for _, r := range runs {
		g.bg.Add(1)
		go g.systemTurn(r.ctx, r.e)
	}
	return started
}

// dispatchAsync runs dispatch on its own goroutine.
func (g *Gateway) dispatchAsync() {
	g.bg.Add(1)
	go func() {
		defer g.bg.Done()
		g.dispatch()
	}()
}

// systemTurn runs a started internal event; an interrupted one goes back
// to the front of the spool so it is not lost.
func (g *Gateway) systemTurn(ctx context.Context, e spoolEntry) {
	defer g.bg.Done()
	reply, err := g.runAgent(ctx, e.Session, e.Text)
	switch {
	case err == nil:
		g.log.Info("system turn done", "session", e.Session, "event_id", e.ID, "reply_bytes", len(reply))
	case errors.Is(err, ErrInterrupted):
		if qerr := g.spool.requeue(e); qerr != nil {
			g.log.Error("requeue interrupted event", "event_id", e.ID, "error", qerr)
		}
	default:
		g.log.Warn("system turn failed", "session", e.Session, "event_id", e.ID, "error", err)
	}
	g.unclaim(e.Session)
	g.release()
	g.cfg.Metrics.TurnEnded(turnResult(err))
}
