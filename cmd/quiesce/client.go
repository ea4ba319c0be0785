package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"golang.org/x/term"

	"github.com/quiesce-dev/quiesce/fsm"
	"github.com/quiesce-dev/quiesce/gateway"
	"github.com/quiesce-dev/quiesce/server"
)

const (
	// requestTimeout bounds each HTTP call of a client command.
	requestTimeout = 10 * time.Second
	// waitPollInterval is how often drain --wait reads the status.
	waitPollInterval = 250 * time.Millisecond
	// signalSettleTimeout bounds how long local shutdown --force waits
	// for its SIGTERM to show in the state file before the SIGINT (sent
	// together, they may arrive in either order).
	signalSettleTimeout = 5 * time.Second
)

// target is where a client command acts: the HTTP API at url, or the
// gateway home on this machine.
type target struct {
	home      string
	url       string
	tokenFile string
	procRoot  string
}

func (t *target) register(fs *flagSet) {
	fs.StringVar(&t.home, "home", "./.quiesce", "gateway home (used when --url is not set, and for the default --token-file)")
	fs.StringVar(&t.url, "url", "", "gateway API base URL, e.g. http://127.0.0.1:8470 (default: act on --home directly)")
	fs.StringVar(&t.tokenFile, "token-file", "", "file with the bearer token (a bare token or \"principal token\" lines; default $home/tokens); QUIESCE_TOKEN wins")
	fs.StringVar(&t.procRoot, "proc-root", gateway.DefaultProcRoot, "proc file system root for the instance epoch")
	fs.withEnv("home", "url", "token-file", "proc-root")
}

// client returns the API client, or nil when the command acts locally.
func (t *target) client(m *Main) (*server.Client, error) {
	if t.url == "" {
		return nil, nil
	}
	token := m.Getenv("QUIESCE_TOKEN")
	if token == "" {
		path := t.tokenFile
		if path == "" {
			path = filepath.Join(t.home, "tokens")
		}
		var err error
		if token, err = server.ReadClientToken(path); err != nil {
			return nil, fmt.Errorf("no token: set QUIESCE_TOKEN or --token-file: %w", err)
		}
	}
	c, err := server.NewClient(t.url, token, nil)
	if err != nil {
		return nil, usagef("--url: %v", err)
	}
	return c, nil
}

// status reads the status over HTTP or from the local home.
func (t *target) status(ctx context.Context, c *server.Client) (gateway.Status, error) {
	if c != nil {
		ctx, cancel := context.WithTimeout(ctx, requestTimeout)
		defer cancel()
		return c.Status(ctx)
	}
	st, err := gateway.LocalStatus(t.home, t.procRoot, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return st, fmt.Errorf("no gateway has run in %s (no gateway_state.json); is --home right? %w", t.home, err)
	}
	return st, err
}

// localPrincipal names the operator of a local drain.
func localPrincipal() string {
	if u, err := user.Current(); err == nil && u.Username != "" {
		return "local:" + u.Username
	}
	return "local"
}

// drainCmd is "quiesce drain".
type drainCmd struct {
	target
	suppress  bool
	requestID string
	wait      bool
	timeout   time.Duration
}

func (c *drainCmd) flagSet(m *Main) *flagSet {
	fs := m.newFlagSet("drain", "[--suppress-notification] [--request-id ID] [--wait [--timeout 60s]]", `
Request a drain: the gateway stops starting new turns (they get 503 with
Retry-After) while in-flight turns finish. It stays up, and 'cancel' undoes
it. With --wait, wait until no turn is in flight, showing progress; exit 3 if
turns are still running at --timeout.`)
	c.target.register(fs)
	fs.BoolVar(&c.suppress, "suppress-notification", false, "if this drain ends in a shutdown, skip the home-channel broadcast (interrupt pings are never skipped)")
	fs.StringVar(&c.requestID, "request-id", "", "id of this drain request (default: generated)")
	fs.BoolVar(&c.wait, "wait", false, "wait until no turn is in flight")
	fs.DurationVar(&c.timeout, "timeout", 60*time.Second, "with --wait: give up after this long (exit 3)")
	return fs
}

func (c *drainCmd) run(ctx context.Context, m *Main) error {
	if c.timeout <= 0 {
		return usagef("--timeout must be greater than zero")
	}
	api, err := c.client(m)
	if err != nil {
		return err
	}
	if api != nil {
		rctx, cancel := context.WithTimeout(ctx, requestTimeout)
		res, err := api.Drain(rctx, c.suppress, c.requestID)
		cancel()
		if err != nil {
			return fmt.Errorf("drain: %w", err)
		}
		fmt.Fprintf(m.Stdout, "drain requested by %s (request_id %s, suppress_notification %t): state %s, %s in flight\n",
			res.Principal, res.RequestID, res.SuppressNotification, res.State, turns(res.ActiveAgents))
	} else {
		info, err := gateway.LocalDrain(c.home, c.procRoot, gateway.DrainRequest{
			Principal: localPrincipal(), SuppressNotification: c.suppress, RequestID: c.requestID,
		})
		if err != nil {
			return err
		}
		fmt.Fprintf(m.Stdout, "drain requested in %s by %s (request_id %s, suppress_notification %t); the gateway's watcher picks it up\n",
			c.home, info.Principal, info.RequestID, info.SuppressNotification)
	}
	if !c.wait {
		return nil
	}
	return waitIdle(ctx, m.Stdout, c.timeout, func(ctx context.Context) (gateway.Status, error) {
		return c.status(ctx, api)
	})
}

