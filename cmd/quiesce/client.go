package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/quiesce-dev/quiesce/api"
	"github.com/quiesce-dev/quiesce/fsm"
	"github.com/quiesce-dev/quiesce/gateway"
	"github.com/quiesce-dev/quiesce/marker"
)

// The client commands: each is one straight function over a control,
// which target.control resolves once (HTTP API or local home).

// drainCmd is "quiesce drain".
type drainCmd struct {
	target
	fs        *flagSet // to tell a flag given from its default
	suppress  bool
	reason    string
	requestID string
	announce  time.Duration
	wait      bool
	timeout   time.Duration
	// timeoutOK makes a --wait that timed out exit 0 (still saying so), for
	// hooks whose failure only adds noise: a Kubernetes preStop, which
	// SIGTERM and the shutdown sequence follow anyway.
	timeoutOK bool
}

func (c *drainCmd) flagSet(m *Main) *flagSet {
	fs := m.newFlagSet("drain", "[--suppress-notification] [--reason TEXT] [--announce D] [--request-id ID] [--wait [--timeout 60s] [--exit-zero-on-timeout]] [--json]", `
Request a drain: the gateway stops starting new turns (they get 503 with
Retry-After) while in-flight turns finish. It stays up, and 'cancel' undoes
it. A drain while one is active replaces it (and says so). A drain naming
the active drain's --request-id refreshes it instead: its age (and expiry)
starts again, and its --suppress-notification and --reason stay as they were
unless given again. With --announce D (needs --url), /readyz fails at once
while the gateway still accepts turns for D, so a load balancer stops sending
them before the gate closes; the command returns once the gate has closed.
With --wait, wait until no turn is in flight, showing
the turns in flight and the oldest one's age; exit 3 if turns are still
running at --timeout ('wait' waits again without draining again).`)
	c.target.register(fs)
	fs.BoolVar(&c.suppress, "suppress-notification", false, "if this drain ends in a shutdown, skip the home-channel broadcast (interrupt pings are never skipped)")
	fs.StringVar(&c.reason, "reason", "", "why, shown in status, the page and the logs (at most 200 characters of printable text)")
	fs.StringVar(&c.requestID, "request-id", "", "id of this drain request (default: generated); the active drain's id refreshes it")
	fs.DurationVar(&c.announce, "announce", 0, "fail /readyz for this long (at most 5m) before the gate closes, so a load balancer stops sending turns first; at least its time to mark a server down (needs --url)")
	fs.BoolVar(&c.wait, "wait", false, "wait until no turn is in flight")
	fs.DurationVar(&c.timeout, "timeout", 60*time.Second, "with --wait: give up after this long (exit 3)")
	fs.BoolVar(&c.timeoutOK, "exit-zero-on-timeout", false, "with --wait: a timeout is reported on stderr but exits 0 (for a Kubernetes preStop hook: SIGTERM and the shutdown sequence follow anyway)")
	c.fs = fs
	return fs
}

func (c *drainCmd) run(ctx context.Context, m *Main) error {
	if err := positive("--timeout", c.timeout); err != nil {
		return err
	}
	if c.timeoutOK && !c.wait {
		return usagef("--exit-zero-on-timeout needs --wait")
	}
	if c.fs.given("timeout") && !c.wait {
		return usagef("--timeout bounds --wait: add --wait, or leave --timeout out (without --wait, drain returns at once)")
	}
	if err := c.checkAnnounce(); err != nil {
		return err
	}
	req := gateway.DrainRequest{RequestID: c.requestID, Announce: c.announce}
	if c.fs.given("suppress-notification") {
		req.SuppressNotification = &c.suppress
	}
	if c.fs.given("reason") {
		if err := marker.CheckReason(c.reason); err != nil {
			return usagef("--reason: %s", strings.TrimPrefix(err.Error(), marker.ErrInvalidRequest.Error()+": "))
		}
		req.Reason = &c.reason
	}
	ctl, err := c.control(m)
	if err != nil {
		return err
	}
	res, err := ctl.Drain(ctx, req)
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
	st, err := waitIdle(ctx, ctl, newProgress(m.Stdout, c.json), c.timeout, waitDrained)
	if errors.Is(err, errWaitTimeout) {
		err = fmt.Errorf("%w; the drain stays in place: to wait again without draining again, run '%s wait%s --timeout %v', or undo it with '%s cancel%s'",
			err, m.programName(), c.target.flags(), c.timeout, m.programName(), c.target.flags())
	}
	err = printWaited(m, c.json, st, err)
	if c.timeoutOK && errors.Is(err, errWaitTimeout) {
		fmt.Fprintf(m.Stderr, "%s drain: %v (exit 0: --exit-zero-on-timeout)\n", m.Program, err)
		return nil
	}
	return err
}

