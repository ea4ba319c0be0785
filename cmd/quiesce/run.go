package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/quiesce-dev/quiesce/agent"
	"github.com/quiesce-dev/quiesce/fsm"
	"github.com/quiesce-dev/quiesce/gateway"
	"github.com/quiesce-dev/quiesce/notify"
	"github.com/quiesce-dev/quiesce/server"
)

// serverCloseTimeout bounds how long run waits, after the gateway has
// stopped, for the last HTTP responses to be written before it closes
// every connection (a slow upload included). The gateway's sequence ends
// within drain + notify timeout; this keeps the whole shutdown within
// drain + notify + 1s, with room for the exit itself.
const serverCloseTimeout = 750 * time.Millisecond

// runCmd is "quiesce run".
type runCmd struct {
	home          string
	addr          string
	procRoot      string
	agent         string
	agentWork     time.Duration
	agentCmd      string
	agentURL      string
	agentTimeout  time.Duration
	drainTimeout  time.Duration
	notifyTimeout time.Duration
	notifyWebhook string
	drainMaxAge   time.Duration
	watchInterval time.Duration
	watchPollOnly bool
	retryAfter    time.Duration
	logLevel      string
	logFormat     string
	dev           bool
	tokensFile    string // "" means $home/tokens
	// webhookPendingMax bounds the webhook's pending record.
	webhookPendingMax int
	// eventRetryFor is how long a failing internal event is retried.
	eventRetryFor time.Duration

	// fs is the flag set flagSet built: validate asks it which flags
	// were given (on the command line or through QUIESCE_*).
	fs *flagSet
}

func (c *runCmd) flagSet(m *Main) *flagSet {
	fs := m.newFlagSet("run", "[flags]", `
Start a gateway: reconcile with a surviving drain marker, then serve the HTTP
API on --addr until SIGTERM or SIGINT (or POST /api/gateway/shutdown) starts
the shutdown sequence; a second signal forces it. Exits 0 after a clean
shutdown. The tokens file ($home/tokens or --tokens-file: "principal token"
per line, mode 0600 or 0400) must exist unless --dev creates one; SIGHUP
reloads it (a file that fails the checks keeps the old tokens). Under systemd
(NOTIFY_SOCKET set) it sends READY=1, STATUS=, STOPPING=1, watchdog pings, and
RELOADING=1 ... READY=1 around a SIGHUP reload (Type=notify-reload). 'quiesce
check' runs the start-up checks without starting. Every flag also reads its
QUIESCE_<FLAG> environment variable (the command line wins). Exits 2 on a
usage error (a flag of another --agent kind included), 78 when it cannot
start as configured (an operator must fix something), 75 when writing the
home failed for a reason a restart may cure (disk full, quota, I/O error,
read-only file system).`)
	fs.StringVar(&c.home, "home", "./.quiesce", "gateway home: marker, state, outbox, spool, tokens (created 0700)")
	fs.StringVar(&c.addr, "addr", server.DefaultAddr, "HTTP listen address (port 0 picks a free port)")
	fs.StringVar(&c.procRoot, "proc-root", gateway.DefaultProcRoot, "proc file system root for the instance epoch (tests, containers)")
	fs.StringVar(&c.agent, "agent", "echo", "agent: echo (a demo: replies with the text after --agent-work), exec (runs --agent-cmd) or http (POSTs each turn to --agent-url)")
	fs.DurationVar(&c.agentWork, "agent-work", 200*time.Millisecond, "echo agent: time each turn takes")
	fs.StringVar(&c.agentCmd, "agent-cmd", "", "exec agent: shell command run per turn, message on stdin, reply from stdout")
	fs.StringVar(&c.agentURL, "agent-url", "", `http agent: URL each turn is POSTed to as {"session","text","turn_id","event_id"}`)
	fs.DurationVar(&c.agentTimeout, "agent-timeout", 0, "http agent: bound on each turn (0: none; a forced shutdown still cuts it off)")
	fs.DurationVar(&c.drainTimeout, "drain-timeout", gateway.DefaultDrainTimeout, "shutdown: how long to wait for in-flight turns before interrupting them")
	fs.DurationVar(&c.notifyTimeout, "notify-timeout", gateway.DefaultNotifyTimeout, "shutdown: how long to wait for notifications to be delivered")
	fs.StringVar(&c.notifyWebhook, "notify-webhook", "", "also POST every notification to this http(s) URL")
	fs.DurationVar(&c.drainMaxAge, "drain-max-age", time.Hour, "a drain marker older than this is expired and ignored")
	fs.DurationVar(&c.watchInterval, "watch-interval", time.Second, "marker poll interval (fsnotify reacts sooner)")
	fs.BoolVar(&c.watchPollOnly, "watch-poll-only", false, "watch the marker by polling every --watch-interval alone, without fsnotify (for file systems whose change notifications miss writes, such as network mounts)")
	fs.DurationVar(&c.retryAfter, "retry-after", server.DefaultRetryAfter, "Retry-After of a refused turn (503)")
	fs.StringVar(&c.logLevel, "log-level", "info", "log level: debug, info, warn, error")
	fs.StringVar(&c.logFormat, "log-format", "text", "log format: text or json (logs go to stderr)")
	fs.BoolVar(&c.dev, "dev", false, "create the tokens file ($home/tokens or --tokens-file) with a random dev token if missing, and print commands to try")
	fs.StringVar(&c.tokensFile, "tokens-file", "", "bearer tokens file, e.g. a mounted Secret (default $home/tokens); SIGHUP reloads it")
	fs.IntVar(&c.webhookPendingMax, "webhook-pending-max", notify.DefaultPendingMax, "most notifications the webhook keeps for redelivery; past it the oldest session pings are dropped first (WARN), never the latest broadcast")
	fs.DurationVar(&c.eventRetryFor, "event-retry-for", gateway.DefaultEventRetryFor, "how long an internal event whose turn fails is retried (capped exponential backoff) before it moves to events.spool.rejected.jsonl")
	fs.alias("token-file", "tokens-file")
	// Last: every flag above gets its QUIESCE_<FLAG> variable.
	fs.withEnvAll()
	c.fs = fs
	return fs
}

