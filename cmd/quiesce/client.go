package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/quiesce-dev/quiesce/fsm"
	"github.com/quiesce-dev/quiesce/gateway"
	"github.com/quiesce-dev/quiesce/server"
)

// The client commands: each is one straight function over a control,
// which target.control resolves once (HTTP API or local home).

// drainCmd is "quiesce drain".
type drainCmd struct {
	target
	suppress  bool
	requestID string
	wait      bool
	timeout   time.Duration
	// timeoutOK makes a --wait that timed out exit 0 (still saying so), for
	// hooks whose failure only adds noise: a Kubernetes preStop, which
	// SIGTERM and the shutdown sequence follow anyway.
	timeoutOK bool
}

func (c *drainCmd) flagSet(m *Main) *flagSet {
	fs := m.newFlagSet("drain", "[--suppress-notification] [--request-id ID] [--wait [--timeout 60s] [--exit-zero-on-timeout]] [--json]", `
Request a drain: the gateway stops starting new turns (they get 503 with
Retry-After) while in-flight turns finish. It stays up, and 'cancel' undoes
it. A drain while one is active replaces it (and says so). With --wait, wait
until no turn is in flight, showing the turns in flight and the oldest one's
age; exit 3 if turns are still running at --timeout.`)
	c.target.register(fs)
	fs.BoolVar(&c.suppress, "suppress-notification", false, "if this drain ends in a shutdown, skip the home-channel broadcast (interrupt pings are never skipped)")
	fs.StringVar(&c.requestID, "request-id", "", "id of this drain request (default: generated)")
	fs.BoolVar(&c.wait, "wait", false, "wait until no turn is in flight")
	fs.DurationVar(&c.timeout, "timeout", 60*time.Second, "with --wait: give up after this long (exit 3)")
	fs.BoolVar(&c.timeoutOK, "exit-zero-on-timeout", false, "with --wait: a timeout is reported on stderr but exits 0 (for a Kubernetes preStop hook: SIGTERM and the shutdown sequence follow anyway)")
	return fs
}

func (c *drainCmd) run(ctx context.Context, m *Main) error {
	if err := positive("--timeout", c.timeout); err != nil {
		return err
	}
	if c.timeoutOK && !c.wait {
		return usagef("--exit-zero-on-timeout needs --wait")
	}
	ctl, err := c.control(m)
	if err != nil {
		return err
	}
	res, err := ctl.Drain(ctx, gateway.DrainRequest{SuppressNotification: c.suppress, RequestID: c.requestID})
	if err != nil {
		return err
	}
	if c.json {
		err = writeJSON(m.Stdout, res)
	} else {
		printDrain(m.Stdout, res)
	}
	if err != nil || !c.wait {
		return err
	}
	st, err := waitIdle(ctx, ctl, newProgress(m.Stdout, c.json), c.timeout)
	if c.json && (err == nil || errors.Is(err, errWaitTimeout)) {
		idle := err == nil
		if jerr := writeJSON(m.Stdout, server.StatusResponse{Status: st, Idle: &idle}); jerr != nil {
			return jerr
		}
	}
	if c.timeoutOK && errors.Is(err, errWaitTimeout) {
		fmt.Fprintf(m.Stderr, "%s drain: %v (exit 0: --exit-zero-on-timeout)\n", m.Program, err)
		return nil
	}
	return err
}

func printDrain(w io.Writer, res drainResult) {
	where := ""
	if res.Home != "" {
		where = " in " + res.Home
	}
	fmt.Fprintf(w, "drain requested%s by %s (request_id %s, suppress_notification %t)",
		where, res.Principal, res.RequestID, res.SuppressNotification)
	if res.WasDraining {
		fmt.Fprint(w, "; it replaced the drain request that was already active")
	}
	switch {
	case res.Live == nil || (*res.Live && res.State != fsm.Running):
		fmt.Fprintf(w, ": state %s, %s in flight\n", res.State, turns(res.ActiveAgents))
	case *res.Live:
		fmt.Fprintf(w, ": the gateway has not picked it up yet (state %s); its marker watcher will within its --watch-interval\n", res.State)
	case res.State == "":
		fmt.Fprintln(w, ": no gateway has run in this home yet; one started here on this machine comes up draining")
	default:
		fmt.Fprintf(w, ": no gateway is running on this home (last state %s); one started here on this machine comes up draining\n", res.State)
	}
}