// checkAnnounce checks --announce: 0 to gateway.MaxAnnounce, and only
// over HTTP (a live gateway's /readyz must fail while its gate is open;
// the marker, all a local drain has, closes the gate at once).
func (c *drainCmd) checkAnnounce() error {
	switch {
	case c.announce < 0 || c.announce > gateway.MaxAnnounce:
		return usagef("--announce %v: must be from 0 to %v", c.announce, gateway.MaxAnnounce)
	case c.announce > 0 && c.url == "":
		return usagef("--announce needs --url (QUIESCE_URL): only the live gateway's API can fail /readyz while its gate stays open")
	}
	return nil
}

// printWaited prints, with --json, the status a wait ended with (idle or
// timed out) and returns err.
func printWaited(m *Main, asJSON bool, st api.Status, err error) error {
	if asJSON && (err == nil || errors.Is(err, errWaitTimeout)) {
		idle := err == nil
		if jerr := writeJSON(m.Stdout, api.StatusResponse{Status: st, Idle: &idle}); jerr != nil {
			return jerr
		}
	}
	return err
}

func printDrain(w io.Writer, res drainResult) {
	where := ""
	if res.Home != "" {
		where = " in " + res.Home
	}
	verb := "requested"
	if res.Refreshed {
		verb = "refreshed"
	}
	fmt.Fprintf(w, "drain %s%s by %s (request_id %s, suppress_notification %t", verb,
		where, res.Principal, res.RequestID, res.SuppressNotification)
	if res.Reason != "" {
		fmt.Fprintf(w, ", reason %q", res.Reason)
	}
	if !res.ExpiresAt.IsZero() && res.Live == nil { // a local drain does not know the gateway's --drain-max-age
		fmt.Fprintf(w, ", expires %s", res.ExpiresAt.Format(time.RFC3339))
	}
	fmt.Fprint(w, ")")
	if res.WasDraining && !res.Refreshed {
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
	case res.Live != nil && *res.Live && res.State == fsm.Draining && !res.WasDraining:
		fmt.Fprintf(w, ": state %s, %s in flight; the gateway drains without a marker here "+
			"(a drain it holds in memory because the marker could not be written): cancel it through its API (--url)\n",
			res.State, turns(res.ActiveAgents))
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

// Exit codes of status, by state, like systemctl is-active.
const (
	statusRunning      = 0
	statusDraining     = 3
	statusShuttingDown = 4
	statusNotRunning   = 5 // stopped, or dead (no process holds the home)
	statusUnreachable  = 6 // --url: connection refused or no answer in time
	statusStarting     = 7 // local: a gateway holds the home but has not written its state yet
)

// statusExit is an exit code status chooses by state; err, if set, is
// printed as any error (Main prints nothing for a nil err).
type statusExit struct {
	code int
	err  error
}

// Error implements error.
func (e *statusExit) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit %d", e.code)
	}
	return e.err.Error()
}

// Unwrap returns the cause.
func (e *statusExit) Unwrap() error { return e.err }

func (c *statusCmd) flagSet(m *Main) *flagSet {
	fs := m.newFlagSet("status", "[--json]", `
Show the gateway's state, turns in flight and the oldest one's age, the drain
request, epoch, pid and uptime. Locally (no --url) the home's lock says
whether a gateway is live; a live gateway is asked for its state over
loopback (its state file may be stale), one that holds the lock but has not
written its state yet is "starting", and a dead or stopped one is "not
running" with its last pid.

Exits by state, like 'systemctl is-active' (also with --json):
  0 running, 3 draining, 4 shutting down, 5 not running (stopped or dead),
  6 unreachable (--url: connection refused or no answer in time),
  7 starting (local), 1 any other error.`)
	c.target.register(fs)
	return fs
}

func (c *statusCmd) run(ctx context.Context, m *Main) error {
	ctl, err := c.control(m)
	if err != nil {
		return err
	}
	v, err := ctl.Describe(ctx)
	if err != nil {
		if errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, context.DeadlineExceeded) {
			return &statusExit{code: statusUnreachable, err: err}
		}
		return err
	}
	if c.json {
		err = writeJSON(m.Stdout, v)
	} else {
		printStatus(m.Stdout, v)
	}
	if err != nil {
		return err
	}
	if code := statusCode(v); code != statusRunning {
		return &statusExit{code: code}
	}
	return nil
}

// statusCode is status's exit code for v.
func statusCode(v statusView) int {
	switch {
	case v.local != nil && v.local.Condition == gateway.HomeStarting:
		return statusStarting
	case v.local != nil && v.local.Condition == gateway.HomeNotRunning:
		return statusNotRunning
	}
	switch v.State {
	case fsm.Running:
		return statusRunning
	case fsm.Draining:
		return statusDraining
	case fsm.ShuttingDown:
		return statusShuttingDown
	default:
		return statusNotRunning
	}
}