// waitIdle reads the status every waitPollInterval until the gateway is
// not running and has no turn in flight (nil), the drain is cancelled
// (error), or timeout passes (errWaitTimeout). On a terminal it rewrites
// one progress line; otherwise it prints a line whenever the state or the
// count changes.
func waitIdle(ctx context.Context, w io.Writer, timeout time.Duration, status func(context.Context) (gateway.Status, error)) error {
	tty := isTerminal(w)
	// endLine ends the rewritten progress line before any other output.
	endLine := func() {
		if tty {
			fmt.Fprintln(w)
		}
	}
	start := time.Now()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(waitPollInterval)
	defer tick.Stop()
	var last string
	drained := false
	for {
		st, err := status(ctx)
		if err != nil {
			endLine()
			return fmt.Errorf("wait: %w", err)
		}
		elapsed := time.Since(start).Round(100 * time.Millisecond)
		summary := fmt.Sprintf("%s, %s in flight", st.State, turns(st.ActiveAgents))
		switch {
		case tty:
			fmt.Fprintf(w, "\r\033[K%s (%v)", summary, elapsed)
		case summary != last:
			fmt.Fprintf(w, "%s (%v)\n", summary, elapsed)
		}
		last = summary
		if st.State != fsm.Running {
			drained = true
			if st.ActiveAgents == 0 {
				endLine()
				fmt.Fprintf(w, "idle: no turn in flight after %v\n", elapsed)
				return nil
			}
		} else if drained {
			endLine()
			return errors.New("wait: the drain was cancelled (state is running again)")
		}
		select {
		case <-ctx.Done():
			endLine()
			return ctx.Err()
		case <-deadline.C:
			endLine()
			return fmt.Errorf("%w: %s still in flight after %v (state %s)", errWaitTimeout, turns(st.ActiveAgents), timeout, st.State)
		case <-tick.C:
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

// cancelCmd is "quiesce cancel".
type cancelCmd struct {
	target
	requestID string
}

func (c *cancelCmd) flagSet(m *Main) *flagSet {
	fs := m.newFlagSet("cancel", "[--request-id ID]", `
Cancel the drain: the gateway starts accepting turns again (unless it is
shutting down: shutdown wins). Idempotent. With --request-id, cancel only that
drain; if another is active nothing changes and the command fails.`)
	c.target.register(fs)
	fs.StringVar(&c.requestID, "request-id", "", "cancel only the drain with this id")
	return fs
}

func (c *cancelCmd) run(ctx context.Context, m *Main) error {
	api, err := c.client(m)
	if err != nil {
		return err
	}
	if api != nil {
		ctx, cancel := context.WithTimeout(ctx, requestTimeout)
		defer cancel()
		res, err := api.Cancel(ctx, c.requestID)
		if err != nil {
			return fmt.Errorf("cancel: %w", err)
		}
		fmt.Fprintf(m.Stdout, "drain cancelled (was draining: %t): state %s, %s in flight\n",
			res.WasDraining, res.State, turns(res.ActiveAgents))
		return nil
	}
	was, err := gateway.LocalCancel(c.home, c.requestID)
	if err != nil {
		return err
	}
	fmt.Fprintf(m.Stdout, "drain cancelled in %s (was draining: %t); the gateway's watcher picks it up\n", c.home, was)
	return nil
}

// statusCmd is "quiesce status".
type statusCmd struct {
	target
	json bool
}

func (c *statusCmd) flagSet(m *Main) *flagSet {
	fs := m.newFlagSet("status", "[--json]", `
Show the gateway's state, turns in flight, drain request, epoch, pid and
uptime. Locally it reads $home/gateway_state.json and the drain marker.`)
	c.target.register(fs)
	fs.BoolVar(&c.json, "json", false, "print the API's JSON document")
	return fs
}

func (c *statusCmd) run(ctx context.Context, m *Main) error {
	api, err := c.client(m)
	if err != nil {
		return err
	}
	st, err := c.status(ctx, api)
	if err != nil {
		return fmt.Errorf("status: %w", err)
	}
	if c.json {
		enc := json.NewEncoder(m.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(st)
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
	if st.OldestTurnSeconds > 0 {
		fmt.Fprintf(tw, "oldest turn\t%v\n", time.Duration(st.OldestTurnSeconds*float64(time.Second)).Round(100*time.Millisecond))
	}
	if d := st.Drain; d != nil {
		who := d.Principal
		if who == "" {
			who = "unknown"
		}
		fmt.Fprintf(tw, "drain request\t%s: by %s at %s (request_id %s, suppress_notification %t)\n",
			d.Status, who, d.RequestedAt.Format(time.RFC3339), orDash(d.RequestID), d.SuppressNotification)
	} else {
		fmt.Fprintf(tw, "drain request\tnone\n")
	}
	fmt.Fprintf(tw, "epoch\t%s\n", orDash(st.Epoch))
	if st.EpochError != "" {
		fmt.Fprintf(tw, "epoch error\t%s (markers drain by presence only, never suppress)\n", st.EpochError)
	}
	fmt.Fprintf(tw, "pid\t%d\n", st.PID)
	fmt.Fprintf(tw, "uptime\t%v\n", (time.Duration(st.UptimeSeconds * float64(time.Second))).Round(time.Second))
	_ = tw.Flush()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// shutdownCmd is "quiesce shutdown".
type shutdownCmd struct {
	target
	force bool
}

func (c *shutdownCmd) flagSet(m *Main) *flagSet {
	fs := m.newFlagSet("shutdown", "[--force]", `
Start the shutdown sequence: refuse new turns, broadcast once (unless the
drain suppressed it), wait up to the drain timeout for in-flight turns, then
interrupt the rest and ping each cut-off session. Returns without waiting.
Locally it sends SIGTERM to the gateway's pid (then SIGINT for --force: a
repeated SIGTERM changes nothing, a SIGINT while shutting down forces).`)
	c.target.register(fs)
	fs.BoolVar(&c.force, "force", false, "interrupt in-flight turns now")
	return fs
}

func (c *shutdownCmd) run(ctx context.Context, m *Main) error {
	api, err := c.client(m)
	if err != nil {
		return err
	}
	if api != nil {
		ctx, cancel := context.WithTimeout(ctx, requestTimeout)
		defer cancel()
		res, err := api.Shutdown(ctx, c.force)
		if err != nil {
			return fmt.Errorf("shutdown: %w", err)
		}
		fmt.Fprintf(m.Stdout, "shutdown %s started (force %t): state %s\n", res.ShutdownID, res.Force, res.State)
		return nil
	}
	st, err := c.status(ctx, nil)
	if err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	if err := checkGatewayProcess(st); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	if err := syscall.Kill(st.PID, syscall.SIGTERM); err != nil {
		return fmt.Errorf("shutdown: signal pid %d: %w", st.PID, err)
	}
	if !c.force {
		fmt.Fprintf(m.Stdout, "sent SIGTERM to pid %d: shutdown started\n", st.PID)
		return nil
	}
	// Two signals sent back to back may arrive as one: wait until the
	// first has started the sequence (the state file says so).
	if err := c.awaitShutdownStarted(ctx); err != nil {
		return fmt.Errorf("shutdown --force: %w", err)
	}
	if err := syscall.Kill(st.PID, syscall.SIGINT); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("shutdown: signal pid %d: %w", st.PID, err)
	}
	fmt.Fprintf(m.Stdout, "sent SIGTERM then SIGINT to pid %d: forced shutdown\n", st.PID)
	return nil
}

func (c *shutdownCmd) awaitShutdownStarted(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, signalSettleTimeout)
	defer cancel()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		st, err := c.status(ctx, nil)
		if err == nil && (st.State == fsm.ShuttingDown || st.State == fsm.Stopped) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("the gateway did not report shutting_down: %w", ctx.Err())
		case <-tick.C:
		}
	}
}

// checkGatewayProcess refuses to signal a pid from a state file that
// names a stopped gateway, a dead process, or (where /proc tells) a
// process that is not quiesce: the pid may have been reused.
func checkGatewayProcess(st gateway.Status) error {
	if !st.Live {
		return fmt.Errorf("no gateway holds this home's lock: the gateway is not running (last state %s, pid %d)", st.State, st.PID)
	}
	if st.State == fsm.Stopped {
		return errors.New("the gateway is not running (state stopped)")
	}
	if st.PID <= 0 {
		return fmt.Errorf("the state file has no pid")
	}
	return nil
}

// diagramCmd is "quiesce diagram".
type diagramCmd struct {
	format string
}

func (c *diagramCmd) flagSet(m *Main) *flagSet {
	fs := m.newFlagSet("diagram", "[--format mermaid|dot]", `
Print the lifecycle state machine, drawn from the same table that defines it.`)
	fs.StringVar(&c.format, "format", string(fsm.Mermaid), "mermaid or dot")
	return fs
}

func (c *diagramCmd) run(_ context.Context, m *Main) error {
	switch fsm.Format(c.format) {
	case fsm.Mermaid, fsm.DOT:
	default:
		return usagef("--format %q: want mermaid or dot", c.format)
	}
	out, err := fsm.Describe(fsm.Format(c.format))
	if err != nil {
		return err
	}
	_, err = io.WriteString(m.Stdout, strings.TrimRight(out, "\n")+"\n")
	return err
}