// newLogger returns the slog logger for --log-level and --log-format.
func newLogger(w io.Writer, level, format string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, usagef("--log-level %q: want debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	default:
		return nil, usagef("--log-format %q: want text or json", format)
	}
}

// agentFlags names the agent kind each agent-specific flag belongs to.
var agentFlags = []struct{ flag, kind string }{
	{"agent-work", "echo"},
	{"agent-cmd", "exec"},
	{"agent-url", "http"},
	{"agent-timeout", "http"},
}

// validate checks flag values that flag parsing cannot, before anything
// starts: every mistake it finds is a usage error (exit 2).
func (c *runCmd) validate() error {
	for _, check := range []func() error{c.validateAgent, c.validateDurations, c.validateAddr, c.validateWebhook} {
		if err := check(); err != nil {
			return err
		}
	}
	_, err := newLogger(io.Discard, c.logLevel, c.logFormat)
	return err
}

// validateAgent checks --agent and the flags of its kind; a flag that
// belongs to another kind (--agent-url without --agent http) is refused,
// naming the --agent it needs: the echo agent would otherwise answer in
// its place, with the user's own text.
func (c *runCmd) validateAgent() error {
	switch c.agent {
	case "echo", "exec", "http":
	default:
		return usagef("--agent %q: want echo, exec or http", c.agent)
	}
	for _, af := range agentFlags {
		if af.kind == c.agent || !c.given(af.flag) {
			continue
		}
		agent := c.source("agent") + " is " + c.agent
		if !c.given("agent") {
			agent = "--agent is not set, so the agent is echo"
		}
		remove := "remove --" + af.flag
		if c.fs != nil && c.fs.fromEnv[af.flag] != "" {
			remove = "unset " + c.fs.fromEnv[af.flag]
		}
		return usagef("%s is for --agent %s, but %s: add --agent %s, or %s",
			c.source(af.flag), af.kind, agent, af.kind, remove)
	}
	switch c.agent {
	case "exec":
		if strings.TrimSpace(c.agentCmd) == "" {
			return usagef("--agent exec needs --agent-cmd")
		}
	case "http":
		if u, err := url.Parse(c.agentURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return usagef("--agent http needs --agent-url with an http:// or https:// URL, e.g. http://127.0.0.1:9000/turn")
		}
		if c.agentTimeout < 0 {
			return usagef("--agent-timeout %v: must not be negative (0 means none), e.g. 30s", c.agentTimeout)
		}
	}
	return nil
}

