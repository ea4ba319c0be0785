package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

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
	homeChannel   string
	retryAfter    time.Duration
	logLevel      string
	logFormat     string
	dev           bool
	tokensFile    string // "" means $home/tokens
	// webhookPendingMax bounds the webhook's pending record.
	webhookPendingMax int
	// eventRetryFor is how long a failing internal event is retried.
	eventRetryFor time.Duration
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
check' runs the start-up checks without starting.
Exits 78 when it cannot start as configured.`)
	fs.StringVar(&c.home, "home", "./.quiesce", "gateway home: marker, state, outbox, spool, tokens (created 0700)")
	fs.StringVar(&c.addr, "addr", server.DefaultAddr, "HTTP listen address (port 0 picks a free port)")
	fs.StringVar(&c.procRoot, "proc-root", gateway.DefaultProcRoot, "proc file system root for the instance epoch (tests, containers)")
	fs.StringVar(&c.agent, "agent", "echo", "agent: echo (replies with the text after --agent-work), exec (runs --agent-cmd) or http (POSTs each turn to --agent-url)")
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
	fs.StringVar(&c.homeChannel, "home-channel", notify.HomeTarget, "label of the home channel the shutdown broadcast goes to (logged)")
	fs.DurationVar(&c.retryAfter, "retry-after", server.DefaultRetryAfter, "Retry-After of a refused turn (503)")
	fs.StringVar(&c.logLevel, "log-level", "info", "log level: debug, info, warn, error")
	fs.StringVar(&c.logFormat, "log-format", "text", "log format: text or json (logs go to stderr)")
	fs.BoolVar(&c.dev, "dev", false, "create the tokens file ($home/tokens or --tokens-file) with a random dev token if missing, and print commands to try")
	fs.StringVar(&c.tokensFile, "tokens-file", "", "bearer tokens file, e.g. a mounted Secret (default $home/tokens); SIGHUP reloads it")
	fs.IntVar(&c.webhookPendingMax, "webhook-pending-max", notify.DefaultPendingMax, "most notifications the webhook keeps for redelivery; past it the oldest session pings are dropped first (WARN), never the latest broadcast")
	fs.DurationVar(&c.eventRetryFor, "event-retry-for", gateway.DefaultEventRetryFor, "how long an internal event whose turn fails is retried (capped exponential backoff) before it moves to events.spool.rejected.jsonl")
	fs.withEnv("tokens-file", "webhook-pending-max", "event-retry-for")
	fs.withEnv("home", "addr", "proc-root", "agent", "agent-work", "agent-cmd", "agent-url", "agent-timeout", "drain-timeout", "notify-timeout",
		"notify-webhook", "drain-max-age", "watch-interval", "home-channel", "retry-after", "log-level", "log-format")
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

// validate checks flag values that flag parsing cannot.
func (c *runCmd) validate() error {
	switch c.agent {
	case "echo":
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
	default:
		return usagef("--agent %q: want echo, exec or http", c.agent)
	}
	for name, d := range map[string]time.Duration{
		"--agent-work": c.agentWork, "--drain-timeout": c.drainTimeout, "--notify-timeout": c.notifyTimeout,
		"--drain-max-age": c.drainMaxAge, "--watch-interval": c.watchInterval, "--retry-after": c.retryAfter,
		"--event-retry-for": c.eventRetryFor,
	} {
		if d < 0 || (d == 0 && name != "--agent-work") {
			return usagef("%s %v: must be greater than zero", name, d)
		}
	}
	if c.webhookPendingMax < 1 {
		return usagef("--webhook-pending-max %d: must be at least 1 (the latest broadcast is always kept)", c.webhookPendingMax)
	}
	if c.notifyWebhook != "" {
		u, err := url.Parse(c.notifyWebhook)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return usagef("--notify-webhook %q: want an http:// or https:// URL", c.notifyWebhook)
		}
	}
	return nil
}

// run starts the gateway and the server and runs until the gateway has
// stopped: first the server claims its address, then the gateway starts
// (a surviving marker drains it before any turn is accepted), then the
// server serves, and three actors run
// until the gateway is done — signals (first SIGTERM/SIGINT starts the
// shutdown sequence, a second forces it), the gateway (returns when
// stopped) and the HTTP server (keeps serving during the sequence, so
// in-flight turns get their replies and status stays readable; closed last).
func (c *runCmd) run(ctx context.Context, m *Main) error {
	if err := c.validate(); err != nil {
		return err
	}
	logger, err := newLogger(m.Stderr, c.logLevel, c.logFormat)
	if err != nil {
		return err
	}
	// Catch signals from the start: one that arrives while the gateway is
	// starting waits here, and starts the shutdown once the group runs.
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	defer signal.Stop(sigs)
	// Start-up, in order: lock the home (inside gateway.New, before any
	// other file of the home is opened for writing), tokens, listen,
	// reconcile (gateway Start), serve.
	if err := os.MkdirAll(c.home, 0o700); err != nil {
		return &configError{fmt.Errorf("create home %s: %w", c.home, err)}
	}
	var agent gateway.Agent
	switch c.agent {
	case "exec":
		agent = gateway.NewExec(c.agentCmd, logger)
	case "http":
		if agent, err = gateway.NewHTTP(c.agentURL, gateway.HTTPAgentOptions{Timeout: c.agentTimeout}); err != nil {
			return usagef("--agent-url: %v", err)
		}
	default:
		agent = gateway.NewEcho(c.agentWork)
	}
	// A service manager (systemd, Type=notify) hears of readiness, status
	// changes and the shutdown; nil, and silent, without NOTIFY_SOCKET.
	sd := newSDNotifier(logger, c.drainTimeout+c.notifyTimeout+time.Second)
	defer sd.close()
	metrics := server.NewMetrics()
	sinks := []notify.Sink{notify.NewLog(logger)}
	var hook *notify.Webhook
	if c.notifyWebhook != "" {
		hook = notify.NewWebhook(c.notifyWebhook, notify.WebhookOptions{
			PendingPath: filepath.Join(c.home, gateway.WebhookPendingFileName),
			PendingMax:  c.webhookPendingMax,
			Observer:    metrics.Notified,
			Logger:      logger,
		})
		sinks = append(sinks, hook)
	}
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
		OnTransition:  sd.transition,
	})
	if errors.Is(err, gateway.ErrLocked) || errors.Is(err, gateway.ErrHome) {
		return &configError{err}
	} else if err != nil {
		return err
	}
	defer func() {
		if err := gw.Close(); err != nil {
			logger.Warn("close gateway", "error", err)
		}
	}()

	tokensPath := c.tokensPath()
	var devToken string
	var devCreated bool
	if c.dev {
		if devToken, devCreated, err = server.EnsureDevToken(tokensPath); err != nil {
			return &configError{fmt.Errorf("dev token: %w", err)}
		}
	}
	tokens, err := server.LoadTokens(tokensPath)
	if err != nil {
		return tokensLoadError(tokensPath, err)
	}
	metrics.TokensLoaded(time.Now())

	srv, err := server.New(server.Config{
		Addr:       c.addr,
		Gateway:    gw,
		Tokens:     tokens,
		Metrics:    metrics,
		RetryAfter: c.retryAfter,
		Logger:     logger,
	})
	if err != nil {
		return err
	}

	// Claim the address first (a port in use fails here, before the
	// gateway starts), then start the gateway (its first reconcile honours
	// a surviving marker), and only then serve: connections that arrive
	// meanwhile wait in the listen backlog.
	if err := srv.Listen(); err != nil {
		return &configError{fmt.Errorf("%w (is another gateway running there? pick another --addr)", err)}
	}
	// Watchers and writers of the gateway run until it stops or run ends.
	gctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if err := gw.Start(gctx); err != nil {
		_ = srv.Close(context.Background())
		return fmt.Errorf("start gateway: %w", err)
	}
	srv.Serve()
	logger.Info("listening", "addr", srv.Addr(), "url", srv.URL(), "home", c.home, "epoch", gw.Epoch(),
		"state", gw.Status().State, "pid", os.Getpid(), "agent", c.agent, "home_channel", c.homeChannel,
		"tokens", tokens.Len())
	if c.dev {
		printDevHelp(m, srv.URL(), c.home, tokensPath, devToken, devCreated)
	}
	sd.ready(gctx, gw)

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
						reloadTokens(logger, tokens, tokensPath, metrics, sd)
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
	err = g.run()
	logger.Info("exiting", "error", err)
	return err
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
