package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	mrand "math/rand/v2"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/quiesce-dev/quiesce/agent"
	"github.com/quiesce-dev/quiesce/api"
	"github.com/quiesce-dev/quiesce/fsm"
	"github.com/quiesce-dev/quiesce/notify"
)

// maxSessionLen bounds a session id.
const maxSessionLen = 256

// validSession reports whether id can name a session.
func validSession(id string) error {
	if id == "" || len(id) > maxSessionLen || !utf8.ValidString(id) {
		return fmt.Errorf("%w: session id must be 1-%d bytes of UTF-8", ErrInvalid, maxSessionLen)
	}
	for _, r := range id {
		if unicode.IsControl(r) || r == '/' {
			return fmt.Errorf("%w: session id contains %q", ErrInvalid, r)
		}
	}
	return nil
}

// Turn runs one conversation turn for session and returns the agent's
// reply: Stream without callbacks.
func (g *Gateway) Turn(ctx context.Context, session, text string) (string, error) {
	return g.Stream(ctx, TurnRequest{Session: session, Text: text})
}

// TurnRequest is one user turn for Stream.
type TurnRequest struct {
	Session string
	Text    string
	// Started, when set, is called once the turn has passed the gate and
	// claimed its session, before the agent runs: from then on the turn
	// ends in a reply, a failure or an interruption, never a refusal. A
	// streaming caller commits to its stream there.
	Started func()
	// Delta, when set, receives the agent's partial output (see
	// Turn.OnDelta), after Started and before Stream returns.
	Delta func(text string)
}

// Stream runs one conversation turn and returns the agent's reply. It
// passes the accept gate first (refused → *RefusedError, which wraps
// ErrRefused and carries the state), then claims the session's slot
// (taken → ErrSessionBusy); both before Started. The agent runs with a
// context that ctx and a forced shutdown cancel (then ErrInterrupted:
// InterruptMessage is what to tell the user). A panicking or failing agent
// gives an error wrapping ErrAgent; the gateway keeps running. The gate
// ticket and the slot are released exactly once whatever happens.
func (g *Gateway) Stream(ctx context.Context, req TurnRequest) (string, error) {
	if err := validSession(req.Session); err != nil {
		return "", err
	}
	if req.Text == "" {
		return "", fmt.Errorf("%w: empty text", ErrInvalid)
	}
	if !g.m.Accept() {
		g.cfg.Metrics.TurnEnded("refused")
		return "", refusal(g.m.State())
	}
	turn := agent.Turn{Session: req.Session, Text: req.Text, TurnID: nextTurnID()}
	start := time.Now()
	turnCtx, ok := g.claim(ctx, req.Session, slot{start: start, turnID: turn.TurnID, streaming: req.Delta != nil})
	if !ok {
		g.release()
		g.cfg.Metrics.TurnEnded("busy")
		return "", fmt.Errorf("%w: %s", ErrSessionBusy, req.Session)
	}
	var err error
	defer func() {
		g.unclaim(req.Session)
		g.release()
		result := turnResult(err)
		g.cfg.Metrics.TurnEnded(result)
		g.cfg.Metrics.TurnDuration(result, time.Since(start))
	}()
	g.state.kick() // the state file counts this turn (coalesced, no I/O here)
	if req.Started != nil {
		req.Started()
	}
	if req.Delta != nil {
		d := &deltaGate{fn: req.Delta}
		defer d.close()
		turn.OnDelta = d.send
	}
	var reply string
	reply, err = g.runAgent(turnCtx, turn)
	if g.log.Enabled(ctx, slog.LevelDebug) { // the turn id is also the upstream's X-Request-Id
		g.log.Debug("turn done", "session", req.Session, "turn_id", turn.TurnID, "result", turnResult(err))
	}
	return reply, err
}

// deltaGate passes an agent's deltas on until the turn has returned, one
// at a time, and drops any that come later (an agent's producer goroutine
// still writing after Run returned on a cancel): the caller's callback
// never runs after Stream returned. mu serialises send and close.
type deltaGate struct {
	mu     sync.Mutex
	fn     func(string)
	closed bool
}

func (d *deltaGate) send(text string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.closed {
		d.fn(text)
	}
}

func (d *deltaGate) close() {
	d.mu.Lock()
	d.closed = true
	d.mu.Unlock()
}

// nextTurnID returns a new turn id: 64 random bits as 16 hex digits,
// from math/rand/v2's ChaCha8 generator (seeded by the runtime), so a
// turn costs no crypto/rand syscall and ids are as unique as randid's.
func nextTurnID() string {
	var b [16]byte
	n := mrand.Uint64()
	const hexdigits = "0123456789abcdef"
	for i := 15; i >= 0; i-- {
		b[i] = hexdigits[n&0xf]
		n >>= 4
	}
	return string(b[:])
}

// InterruptMessage is what a user whose turn a forced shutdown cut off is
// told (the same text as the session's interrupt ping).
func InterruptMessage(session string) string { return notify.InterruptText(session) }

// refusals are the gate's refusal errors, one per state, so a refused
// turn allocates nothing.
var refusals = func() map[fsm.State]*RefusedError {
	out := map[fsm.State]*RefusedError{}
	for _, s := range fsm.States {
		out[s] = &RefusedError{State: s}
	}
	return out
}()