// validateDurations checks the duration flags that must be positive, and
// --webhook-pending-max.
func (c *runCmd) validateDurations() error {
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"agent-work", c.agentWork}, {"drain-timeout", c.drainTimeout}, {"notify-timeout", c.notifyTimeout},
		{"drain-max-age", c.drainMaxAge}, {"watch-interval", c.watchInterval}, {"retry-after", c.retryAfter},
		{"event-retry-for", c.eventRetryFor},
	} {
		if d.v < 0 || (d.v == 0 && d.name != "agent-work") {
			return usagef("%s %v: must be greater than zero", c.source(d.name), d.v)
		}
	}
	return nil
}

// validateAddr checks that --addr is host:port with a port the system can
// listen on, so --addr :99999 is a usage error before anything starts.
func (c *runCmd) validateAddr() error {
	_, port, err := net.SplitHostPort(c.addr)
	if err != nil {
		return usagef("%s %q: want host:port, e.g. 127.0.0.1:8470, or :8470 for every interface", c.source("addr"), c.addr)
	}
	if _, err := net.LookupPort("tcp", port); err != nil {
		return usagef("%s %q: port %q is not a port number from 0 to 65535 (0 picks a free one)", c.source("addr"), c.addr, port)
	}
	return nil
}

// validateWebhook checks --notify-webhook and --webhook-pending-max.
func (c *runCmd) validateWebhook() error {
	if c.webhookPendingMax < 1 {
		return usagef("%s %d: must be at least 1 (the latest broadcast is always kept)", c.source("webhook-pending-max"), c.webhookPendingMax)
	}
	if c.notifyWebhook == "" {
		return nil
	}
	u, err := url.Parse(c.notifyWebhook)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return usagef("%s %q: want an http:// or https:// URL", c.source("notify-webhook"), c.notifyWebhook)
	}
	return nil
}

// given reports whether flag name was set on the command line or
// through its environment variable; false when run was built without
// flagSet (a test's literal).
func (c *runCmd) given(name string) bool { return c.fs != nil && c.fs.given(name) }

// source names flag name as the user set it, for messages.
func (c *runCmd) source(name string) string {
	if c.fs == nil {
		return "--" + name
	}
	return c.fs.source(name)
}

