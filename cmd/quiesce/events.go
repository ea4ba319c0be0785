package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/quiesce-dev/quiesce/api"
	"github.com/quiesce-dev/quiesce/gateway"
)

// eventsCmd is "quiesce events replay".
type eventsCmd struct {
	target
	verb string
}

// eventsVerbs are the subcommands of "quiesce events".
var eventsVerbs = []string{"replay"}

func (c *eventsCmd) flagSet(m *Main) *flagSet {
	fs := m.newFlagSet("events", "replay [--url URL | --home DIR] [--json]", `
Replay: move the internal events that were rejected (their turns kept failing
for --event-retry-for; they are in events.spool.rejected.jsonl) back into the
event spool, where each runs again, once, with its event id. Lines of the
rejected file that are not events stay there.

With --url (QUIESCE_URL) it asks the running gateway, which runs them at once.
Without it, it acts on the home of a gateway that is not running; the next
gateway started there runs them. A gateway running on that home refuses the
local replay (nothing changes): use --url. The move is crash-safe: an event is
never lost and never runs twice because of a replay.`)
	c.target.register(fs)
	return fs
}

// setVerb takes the subcommand that precedes the flags.
func (c *eventsCmd) setVerb(verb string) error {
	for _, v := range eventsVerbs {
		if v == verb {
			c.verb = verb
			return nil
		}
	}
	if s := suggest(verb, eventsVerbs); s != "" {
		return usagef("unknown subcommand %q; did you mean %q?", verb, s)
	}
	return usagef("unknown subcommand %q: want %s", verb, strings.Join(eventsVerbs, " or "))
}

func (c *eventsCmd) run(ctx context.Context, m *Main) error {
	ctl, err := c.control(m)
	if err != nil {
		return err
	}
	res, err := ctl.ReplayEvents(ctx)
	if err != nil {
		return err
	}
	if c.json {
		return writeJSON(m.Stdout, res)
	}
	printReplay(m.Stdout, res)
	return nil
}

// replayResult is the API's replay answer; a local replay adds the home.
type replayResult struct {
	api.ReplayResponse
	localInfo
}

func printReplay(w io.Writer, res replayResult) {
	where, when := "", "they run now"
	if res.Home != "" {
		where, when = " in "+res.Home, "the next gateway started there runs them"
	}
	switch res.Moved {
	case 0:
		fmt.Fprintf(w, "no rejected events to replay%s\n", where)
	default:
		fmt.Fprintf(w, "moved %d rejected event(s) back into the spool%s (%s): %s\n", res.Moved, where, when,
			strings.Join(res.EventIDs, " "))
	}
	if res.Unreplayable > 0 {
		fmt.Fprintf(w, "%d line(s) of %s are not events (unparseable spool lines) and stay there\n",
			res.Unreplayable, gateway.RejectedFileName)
	}
}

// ReplayEvents asks the gateway to move the rejected events back.
func (h *httpControl) ReplayEvents(ctx context.Context) (replayResult, error) {
	res, err := call(ctx, h, h.c.ReplayEvents)
	return replayResult{ReplayResponse: res}, err
}

// ReplayEvents moves the rejected events back into the spool of a home no
// gateway holds; a live gateway's home is refused (use its API).
func (l *localControl) ReplayEvents(_ context.Context) (replayResult, error) {
	if err := l.checkHome(); err != nil {
		return replayResult{}, err
	}
	res, err := gateway.LocalReplay(l.home, nil)
	if errors.Is(err, gateway.ErrLocked) {
		_, pid, _ := gateway.HomeLive(l.home)
		if pid == "" {
			pid = "unknown"
		}
		return replayResult{}, &hintError{err: err, msg: fmt.Sprintf(
			"a gateway (pid %s) is running on the home %s, so a local replay would race it; nothing was changed. "+
				"Replay through its API: set --url (QUIESCE_URL) and a token (QUIESCE_TOKEN or --tokens-file)", pid, l.home)}
	}
	if err != nil {
		return replayResult{}, fmt.Errorf("replay the rejected events in %s: %w", l.home, err)
	}
	if res.EventIDs == nil {
		res.EventIDs = []string{}
	}
	live := false
	return replayResult{ReplayResponse: api.ReplayResponse{OK: true, ReplayResult: res},
		localInfo: localInfo{Home: l.home, Live: &live}}, nil
}
