package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"golang.org/x/term"

	"github.com/quiesce-dev/quiesce/api"
	"github.com/quiesce-dev/quiesce/fsm"
)

// errWaitTimeout is returned by drain --wait and shutdown --wait when
// their --timeout passes first: exit code 3.
var errWaitTimeout = errors.New("timed out")

// heartbeat is how often drain --wait repeats an unchanged progress line
// when its output is not a terminal (logs of a preStop hook, CI).
const heartbeat = 10 * time.Second

// idleWaiter is the part of control that drain --wait needs.
type idleWaiter interface {
	Status(ctx context.Context) (api.Status, error)
	WaitIdle(ctx context.Context, within time.Duration) (api.Status, bool, error)
}

// progress shows drain --wait's progress: on a terminal one line,
// rewritten in place; otherwise a plain line whenever the state or the
// count changes (and every heartbeat while nothing does). quiet shows
// nothing (--json).
type progress struct {
	w     io.Writer
	tty   bool
	quiet bool
	start time.Time

	last     string    // state and count of the last line
	lastAt   time.Time // when the last plain line was printed
	open     bool      // a rewritten line is on the screen, not yet ended
	oldest   float64   // the last oldest_turn_seconds reported
	oldestAt time.Time // when that value was first reported
}

func newProgress(w io.Writer, quiet bool) *progress {
	return &progress{w: w, tty: isTerminal(w), quiet: quiet, start: time.Now()}
}

// oldestAge returns the oldest turn's age: the reported value, aged by
// the time since it was first reported (a local state file is only
// rewritten when something changes).
func (p *progress) oldestAge(st api.Status, now time.Time) time.Duration {
	if st.OldestTurnSeconds != p.oldest || p.oldestAt.IsZero() {
		p.oldest, p.oldestAt = st.OldestTurnSeconds, now
	}
	if st.ActiveAgents == 0 {
		return 0
	}
	return time.Duration(p.oldest*float64(time.Second)) + now.Sub(p.oldestAt)
}

// show prints the progress for st.
func (p *progress) show(st api.Status) {
	now := time.Now()
	age := p.oldestAge(st, now)
	if p.quiet {
		return
	}
	summary := fmt.Sprintf("%s, %s in flight", st.State, turns(st.ActiveAgents))
	line := summary
	if st.ActiveAgents > 0 {
		line += fmt.Sprintf(" (oldest %v)", roundAge(age))
	}
	line += fmt.Sprintf(", waited %v", roundAge(now.Sub(p.start)))
	switch {
	case p.tty:
		fmt.Fprintf(p.w, "\r\033[K%s", line)
		p.open = true
	case summary != p.last || now.Sub(p.lastAt) >= heartbeat:
		fmt.Fprintln(p.w, line)
		p.lastAt = now
	}
	p.last = summary
}

// end ends a rewritten line before any other output.
func (p *progress) end() {
	if p.open {
		fmt.Fprintln(p.w)
		p.open = false
	}
}

// done prints the closing line.
func (p *progress) done(format string, args ...any) {
	p.end()
	if !p.quiet {
		fmt.Fprintf(p.w, format+"\n", args...)
	}
}

func roundAge(d time.Duration) time.Duration {
	if d < 10*time.Second {
		return d.Round(100 * time.Millisecond)
	}
	return d.Round(time.Second)
}

// waitMode says what waitIdle waits for.
type waitMode int

const (
	// waitDrained (drain --wait) waits until the gateway is not running
	// and has no turn in flight; a cancel while waiting is an error.
	waitDrained waitMode = iota
	// waitAnyIdle (wait) waits until no turn is in flight, in any state.
	waitAnyIdle
)

// waitIdle shows the status, then waits, in long-polls of
// progressInterval, until the gateway is idle as mode says (nil), the
// drain is cancelled (waitDrained: an error), or timeout passes
// (errWaitTimeout). It returns the last status.
func waitIdle(ctx context.Context, c idleWaiter, p *progress, timeout time.Duration, mode waitMode) (api.Status, error) {
	deadline := time.Now().Add(timeout)
	st, err := c.Status(ctx)
	if err != nil {
		return st, err
	}
	idle := st.ActiveAgents == 0
	drained := false
	for {
		p.show(st)
		switch {
		case !st.Live:
			p.done("idle: no gateway is running on this home, so no turn is in flight")
			return st, nil
		case mode == waitAnyIdle:
			if idle && st.ActiveAgents == 0 {
				note := ""
				if st.State == fsm.Running {
					note = " (the gateway is running: new turns may start at any time)"
				}
				p.done("idle: no turn in flight after %v, state %s%s", roundAge(time.Since(p.start)), st.State, note)
				return st, nil
			}
		case st.State != fsm.Running:
			drained = true
			if idle && st.ActiveAgents == 0 {
				p.done("idle: no turn in flight after %v", roundAge(time.Since(p.start)))
				return st, nil
			}
		case drained:
			p.end()
			return st, errors.New("the drain was cancelled while waiting: the gateway is running again")
		}
		remaining := time.Until(deadline)
		if remaining <= 0 {
			p.end()
			return st, fmt.Errorf("%w after %v: %s still in flight (state %s)",
				errWaitTimeout, timeout, turns(st.ActiveAgents), st.State)
		}
		if st.State == fsm.Running && mode == waitDrained {
			// The drain is not visible yet (a local gateway's watcher has
			// not read the marker): an idle answer would come back at once.
			select {
			case <-ctx.Done():
				p.end()
				return st, ctx.Err()
			case <-time.After(min(localPollInterval, remaining)):
			}
			remaining = max(time.Until(deadline), time.Millisecond)
		}
		if st, idle, err = c.WaitIdle(ctx, min(remaining, progressInterval)); err != nil {
			p.end()
			return st, err
		}
	}
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

func turns(n int) string {
	if n == 1 {
		return "1 turn"
	}
	return fmt.Sprintf("%d turns", n)
}