// run starts the gateway and the server and runs until the gateway has
// stopped. Start-up, in order: lock the home (inside gateway.New, before
// any other file of the home is opened for writing), tokens, listen (a
// port in use fails here, before the gateway starts), reconcile (gateway
// Start: a surviving marker drains it before any turn is accepted), serve
// (connections that arrived meanwhile waited in the listen backlog); then
// the actor group runs until the gateway is done.
func (c *runCmd) run(ctx context.Context, m *Main) error {
	if err := c.validate(); err != nil {
		return err
	}
	logger, err := newLogger(m.Stderr, c.logLevel, c.logFormat)
	if err != nil {
		return err
	}
	if unknown := m.unknownEnv(); len(unknown) > 0 {
		logger.Warn("ignoring environment variables that no quiesce command reads: check their spelling, or remove them",
			"variables", unknown)
	}
	// Catch signals from the start: one that arrives while the gateway is
	// starting waits here, and starts the shutdown once the group runs.
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	defer signal.Stop(sigs)
	if err := os.MkdirAll(c.home, 0o700); err != nil {
		return startError(fmt.Errorf("create home %s: %w", c.home, err))
	}
	agent, err := c.newAgent(logger)
	if err != nil {
		return err
	}
	// A service manager (systemd, Type=notify) hears of readiness, status
	// changes and the shutdown; nil, and silent, without NOTIFY_SOCKET.
	systemd := newSystemdNotifier(logger, c.drainTimeout+c.notifyTimeout+time.Second)
	defer systemd.close()
	metrics := server.NewMetrics()
	sinks := c.newSinks(logger, metrics)
	gw, err := gateway.New(gateway.Config{
		Home:          c.home,
		ProcRoot:      c.procRoot,
		Agent:         agent,
		Sinks:         sinks,
		DrainTimeout:  c.drainTimeout,
		NotifyTimeout: c.notifyTimeout,
		MaxAge:        c.drainMaxAge,
		EventRetryFor: c.eventRetryFor,
		WatchInterval: c.watchInterval,
		WatchPollOnly: c.watchPollOnly,
		Logger:        logger,
		Metrics:       metrics,
		OnTransition:  systemd.transition,
		Version:       readBuildInfo().Version,
		AgentKind:     c.agent,
	})
	if errors.Is(err, gateway.ErrLocked) || errors.Is(err, gateway.ErrHome) {
		return startError(err)
	} else if err != nil {
		return err
	}
	defer func() {
		if err := gw.Close(); err != nil {
			logger.Warn("close gateway", "error", err)
		}
	}()
	tk, err := c.loadTokens()
	if err != nil {
		return err
	}
	metrics.TokensLoaded(time.Now())
	srv, err := server.New(server.Config{
		Addr:       c.addr,
		Gateway:    gw,
		Tokens:     tk.tokens,
		Metrics:    metrics,
		RetryAfter: c.retryAfter,
		Logger:     logger,
	})
	if err != nil {
		return err
	}
	if err := c.listen(srv); err != nil {
		return err
	}
	// Local status asks the gateway over loopback at this address.
	gw.SetListenAddr(srv.Addr())
	// Watchers and writers of the gateway run until it stops or run ends.
	gctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if err := gw.Start(gctx); err != nil {
		_ = srv.Close(context.Background())
		return fmt.Errorf("start gateway: %w", err)
	}
	srv.Serve()
	logger.Info("listening", "addr", srv.Addr(), "url", srv.URL(), "home", c.home, "epoch", gw.Epoch(),
		"state", gw.Status().State, "pid", os.Getpid(), "agent", c.agent, "tokens", tk.tokens.Len())
	c.warnAtStart(logger, gw)
	if c.dev {
		printDevHelp(m, srv.URL(), c.home, tk.path, tk.devToken, tk.devCreated)
	}
	systemd.ready(gctx, gw)
	err = c.serve(logger, gw, srv, sigs, tk, metrics, systemd)
	logger.Info("exiting", "error", err)
	return err
}

// newAgent builds the agent --agent names.
func (c *runCmd) newAgent(logger *slog.Logger) (agent.Agent, error) {
	switch c.agent {
	case "exec":
		return agent.NewExec(c.agentCmd, logger), nil
	case "http":
		a, err := agent.NewHTTP(c.agentURL, agent.HTTPOptions{Timeout: c.agentTimeout})
		if err != nil {
			return nil, usagef("--agent-url: %v", err)
		}
		return a, nil
	default:
		return agent.NewEcho(c.agentWork), nil
	}
}

// newSinks returns the notification sinks: the log, and the webhook of
// --notify-webhook (which redelivers what it kept, retrying while
// running).
func (c *runCmd) newSinks(logger *slog.Logger, metrics *server.Metrics) []notify.Sink {
	sinks := []notify.Sink{notify.NewLog(logger)}
	if c.notifyWebhook != "" {
		sinks = append(sinks, notify.NewWebhook(c.notifyWebhook, notify.WebhookOptions{
			PendingPath: filepath.Join(c.home, gateway.WebhookPendingFileName),
			PendingMax:  c.webhookPendingMax,
			Observer:    metrics.Notified,
			Logger:      logger,
		}))
	}
	return sinks
}

