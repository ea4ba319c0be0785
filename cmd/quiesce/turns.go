package main

import (
	"context"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/quiesce-dev/quiesce/api"
)

// turnsCmd is "quiesce turns".
type turnsCmd struct {
	target
}

func (c *turnsCmd) flagSet(m *Main) *flagSet {
	fs := m.newFlagSet("turns", "--url URL [--json]", `
List the turns in flight, oldest first: session, turn id, age, whether the
client streams the reply, and for an internal event's system turn its event
id. It asks a live gateway's API (GET /api/gateway/turns), so it needs --url
(QUIESCE_URL) and a token; the home on disk records only how many turns are in
flight ('quiesce status --home' shows that and the oldest one's age).`)
	c.target.register(fs)
	return fs
}

func (c *turnsCmd) run(ctx context.Context, m *Main) error {
	ctl, err := c.control(m)
	if err != nil {
		return err
	}
	turns, err := ctl.Turns(ctx)
	if err != nil {
		return err
	}
	if c.json {
		if turns == nil {
			turns = []api.TurnInfo{}
		}
		return writeJSON(m.Stdout, api.TurnsResponse{Turns: turns})
	}
	printTurns(m.Stdout, turns)
	return nil
}

// printTurns prints turns as a table, or says there are none.
func printTurns(w io.Writer, turns []api.TurnInfo) {
	if len(turns) == 0 {
		fmt.Fprintln(w, "no turns in flight")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SESSION\tTURN ID\tAGE\tSTREAMING\tKIND")
	for _, t := range turns {
		kind := "user"
		if t.System {
			kind = "event " + t.EventID
		}
		streaming := "no"
		if t.Streaming {
			streaming = "yes"
		}
		fmt.Fprintf(tw, "%s\t%s\t%v\t%s\t%s\n", t.Session, t.TurnID, roundAge(seconds(t.AgeSeconds)), streaming, kind)
	}
	_ = tw.Flush()
}

// errTurnsNeedURL is what a local "turns" says: the list lives in the
// gateway's memory only.
var errTurnsNeedURL = usagef("the list of turns needs a live gateway's URL: set --url (QUIESCE_URL), e.g. --url http://127.0.0.1:8470, " +
	"and a token (QUIESCE_TOKEN or --tokens-file); the home on disk records only how many turns are in flight " +
	"('quiesce status' without --url shows that)")

// Turns implements control over HTTP.
func (h *httpControl) Turns(ctx context.Context) ([]api.TurnInfo, error) {
	return call(ctx, h, h.c.Turns)
}

// Turns implements control locally: the home does not record the list.
func (l *localControl) Turns(context.Context) ([]api.TurnInfo, error) {
	return nil, errTurnsNeedURL
}