// cancelCmd is "quiesce cancel".
type cancelCmd struct {
	target
	requestID string
}

func (c *cancelCmd) flagSet(m *Main) *flagSet {
	fs := m.newFlagSet("cancel", "[--request-id ID] [--json]", `
Cancel the drain: the gateway starts accepting turns again (unless it is
shutting down: shutdown wins). Idempotent. With --request-id, cancel only that
drain; if another is active nothing changes and the command fails, naming it.`)
	c.target.register(fs)
	fs.StringVar(&c.requestID, "request-id", "", "cancel only the drain with this id")
	return fs
}

func (c *cancelCmd) run(ctx context.Context, m *Main) error {
	ctl, err := c.control(m)
	if err != nil {
		return err
	}
	res, err := ctl.Cancel(ctx, c.requestID)
	if err != nil {
		return err
	}
	if c.json {
		return writeJSON(m.Stdout, res)
	}
	printCancel(m.Stdout, res)
	return nil
}

func printCancel(w io.Writer, res cancelResult) {
	where := ""
	if res.Home != "" {
		where = " in " + res.Home
	}
	if res.WasDraining {
		fmt.Fprintf(w, "drain cancelled%s (was draining: true)", where)
	} else {
		fmt.Fprintf(w, "no drain to cancel%s (was draining: false): nothing changed", where)
	}
	switch {
	case res.Live == nil || (*res.Live && (res.State != fsm.Draining || !res.WasDraining)):
		fmt.Fprintf(w, ": state %s, %s in flight\n", res.State, turns(res.ActiveAgents))
	case *res.Live:
		fmt.Fprintf(w, ": the gateway has not picked it up yet (state %s); its marker watcher will within its --watch-interval\n", res.State)
	default:
		fmt.Fprintln(w, ": no gateway is running on this home")
	}
}

// statusCmd is "quiesce status".
type statusCmd struct {
	target
}

func (c *statusCmd) flagSet(m *Main) *flagSet {
	fs := m.newFlagSet("status", "[--json]", `
Show the gateway's state, turns in flight and the oldest one's age, the drain
request, epoch, pid and uptime. Locally it reads $home/gateway_state.json and
the drain marker, and tells a live gateway from a dead one by the home lock.`)
	c.target.register(fs)
	return fs
}

func (c *statusCmd) run(ctx context.Context, m *Main) error {
	ctl, err := c.control(m)
	if err != nil {
		return err
	}
	st, err := ctl.Status(ctx)
	if err != nil {
		return err
	}
	if c.json {
		return writeJSON(m.Stdout, st)
	}
	printStatus(m.Stdout, st)
	return nil
}

func printStatus(w io.Writer, st gateway.Status) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	if st.Live {
		fmt.Fprintf(tw, "state\t%s\n", st.State)
	} else {
		fmt.Fprintf(tw, "state\tnot running (no gateway holds the home's lock; last recorded state %s)\n", st.State)
	}
	fmt.Fprintf(tw, "turns in flight\t%d\n", st.ActiveAgents)
	if st.ActiveAgents > 0 {
		fmt.Fprintf(tw, "oldest turn\t%v\n", roundAge(seconds(st.OldestTurnSeconds)))
	}
	if st.SpooledEvents > 0 {
		fmt.Fprintf(tw, "spooled events\t%d\n", st.SpooledEvents)
	}
	if d := st.Drain; d != nil {
		who := d.Principal
		if who == "" {
			who = "unknown"
		}
		fmt.Fprintf(tw, "drain request\t%s: by %s at %s (request_id %s, suppress_notification %t",
			d.Status, who, d.RequestedAt.Format(time.RFC3339), orDash(d.RequestID), d.SuppressNotification)
		if !d.ExpiresAt.IsZero() && d.Status == "active" {
			fmt.Fprintf(tw, ", expires %s", d.ExpiresAt.Format(time.RFC3339))
		}
		fmt.Fprintln(tw, ")")
	} else {
		fmt.Fprintf(tw, "drain request\tnone\n")
	}
	fmt.Fprintf(tw, "epoch\t%s\n", orDash(st.Epoch))
	if st.EpochError != "" {
		fmt.Fprintf(tw, "epoch error\t%s (markers drain by presence only, never suppress)\n", st.EpochError)
	}
	fmt.Fprintf(tw, "pid\t%d\n", st.PID)
	fmt.Fprintf(tw, "uptime\t%v\n", seconds(st.UptimeSeconds).Round(time.Second))
	_ = tw.Flush()
}