// runTokens is the tokens file run serves with.
type runTokens struct {
	tokens     *server.Tokens
	path       string
	devToken   string // --dev: the token printed
	devCreated bool   // --dev: the file was created now
}

// loadTokens loads the tokens file (tokensPath), creating it first with
// --dev.
func (c *runCmd) loadTokens() (runTokens, error) {
	tk := runTokens{path: c.tokensPath()}
	var err error
	if c.dev {
		if tk.devToken, tk.devCreated, err = server.EnsureDevToken(tk.path); err != nil {
			return tk, startError(fmt.Errorf("dev token: %w", err))
		}
	}
	if tk.tokens, err = server.LoadTokens(tk.path); err != nil {
		return tk, tokensLoadError(tk.path, err)
	}
	return tk, nil
}

// listen claims --addr, with a hint that follows the errno.
func (c *runCmd) listen(srv *server.Server) error {
	if err := srv.Listen(); err != nil {
		return &configError{fmt.Errorf("%w: %s", err, listenHint(err))}
	}
	return nil
}

// listenHint says what to do about a listen error, by its cause.
func listenHint(err error) string {
	var dnsErr *net.DNSError
	switch {
	case errors.Is(err, syscall.EADDRINUSE):
		return "another process listens on that address (another gateway? 'ss -ltnp' names it): stop it, or pick another --addr"
	case errors.Is(err, syscall.EACCES):
		return "ports below 1024 are privileged: pick a port of 1024 or above, or grant the capability CAP_NET_BIND_SERVICE (systemd: AmbientCapabilities=CAP_NET_BIND_SERVICE)"
	case errors.Is(err, syscall.EADDRNOTAVAIL):
		return "that IP address is not one of this host's: use 127.0.0.1, 0.0.0.0 (every interface) or an address 'ip addr' lists"
	case errors.As(err, &dnsErr):
		return "the host name of --addr does not resolve: use an IP address such as 127.0.0.1"
	default:
		return "check --addr"
	}
}

// warnAtStart logs what an operator should know once the gateway runs:
// that the echo agent is a demo, and a drain a surviving marker imposed
// (who asked, when, the request id, the reason if any, and how to cancel
// it).
func (c *runCmd) warnAtStart(logger *slog.Logger, gw *gateway.Gateway) {
	if c.agent == "echo" {
		logger.Warn("the echo agent is a demo: it answers every turn with the text it was sent; use --agent exec or --agent http for a real agent")
	}
	st := gw.Status()
	if d := st.Drain; d != nil && st.State == fsm.Draining {
		cancelCmd := "quiesce cancel --home " + c.home
		if d.RequestID != "" {
			cancelCmd += " --request-id " + d.RequestID
		}
		principal := d.Principal
		if principal == "" {
			principal = "unknown (the marker names no principal)"
		}
		attrs := []any{"principal", principal, "request_id", d.RequestID, "marker_status", d.Status, "cancel", cancelCmd}
		if d.Reason != "" {
			attrs = append(attrs, "reason", d.Reason)
		}
		if !d.RequestedAt.IsZero() {
			attrs = append(attrs, "requested_at", d.RequestedAt.UTC().Format(time.RFC3339))
		}
		if !d.ExpiresAt.IsZero() {
			attrs = append(attrs, "expires_at", d.ExpiresAt.UTC().Format(time.RFC3339))
		}
		logger.Warn("started draining: a drain request survives in the home, so new turns are refused until it is cancelled or expires", attrs...)
	}
}