func printStatus(w io.Writer, v statusView) {
	st, loc := v.Status, v.local
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	live := true
	switch {
	case loc == nil:
		fmt.Fprintf(tw, "state\t%s\n", st.State)
	case loc.Condition == gateway.HomeStarting:
		who := "a gateway"
		if st.PID > 0 {
			who = fmt.Sprintf("pid %d", st.PID)
		}
		fmt.Fprintf(tw, "state\tstarting (%s holds the home's lock and has not written its state yet)\n", who)
		live = false
	case loc.Condition == gateway.HomeNotRunning:
		fmt.Fprintf(tw, "state\t%s\n", notRunningLine(st, loc))
		live = false
	case loc.Stale != "":
		fmt.Fprintf(tw, "state\t%s (%s)\n", st.State, loc.Stale)
	default:
		fmt.Fprintf(tw, "state\t%s\n", st.State)
	}
	if live {
		fmt.Fprintf(tw, "turns in flight\t%d\n", st.ActiveAgents)
		if st.ActiveAgents > 0 {
			fmt.Fprintf(tw, "oldest turn\t%v\n", roundAge(seconds(st.OldestTurnSeconds)))
		}
	}
	if st.SpooledEvents > 0 {
		fmt.Fprintf(tw, "spooled events\t%d\n", st.SpooledEvents)
	}
	printDrain := func(d *api.DrainInfo) {
		if d.Status == marker.Contentless.String() {
			why := "the marker file holds no drain request quiesce can read"
			if loc != nil && loc.MarkerProblem != "" {
				why = loc.MarkerProblem
			}
			fmt.Fprintf(tw, "drain request\tcontentless: %s; it drains by its presence until cancelled ('quiesce cancel' removes it) or it expires, its age counted from the file's modification time\n", why)
			return
		}
		who := d.Principal
		if who == "" {
			who = "an unnamed principal"
		}
		at := "an unknown time"
		if !d.RequestedAt.IsZero() {
			at = d.RequestedAt.Format(time.RFC3339)
		}
		fmt.Fprintf(tw, "drain request\t%s: by %s at %s (request_id %s, suppress_notification %t",
			d.Status, who, at, orDash(d.RequestID), d.SuppressNotification)
		if d.Reason != "" {
			fmt.Fprintf(tw, ", reason %q", d.Reason)
		}
		if !d.ExpiresAt.IsZero() && d.Status == "active" {
			fmt.Fprintf(tw, ", expires %s", d.ExpiresAt.Format(time.RFC3339))
		}
		fmt.Fprintln(tw, ")")
		if !d.AnnounceUntil.IsZero() {
			fmt.Fprintf(tw, "\tANNOUNCED: /readyz fails, turns are still accepted; the gate closes at %s\n", d.AnnounceUntil.Format(time.RFC3339))
		}
		if !d.Persisted && d.Status == "active" {
			fmt.Fprintf(tw, "\tNOT PERSISTED: the marker could not be written; the gateway drains from memory and a restart forgets it\n")
		}
	}
	switch {
	case st.Drain != nil:
		printDrain(st.Drain)
	case loc != nil && live && st.State == fsm.Draining:
		fmt.Fprintf(tw, "drain request\tnone on disk: the gateway drains, but no marker is in %s (its write failed?): a restart would come up running\n", loc.Home)
	default:
		fmt.Fprintf(tw, "drain request\tnone\n")
	}
	fmt.Fprintf(tw, "epoch\t%s\n", orDash(st.Epoch))
	if st.EpochError != "" {
		fmt.Fprintf(tw, "epoch error\t%s (markers drain by presence only, never suppress)\n", st.EpochError)
	}
	if live {
		fmt.Fprintf(tw, "pid\t%d\n", st.PID)
		fmt.Fprintf(tw, "uptime\t%v\n", seconds(st.UptimeSeconds).Round(time.Second))
		if st.Version != "" {
			fmt.Fprintf(tw, "version\t%s\n", st.Version)
		}
		if a := st.Agent; a != nil {
			fmt.Fprintf(tw, "agent\t%s, %d failed turns since start", a.Kind, a.Failures)
			if a.LastError != "" {
				fmt.Fprintf(tw, "; last at %s: %s", a.LastErrorAt.Format(time.RFC3339), a.LastError)
			}
			fmt.Fprintln(tw)
		}
	}
	_ = tw.Flush()
}

// notRunningLine describes a home no gateway holds.
func notRunningLine(st api.Status, loc *localStatus) string {
	switch {
	case loc.LastState == "":
		return fmt.Sprintf("not running (last pid %d; it never wrote its state)", st.PID)
	case loc.LastState == fsm.Stopped:
		return fmt.Sprintf("not running (last pid %d, stopped at %s)", st.PID, loc.LastSeen.UTC().Format(time.RFC3339))
	default:
		return fmt.Sprintf("not running (last pid %d, last seen %s at %s: it died without shutting down)",
			st.PID, loc.LastState, loc.LastSeen.UTC().Format(time.RFC3339))
	}
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
	if err != nil && c.wait && (errors.Is(err, errNotRunning) || errors.Is(err, syscall.ECONNREFUSED)) {
		// What --wait waits for has happened already.
		if c.json {
			return writeJSON(m.Stdout, struct {
				OK             bool   `json:"ok"`
				AlreadyStopped bool   `json:"already_stopped"`
				Message        string `json:"message"`
			}{true, true, err.Error()})
		}
		fmt.Fprintf(m.Stdout, "already stopped: %s\n", err)
		return nil
	}
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