// refusal returns the refusal error for state s.
func refusal(s fsm.State) error { return refusals[s] }

// turnResult names a turn's outcome for metrics.
func turnResult(err error) string {
	switch {
	case err == nil:
		return "ok"
	case errors.Is(err, ErrInterrupted):
		return "interrupted"
	default:
		return "error"
	}
}

// claim takes session's slot for the turn s describes (its start, turn
// id, kind; claim sets its cancel) and returns the context the turn runs
// with: a child of ctx that the slot's cancel also cancels, with its cause
// (ErrInterrupted on a forced shutdown); unclaim releases it. It reports
// false when the session already has a turn running.
func (g *Gateway) claim(ctx context.Context, session string, s slot) (context.Context, bool) {
	g.sessMu.Lock()
	defer g.sessMu.Unlock()
	if _, busy := g.sessions[session]; busy {
		return nil, false
	}
	turnCtx, cancel := context.WithCancelCause(ctx)
	s.cancel = cancel
	g.sessions[session] = s
	return turnCtx, true
}

// Turns returns the turns in flight, oldest first: user turns that have
// claimed their session and internal events' system turns.
func (g *Gateway) Turns() []api.TurnInfo {
	now := time.Now()
	g.sessMu.Lock()
	out := make([]api.TurnInfo, 0, len(g.sessions))
	for id, s := range g.sessions {
		out = append(out, api.TurnInfo{Session: id, TurnID: s.turnID, StartedAt: s.start.UTC(),
			AgeSeconds: now.Sub(s.start).Seconds(), Streaming: s.streaming, System: s.system, EventID: s.eventID})
	}
	g.sessMu.Unlock()
	slices.SortFunc(out, func(a, b api.TurnInfo) int {
		if c := a.StartedAt.Compare(b.StartedAt); c != 0 {
			return c
		}
		return strings.Compare(a.Session, b.Session)
	})
	return out
}

// unclaim frees session's slot and starts a spooled event waiting for it.
func (g *Gateway) unclaim(session string) {
	g.sessMu.Lock()
	if s, ok := g.sessions[session]; ok {
		s.cancel(nil)
		delete(g.sessions, session)
	}
	g.sessMu.Unlock()
	if g.spool.len() > 0 && g.m.State() == fsm.Running {
		g.dispatchAsync()
	}
}

// release returns a gate ticket and asks for a coalesced state write.
func (g *Gateway) release() {
	if err := g.m.Release(); err != nil {
		g.log.Error("gate release", "error", err) // a bug: every accept is released once
	}
	g.state.kick()
}

// interruptAll cancels every running turn with ErrInterrupted and returns
// the sessions of the user turns among them, sorted (the ones to ping:
// an interrupted system turn stays spooled and resumes by itself).
func (g *Gateway) interruptAll() []string {
	g.sessMu.Lock()
	defer g.sessMu.Unlock()
	out := make([]string, 0, len(g.sessions))
	for id, s := range g.sessions {
		s.cancel(ErrInterrupted)
		if !s.system {
			out = append(out, id)
		}
	}
	slices.Sort(out)
	return out
}

// oldestTurn returns the age of the oldest turn in flight (0 if none).
func (g *Gateway) oldestTurn() time.Duration {
	g.sessMu.Lock()
	defer g.sessMu.Unlock()
	var oldest time.Time
	for _, s := range g.sessions {
		if oldest.IsZero() || s.start.Before(oldest) {
			oldest = s.start
		}
	}
	if oldest.IsZero() {
		return 0
	}
	return time.Since(oldest)
}

// runAgent runs the agent, turning a panic into an error and a forced
// interrupt into ErrInterrupted.
func (g *Gateway) runAgent(ctx context.Context, t agent.Turn) (reply string, err error) {
	defer func() {
		if p := recover(); p != nil {
			g.log.Error("agent panic", "session", t.Session, "turn_id", t.TurnID, "panic", p)
			perr := fmt.Errorf("panic: %v", p)
			g.agentFailed(perr)
			reply, err = "", newAgentError(perr)
		}
	}()
	reply, err = g.cfg.Agent.Run(ctx, t)
	if err != nil && errors.Is(context.Cause(ctx), ErrInterrupted) {
		return "", fmt.Errorf("%w: session %s", ErrInterrupted, t.Session)
	}
	if err != nil {
		if ctx.Err() == nil {
			g.agentFailed(err) // the agent failed by itself, not cancelled by the client
		}
		return "", newAgentError(err)
	}
	return reply, nil
}

// agentFailed counts an agent failure and keeps it as the last one.
func (g *Gateway) agentFailed(err error) {
	g.agentLastErr.Store(&agentFailure{msg: err.Error(), at: g.cfg.Now().UTC()})
	g.agentFailures.Add(1)
}

// agentStatus returns the agent's part of Status.
func (g *Gateway) agentStatus() *api.AgentStatus {
	a := &api.AgentStatus{Kind: g.cfg.AgentKind, Failures: g.agentFailures.Load()}
	if last := g.agentLastErr.Load(); last != nil {
		a.LastError, a.LastErrorAt = last.msg, last.at
	}
	return a
}