// serve runs the actor group until the gateway is done: signals (first
// SIGTERM/SIGINT starts the shutdown sequence, a second SIGINT forces it,
// SIGHUP reloads the tokens), the gateway (returns when stopped) and the
// HTTP server (keeps serving during the sequence, so in-flight turns get
// their replies and status stays readable; closed last).
func (c *runCmd) serve(logger *slog.Logger, gw *gateway.Gateway, srv *server.Server, sigs <-chan os.Signal, tk runTokens,
	metrics *server.Metrics, systemd *systemdNotifier) error {
	var g group
	{
		// Signals: SIGTERM or SIGINT starts the shutdown sequence; a
		// repeated SIGTERM changes nothing (a supervisor and a preStop or
		// ExecStop hook may each send one); a SIGINT while shutting down
		// (Ctrl-C twice) forces it. SIGHUP reloads the tokens file.
		stop := make(chan struct{})
		g.add(func() error {
			for {
				select {
				case sig := <-sigs:
					if sig == syscall.SIGHUP {
						reloadTokens(logger, tk.tokens, tk.path, metrics, systemd)
						continue
					}
					st := gw.BeginShutdown(false)
					if sig == syscall.SIGINT && st.AlreadyShuttingDown {
						st = gw.BeginShutdown(true)
					}
					logger.Info("signal received", "signal", sig.String(), "shutdown_id", st.ID,
						"already_shutting_down", st.AlreadyShuttingDown, "force", st.Force)
				case <-stop:
					return nil
				}
			}
		}, func(error) {
			// Signals stay caught (run's deferred signal.Stop ends that):
			// a supervisor's repeated SIGTERM while the server closes
			// must not kill the process with the default action.
			close(stop)
		})
	}
	{
		// The gateway: done once the shutdown sequence has finished.
		g.add(func() error {
			<-gw.Done()
			return nil
		}, func(error) {
			select {
			case <-gw.Done():
			default:
				gw.BeginShutdown(false)
			}
		})
	}
	{
		// The HTTP server: serves throughout the shutdown sequence; closed
		// after the gateway has stopped, letting the last responses finish.
		g.add(func() error {
			if err := <-srv.Done(); err != nil {
				return fmt.Errorf("http server: %w", err)
			}
			return nil
		}, func(error) {
			ctx, cancel := context.WithTimeout(context.Background(), serverCloseTimeout)
			defer cancel()
			if err := srv.Close(ctx); err != nil {
				logger.Warn("http server close", "error", err)
			}
		})
	}
	return g.run()
}

// printDevHelp prints the dev token and the commands to try.
func printDevHelp(m *Main, baseURL, home, tokensPath, token string, created bool) {
	w := m.Stdout
	if created {
		fmt.Fprintf(w, "\nCreated %s with a dev token for principal %q.\n", tokensPath, server.DevPrincipal)
	} else {
		fmt.Fprintf(w, "\nUsing the first token of %s.\n", tokensPath)
	}
	fmt.Fprintf(w, `Gateway listening on %[1]s (home %[4]s); its status page is %[1]s/
(paste the token below there for drain and cancel buttons). In a second terminal, try:

  export QUIESCE_URL=%[1]s QUIESCE_TOKEN=%[2]s
  # a turn: the echo agent replies
  curl -s -H "Authorization: Bearer $QUIESCE_TOKEN" -d '{"text":"hello"}' $QUIESCE_URL/v1/sessions/alice/messages
  # drain: running turns finish, new ones get 503 + Retry-After
  curl -s -H "Authorization: Bearer $QUIESCE_TOKEN" -X POST $QUIESCE_URL/api/gateway/drain
  curl -si -H "Authorization: Bearer $QUIESCE_TOKEN" -d '{"text":"hello again"}' $QUIESCE_URL/v1/sessions/alice/messages
  # cancel the drain, read the status
  curl -s -H "Authorization: Bearer $QUIESCE_TOKEN" -d '{"action":"cancel"}' $QUIESCE_URL/api/gateway/drain
  curl -s -H "Authorization: Bearer $QUIESCE_TOKEN" $QUIESCE_URL/api/gateway/status

  # the same with the CLI
  %[3]s drain --wait
  %[3]s status
  %[3]s cancel
  %[3]s shutdown          # or Ctrl-C here; a second Ctrl-C forces
  # without QUIESCE_URL the CLI acts on the home directly
  %[3]s status --home %[4]s

`, baseURL, token, m.Program, home)
}
