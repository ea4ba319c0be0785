package gateway

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/quiesce-dev/quiesce/agent"
	"github.com/quiesce-dev/quiesce/api"
	"github.com/quiesce-dev/quiesce/internal/randid"
)

// Internal events are at-least-once (see the package doc): an event stays
// in the spool until its system turn has completed. An agent error retries
// with a backoff that doubles from eventBackoffBase up to eventBackoffMax,
// until Config.EventRetryFor has passed since the event's first failure;
// the next failure then rejects the event.
const (
	eventBackoffBase = 200 * time.Millisecond
	eventBackoffMax  = 30 * time.Second
)

// eventState is what the dispatcher knows of a pending event beyond the
// spool: whether its turn runs, how often it failed, when it may retry.
// It lives in memory: a restart gives a failing event a new retry window.
type eventState struct {
	running   bool
	tries     int       // failed tries so far
	firstFail time.Time // when the first try failed (zero: none has)
	retryAt   time.Time // not before this (after a failure)
}

// Event takes an internal event for session (e.g. a background job
// finished). It is never refused for the gateway's state: the event is
// appended to the durable spool (fsync) before Event returns, and starts
// as a system turn as soon as the gateway runs and the session is free (at
// once, if both hold now). It leaves the spool only once its turn has
// completed. Spooled in the receipt reports that it did not start at once.
// When the append fails (disk full) the error wraps ErrSpoolUnavailable
// and nothing was accepted.
func (g *Gateway) Event(ctx context.Context, session, text string) (api.EventReceipt, error) {
	if err := validSession(session); err != nil {
		return api.EventReceipt{}, err
	}
	if text == "" || len(text) > maxEventText {
		return api.EventReceipt{}, fmt.Errorf("%w: text must be 1 to %d bytes", ErrInvalid, maxEventText)
	}
	e := spoolEntry{ID: randid.New(), Session: session, Text: text, At: g.cfg.Now().UTC()}
	if err := g.spool.add(e); err != nil {
		g.log.Error("internal event not accepted", "session", session, "error", err)
		return api.EventReceipt{}, fmt.Errorf("%w: %w", ErrSpoolUnavailable, err)
	}
	g.state.kick() // spooled_events changed
	started := false
	for _, id := range g.dispatch() {
		started = started || id == e.ID
	}
	return api.EventReceipt{ID: e.ID, Spooled: !started}, nil
}

// dispatch starts pending events, in spool order, while the gate admits
// them: an event starts when its session is free and no earlier event of
// that session is pending, and it is not waiting out a retry backoff. It
// returns the ids it started.
func (g *Gateway) dispatch() []string {
	if g.spool.len() == 0 {
		return nil
	}
	g.evMu.Lock()
	defer g.evMu.Unlock()
	var started []string
	blocked := map[string]bool{} // sessions with an earlier pending event
	now := time.Now()
	for _, e := range g.spool.entries() {
		if blocked[e.Session] {
			continue
		}
		blocked[e.Session] = true
		st := g.events[e.ID]
		if st != nil && (st.running || now.Before(st.retryAt)) {
			continue
		}
		if !g.m.Accept() {
			break // not running: nothing starts until resume or the next start
		}
		turnID := nextTurnID()
		ctx, ok := g.claim(context.Background(), e.Session, slot{system: true, start: time.Now(), turnID: turnID, eventID: e.ID})
		if !ok {
			g.release() // a user turn holds the session; unclaim dispatches again
			continue
		}
		if st == nil {
			st = &eventState{}
			g.events[e.ID] = st
		}
		st.running = true
		started = append(started, e.ID)
		g.state.kick() // the state file counts this turn
		g.bg.Add(1)
		go g.systemTurn(ctx, e, turnID)
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

// dispatchAfter runs dispatch after d, unless the gateway stops first.
func (g *Gateway) dispatchAfter(d time.Duration) {
	g.bg.Add(1)
	go func() {
		defer g.bg.Done()
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
			g.dispatch()
		case <-g.runCtx.Done():
		}
	}()
}

// systemTurn runs a started internal event. Completed: it leaves the
// spool. Interrupted (forced shutdown): it stays where it is, to run
// first at the next start; its session gets no interrupt ping. Failed: it
// retries after a backoff (the session is free for user turns meanwhile;
// its later events wait behind it), and a failure once EventRetryFor has
// passed since its first failure moves it to the rejected file.
func (g *Gateway) systemTurn(ctx context.Context, e spoolEntry, turnID string) {
	defer g.bg.Done()
	start := time.Now()
	reply, err := g.runAgent(ctx, agent.Turn{Session: e.Session, Text: e.Text, TurnID: turnID, EventID: e.ID})
	var retry time.Duration
	g.evMu.Lock()
	st := g.events[e.ID]
	st.running = false
	switch {
	case err == nil:
		delete(g.events, e.ID)
		if cerr := g.spool.complete(e.ID); cerr != nil {
			g.log.Error("event completion not recorded; retried at stop", "event_id", e.ID, "error", cerr)
		}
		g.log.Info("system turn done", "session", e.Session, "event_id", e.ID, "turn_id", turnID, "reply_bytes", len(reply))
	case errors.Is(err, ErrInterrupted):
		g.log.Warn("system turn interrupted; the event stays spooled", "session", e.Session, "event_id", e.ID)
	default:
		now := time.Now()
		st.tries++
		if st.firstFail.IsZero() {
			st.firstFail = now
		}
		if failing := now.Sub(st.firstFail); failing >= g.cfg.EventRetryFor {
			delete(g.events, e.ID)
			reason := fmt.Sprintf("%d tries over %v failed (--event-retry-for %v), last: %v",
				st.tries, failing.Round(time.Millisecond), g.cfg.EventRetryFor, err)
			if rerr := g.spool.rejectEvent(e, reason); rerr != nil {
				g.log.Error("reject event", "event_id", e.ID, "error", rerr)
			}
			g.cfg.Metrics.EventRejected()
		} else {
			// The last try falls when the window closes, not a
			// whole backoff after it.
			retry = min(eventBackoffFrom(g.eventBackoffBase, st.tries), g.cfg.EventRetryFor-failing)
			st.retryAt = now.Add(retry)
			g.cfg.Metrics.EventRetried()
			g.log.Warn("system turn failed; will retry", "session", e.Session, "event_id", e.ID, "turn_id", turnID,
				"try", st.tries, "retry_in", retry, "retry_until", st.firstFail.Add(g.cfg.EventRetryFor).UTC(), "error", err)
		}
	}
	g.evMu.Unlock()
	g.unclaim(e.Session)
	g.release()
	g.cfg.Metrics.TurnEnded(turnResult(err))
	g.cfg.Metrics.TurnDuration(turnResult(err), time.Since(start))
	if retry > 0 {
		g.dispatchAfter(retry)
	}
}

// eventBackoff is the wait before the try after the n-th failure:
// doubling from eventBackoffBase, capped at eventBackoffMax.
func eventBackoff(n int) time.Duration { return eventBackoffFrom(eventBackoffBase, n) }

// eventBackoffFrom is eventBackoff doubling from base.
func eventBackoffFrom(base time.Duration, n int) time.Duration {
	d := base << (n - 1)
	if d <= 0 || d > eventBackoffMax {
		return eventBackoffMax
	}
	return d
}