func seconds(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// shutdownCmd is "quiesce shutdown".
type shutdownCmd struct {
	target
	force   bool
	wait    bool
	timeout time.Duration
}

func (c *shutdownCmd) flagSet(m *Main) *flagSet {
	fs := m.newFlagSet("shutdown", "[--force] [--wait [--timeout 60s]] [--json]", `
Start the shutdown sequence: refuse new turns, broadcast once (unless the
drain suppressed it), wait up to the drain timeout for in-flight turns, then
interrupt the rest and ping each cut-off session. Without --wait it returns
at once; with --wait, when the gateway process has exited (exit 3 if it has
not at --timeout). Locally it sends SIGTERM to the pid holding the home's lock
(then SIGINT for --force: a repeated SIGTERM changes nothing, a SIGINT while
shutting down forces).`)
	c.target.register(fs)
	fs.BoolVar(&c.force, "force", false, "interrupt in-flight turns now")
	fs.BoolVar(&c.wait, "wait", false, "return when the gateway process has exited")
	fs.DurationVar(&c.timeout, "timeout", 60*time.Second, "with --wait: give up after this long (exit 3)")
	return fs
}

func (c *shutdownCmd) run(ctx context.Context, m *Main) error {
	if err := positive("--timeout", c.timeout); err != nil {
		return err
	}
	ctl, err := c.control(m)
	if err != nil {
		return err
	}
	res, err := ctl.Shutdown(ctx, c.force)
	if err != nil {
		return err
	}
	if c.json {
		err = writeJSON(m.Stdout, res)
	} else {
		printShutdown(m.Stdout, res)
	}
	if err != nil || !c.wait {
		return err
	}
	start := time.Now()
	wctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	if err := ctl.WaitExited(wctx); err != nil {
		if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
			return fmt.Errorf("%w after %v: %v", errWaitTimeout, c.timeout, err)
		}
		return err
	}
	if !c.json {
		fmt.Fprintf(m.Stdout, "the gateway has exited (after %v)\n", roundAge(time.Since(start)))
	}
	return nil
}

func printShutdown(w io.Writer, res shutdownResult) {
	switch {
	case len(res.Signals) == 1:
		fmt.Fprintf(w, "sent SIGTERM to pid %d: shutdown started\n", res.PID)
	case len(res.Signals) > 1:
		fmt.Fprintf(w, "sent SIGTERM then SIGINT to pid %d: forced shutdown\n", res.PID)
	case res.AlreadyShuttingDown && !res.Force:
		fmt.Fprintf(w, "shutdown %s already in progress: nothing changed (state %s; --force interrupts the turns left)\n", res.ShutdownID, res.State)
	case res.AlreadyShuttingDown:
		fmt.Fprintf(w, "shutdown %s already in progress, now forced: turns in flight are interrupted (state %s)\n", res.ShutdownID, res.State)
	default:
		fmt.Fprintf(w, "shutdown %s started (force %t): state %s\n", res.ShutdownID, res.Force, res.State)
	}
}

// positive checks a duration flag that must be greater than zero.
func positive(name string, d time.Duration) error {
	if d <= 0 {
		return usagef("%s %v: must be greater than zero, e.g. 25s or 1m30s", name, d)
	}
	return nil
}

// writeJSON prints v as indented JSON (one document; several make a
// stream jq reads).
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
