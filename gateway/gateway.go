package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quiesce-dev/quiesce/agent"
	"github.com/quiesce-dev/quiesce/api"
	"github.com/quiesce-dev/quiesce/fsm"
	"github.com/quiesce-dev/quiesce/internal/homefile"
	"github.com/quiesce-dev/quiesce/marker"
	"github.com/quiesce-dev/quiesce/notify"
)

// Defaults for the zero values of Config.
const (
	DefaultDrainTimeout  = 25 * time.Second // with the notify timeout, fits Kubernetes' 30s grace period
	DefaultNotifyTimeout = 3 * time.Second
	DefaultProcRoot      = "/proc"
	// DefaultEventRetryFor is how long a failing internal event is retried
	// (Config.EventRetryFor) before it moves to the rejected file.
	DefaultEventRetryFor = 10 * time.Minute
)

// Files the gateway keeps in its home (besides LockFileName and the
// marker's files).
const (
	StateFileName    = "gateway_state.json"
	OutboxFileName   = "outbox.jsonl"
	SpoolFileName    = "events.spool.jsonl"
	RejectedFileName = "events.spool.rejected.jsonl"
	// WebhookPendingFileName is where a webhook sink keeps what it could
	// not deliver, for the next start (the caller wires it).
	WebhookPendingFileName = "webhook.pending.jsonl"
)

// homeFiles are the files of the home whose leftover temp files New
// removes (it holds the lock, so no live writer owns them).
var homeFiles = []string{StateFileName, OutboxFileName, SpoolFileName, RejectedFileName, WebhookPendingFileName, LockFileName}

// Config builds a Gateway. Zero durations take the defaults.
type Config struct {
	Home     string      // directory of the marker, state, outbox and spool (created 0700)
	ProcRoot string      // for the instance epoch; "" means /proc
	Agent    agent.Agent // runs turns; nil means NewEcho(200ms)
	// Sinks receive every notification after the outbox (always on) has
	// recorded it: e.g. notify.NewLog, notify.NewWebhook. A sink that
	// keeps what it could not deliver and can retry it (a notify.Webhook
	// with a PendingPath: RunRedelivery and Pending) is retried in the
	// background from Start until the gateway stops, and its pending
	// count is api.Status.WebhookPending.
	Sinks         []notify.Sink
	DrainTimeout  time.Duration // how long shutdown waits for in-flight turns
	NotifyTimeout time.Duration // how long shutdown waits for interrupted turns and sinks
	MaxAge        time.Duration // markers older than this are expired (marker.DefaultMaxAge)
	// EventRetryFor is how long an internal event whose turn fails is
	// retried, from its first failure, with capped exponential backoff,
	// before it moves to the rejected file (DefaultEventRetryFor).
	EventRetryFor time.Duration
	// WatchInterval is the marker poll fallback (marker.DefaultWatchInterval).
	// A negative value disables the watcher: the caller calls Reconcile.
	WatchInterval time.Duration
	// WatchPollOnly watches the marker by polling alone, without fsnotify,
	// for file systems whose change notifications miss writes (a network
	// mount written from another machine); the poll then bounds the
	// reaction (marker.WatchFunc's pollOnly).
	WatchPollOnly bool
	Now           func() time.Time // clock for marker ages and timestamps; nil means time.Now
	Logger        *slog.Logger
	Metrics       Metrics // may be nil
	// OnTransition, if set, is called after every lifecycle transition
	// has been logged (e.g. to tell a supervisor), before the state file
	// records it (the code that fired the event writes it once the event
	// returns). It runs inside the lifecycle event that made it, one call
	// at a time in commit order, and must not block for long.
	OnTransition func(fsm.Transition)
	// Version is the build's version, shown in Status.
	Version string
	// AgentKind names the agent in Status ("echo", "exec", "http"); ""
	// means "echo" when Agent is nil, else "custom".
	AgentKind string
}

// Gateway is the quiesce runtime. Build it with New, then call Start;
// Close releases the home once the gateway has stopped (or was never
// started). All methods are safe for concurrent use.
//
// Concurrency: ctlMu serialises reconciles (one marker read and event at
// a time) and drain requests (the marker write, the drain held in memory
// and the announce window, whose timer runs its end on its own goroutine); sessMu guards sessions; evMu serialises event dispatch and
// guards events; bg counts background goroutines (system turns, dispatch,
// the watcher, the state writer) so stop can wait for them; runCtx stops
// them. The fsm.Machine, spool, notifier, state writer and history guard
// themselves; agentFailures and agentLastErr are atomics written only when
// an agent fails.
type Gateway struct {
	cfg      Config
	log      *slog.Logger
	m        *fsm.Machine
	epoch    string
	epochErr error
	reader   *marker.Reader
	notifier *notify.Notifier
	started  time.Time
	lock     *homeLock

	ctlMu sync.Mutex

	sessMu   sync.Mutex
	sessions map[string]slot // sessions with a turn running

	evMu   sync.Mutex
	events map[string]*eventState // pending events the dispatcher has tried

	spool *spool
	state *stateWriter

	bg      sync.WaitGroup
	runCtx  context.Context
	stopRun context.CancelFunc
	// stopWatch ends the marker watcher alone (a child of runCtx): the
	// shutdown sequence stops it early (see runShutdown).
	watchCtx  context.Context
	stopWatch context.CancelFunc

	// since records the state last entered and when: written by the
	// transition observer, read by Status and the state writer without a
	// lock.
	since atomic.Pointer[entered]

	// unpersisted is the drain held in memory because its marker could
	// not be written (nil: none): written under ctlMu by BeginDrain,
	// CancelDrain and reconcile, read without a lock by Status, the state
	// writer and the shutdown.
	unpersisted atomic.Pointer[marker.Request]
	// window is the open announce window (nil: none), guarded by ctlMu;
	// announcing is its view for readers that take no lock (Ready, Status,
	// the state writer): set while a window is open, nil otherwise.
	window     *announceWindow
	announcing atomic.Pointer[announceView]
	// afterFunc runs f after d and returns a func that stops it: the
	// timer that ends an announce window (time.AfterFunc; the package's
	// tests end windows by hand).
	afterFunc func(d time.Duration, f func()) (stop func() bool)

	// firing is the drain in effect while reconcile fires a drain event,
	// for the transition's log line (the observer runs inside the event);
	// nil otherwise. Atomic: the observer may run on another event's
	// goroutine.
	firing atomic.Pointer[api.DrainInfo]

	closeOnce sync.Once
	shutdown  shutdownState

	// eventBackoffBase is the first wait after an internal event failed
	// (eventBackoffBase; the package's tests shorten it before Start).
	eventBackoffBase time.Duration

	// history keeps the last lifecycle events for History.
	history history
	// agentFailures counts turns the agent failed by itself; agentLastErr
	// is the last such failure. Written on the failure path only.
	agentFailures atomic.Uint64
	agentLastErr  atomic.Pointer[agentFailure]
}

// agentFailure is the agent's last failure.
type agentFailure struct {
	msg string
	at  time.Time
}

// entered is a state and the instant the gateway entered it.
type entered struct {
	state fsm.State
	at    time.Time
}

// slot is a session's running turn: what cancels it, and what Turns
// shows of it.
type slot struct {
	cancel    context.CancelCauseFunc
	system    bool
	streaming bool
	start     time.Time
	turnID    string
	eventID   string
}

// New builds a Gateway from cfg: it creates the home, takes its lock (one
// home, one gateway: another live gateway's lock gives ErrLocked naming
// its pid, after retrying for up to a second), removes temp files killed
// writers left, checks and opens the home's files without blocking (a
// FIFO, directory or symlink where a file belongs gives ErrHome naming
// it), computes the epoch (logging a warning when it cannot) and opens the
// outbox and the spool. It starts nothing; call Start.
func New(cfg Config) (*Gateway, error) {
	if cfg.Home == "" {
		return nil, fmt.Errorf("%w: empty home", ErrInvalid)
	}
	if cfg.ProcRoot == "" {
		cfg.ProcRoot = DefaultProcRoot
	}
	if cfg.Agent == nil {
		cfg.Agent = agent.NewEcho(200 * time.Millisecond)
		if cfg.AgentKind == "" {
			cfg.AgentKind = "echo"
		}
	}
	if cfg.AgentKind == "" {
		cfg.AgentKind = "custom"
	}
	if cfg.DrainTimeout <= 0 {
		cfg.DrainTimeout = DefaultDrainTimeout
	}
	if cfg.NotifyTimeout <= 0 {
		cfg.NotifyTimeout = DefaultNotifyTimeout
	}
	if cfg.MaxAge <= 0 {
		cfg.MaxAge = marker.DefaultMaxAge
	}
	if cfg.EventRetryFor <= 0 {
		cfg.EventRetryFor = DefaultEventRetryFor
	}
	if cfg.WatchInterval == 0 {
		cfg.WatchInterval = marker.DefaultWatchInterval
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Metrics == nil {
		cfg.Metrics = nopMetrics{}
	}
	if err := os.MkdirAll(cfg.Home, 0o700); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrHome, err)
	}
	lock, err := lockHome(cfg.Home, lockWait)
	if err != nil {
		return nil, err
	}
	g, err := open(cfg, lock)
	if err != nil {
		_ = lock.release()
		return nil, err
	}
	return g, nil
}

// open builds the Gateway once the home is locked.
func open(cfg Config, lock *homeLock) (*Gateway, error) {
	n := homefile.RemoveTemps(cfg.Home, homeFiles...)
	m, err := marker.RemoveTemps(cfg.Home)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrHome, err) // e.g. a FIFO at the marker's lock file
	}
	if n+m > 0 {
		cfg.Logger.Info("removed temp files left by a killed writer", "home", cfg.Home, "count", n+m)
	}
	for _, name := range homeFiles {
		p := filepath.Join(cfg.Home, name)
		if fi, err := os.Lstat(p); err == nil && !fi.Mode().IsRegular() {
			return nil, fmt.Errorf("%w: %s is not a regular file (%v): move it away", ErrHome, p, fi.Mode().Type())
		}
	}
	outbox, err := notify.OpenOutbox(filepath.Join(cfg.Home, OutboxFileName))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrHome, err)
	}
	sp, err := openSpool(filepath.Join(cfg.Home, SpoolFileName), filepath.Join(cfg.Home, RejectedFileName), cfg.Logger)
	if err != nil {
		_ = outbox.Close()
		return nil, fmt.Errorf("%w: %w", ErrHome, err)
	}
	epoch, epochErr := marker.ProcessEpochOf(cfg.ProcRoot)
	if epochErr != nil {
		cfg.Logger.Warn("instance epoch unavailable: drain markers drain by presence only and never suppress the broadcast",
			"proc_root", cfg.ProcRoot, "error", epochErr)
	}
	g := &Gateway{
		cfg:      cfg,
		log:      cfg.Logger,
		m:        fsm.New(),
		epoch:    epoch,
		epochErr: epochErr,
		notifier: notify.NewNotifierWith(outbox, notify.NotifierOptions{Logger: cfg.Logger, Observer: cfg.Metrics.Notified}, cfg.Sinks...),
		started:  cfg.Now(),
		lock:     lock,
		sessions: map[string]slot{},
		events:   map[string]*eventState{},
		spool:    sp,

		eventBackoffBase: eventBackoffBase,
		afterFunc:        func(d time.Duration, f func()) func() bool { return time.AfterFunc(d, f).Stop },
	}
	g.reader = &marker.Reader{Home: cfg.Home, Epoch: g.epoch, MaxAge: cfg.MaxAge, Now: cfg.Now, Logger: cfg.Logger}
	g.state = newStateWriter(g)
	g.since.Store(&entered{fsm.Running, g.started.UTC()})
	g.shutdown.done = make(chan struct{})
	g.shutdown.force = make(chan struct{})
	g.runCtx, g.stopRun = context.WithCancel(context.Background())
	g.watchCtx, g.stopWatch = context.WithCancel(g.runCtx)
	g.m.Subscribe(g.onTransition)
	return g, nil
}

// Close closes the spool and releases the home's lock, so another gateway
// may take it. Call it once the gateway has stopped (Done is closed) or
// was never started; it is idempotent. Events after Close fail with
// ErrSpoolUnavailable.
func (g *Gateway) Close() error {
	var err error
	g.closeOnce.Do(func() {
		select {
		case <-g.shutdown.done:
		default:
			// Never shut down (a start-up that failed after New, or an
			// embedder that only built it): stop the notifier's workers
			// and close the outbox too.
			ctx, cancel := context.WithTimeout(context.Background(), g.cfg.NotifyTimeout)
			defer cancel()
			_ = g.notifier.Close(ctx)
			g.stopRun()
		}
		err = errors.Join(g.spool.close(), g.lock.release())
	})
	return err
}

// Start reconciles with the marker (a surviving same-epoch marker means the
// gateway starts draining, before any turn can be accepted), writes the
// state file, replays the event spool if running, and starts the marker
// watcher, the state writer and the redelivery of every sink that keeps
// what it could not deliver (see Config.Sinks). They stop when ctx is
// done or the gateway has stopped.
func (g *Gateway) Start(ctx context.Context) error {
	g.history.add(api.HistoryEntry{At: g.started.UTC(), Kind: HistoryStart, To: fsm.Running})
	g.Reconcile(ctx)
	g.state.writeNow()
	g.log.Info("gateway started", "home", g.cfg.Home, "epoch", g.epoch, "state", g.m.State(),
		"spooled_events", g.spool.len())
	stop := context.AfterFunc(ctx, g.stopRun)
	g.bg.Add(2)
	go func() {
		defer g.bg.Done()
		defer stop()
		g.state.run(g.runCtx)
	}()
	go func() {
		defer g.bg.Done()
		if g.cfg.WatchInterval < 0 {
			return
		}
		marker.WatchFunc(g.watchCtx, g.cfg.Home, g.cfg.WatchInterval, g.log, g.cfg.WatchPollOnly,
			func() { g.Reconcile(g.runCtx) })
	}()
	for _, r := range g.redeliverers() {
		if w, ok := r.(pendingWatcher); ok {
			w.OnPendingChange(g.state.kick)          // webhook_pending is part of the status
			if err := w.CountPending(); err != nil { // else status says 0 until the first round
				g.log.Warn("webhook pending record not counted; the first redelivery round counts it", "error", err)
			}
		}
		g.bg.Add(1)
		go func() {
			defer g.bg.Done()
			r.RunRedelivery(g.runCtx)
		}()
	}
	g.dispatch()
	return nil
}

// redeliverer is a sink that keeps what it could not deliver and retries
// it while the gateway runs (notify.Webhook).
type redeliverer interface {
	// RunRedelivery retries the kept messages until ctx is done.
	RunRedelivery(ctx context.Context)
	// Pending returns how many messages are kept.
	Pending() int
}

// pendingWatcher is a redeliverer that counts what it keeps at start and
// says when its Pending count changes (notify.Webhook), so that status
// is exact from the start and status?wait=change sees a new count at once;
// without it the count shows from its first round and at the next other
// change.
type pendingWatcher interface {
	// OnPendingChange makes fn be called when Pending's count changes.
	OnPendingChange(fn func())
	// CountPending reads what is kept, so Pending is exact at once.
	CountPending() error
}

// redeliverers returns the sinks of Config.Sinks that are redeliverers.
func (g *Gateway) redeliverers() []redeliverer {
	var out []redeliverer
	for _, s := range g.cfg.Sinks {
		if r, ok := s.(redeliverer); ok {
			out = append(out, r)
		}
	}
	return out
}

// webhookPending sums the messages the sinks keep for redelivery.
func (g *Gateway) webhookPending() int {
	n := 0
	for _, r := range g.redeliverers() {
		n += r.Pending()
	}
	return n
}

// stateSince returns when the gateway entered state s, read from the gate
// just before. The observer that records it runs microseconds after the
// gate switched: when the record is still the previous state's, the switch
// is happening now, and now is its time.
func (g *Gateway) stateSince(s fsm.State) time.Time {
	if e := g.since.Load(); e.state == s {
		return e.at
	}
	return g.cfg.Now().UTC()
}

// Epoch returns this instance's epoch ("" when it cannot be computed).
func (g *Gateway) Epoch() string { return g.epoch }

// State returns the lifecycle state.
func (g *Gateway) State() fsm.State { return g.m.State() }

// WaitChange blocks until the status has changed since seq after (a
// transition, turns in flight, the drain request: whatever the state file
// records; changes are coalesced to a few a second) or ctx is done, and
// returns the status then. An api.Status.Seq greater than after returns at once.
func (g *Gateway) WaitChange(ctx context.Context, after uint64) (api.Status, error) {
	for {
		ch, seq := g.state.changed()
		if seq > after {
			return g.Status(), nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return g.Status(), ctx.Err()
		}
	}
}

// WaitIdle blocks until no turn is in flight or ctx is done.
func (g *Gateway) WaitIdle(ctx context.Context) error { return g.m.WaitIdle(ctx) }

// Reconcile reads the marker and fires drain (the marker drains, or a
// drain is held in memory because its marker could not be written) or
// resume (neither). Shutdown wins: in shutting_down or stopped it changes
// nothing.
func (g *Gateway) Reconcile(ctx context.Context) {
	g.ctlMu.Lock()
	defer g.ctlMu.Unlock()
	g.reconcileLocked(ctx)
}

// reconcileLocked is Reconcile with ctlMu held. It reports whether the
// state changed (then the state file has been written).
func (g *Gateway) reconcileLocked(ctx context.Context) bool {
	st := g.reader.Read()
	g.cfg.Metrics.MarkerRead(st.Status.String())
	mem := g.currentUnpersisted(st)
	ev, want := fsm.Resume, fsm.Running
	if st.Drains() || mem != nil {
		ev, want = fsm.Drain, fsm.Draining
	}
	if cur := g.m.State(); cur == want || cur == fsm.ShuttingDown || cur == fsm.Stopped {
		return false // nothing to change (or shutdown wins): no call into looplab, no allocation
	}
	if ev == fsm.Drain {
		d := g.drainView(st)
		g.recordDrain(d, false, false) // before the transition it causes
		g.firing.Store(d)
		defer g.firing.Store(nil)
	}
	changed, err := g.fire(ctx, ev, st)
	if err != nil {
		if !errors.Is(err, fsm.ErrShutdownWins) && !errors.Is(err, fsm.ErrStopped) {
			g.log.Error("reconcile", "event", ev, "error", err)
		}
		return false
	}
	switch {
	case !changed || ev != fsm.Drain:
	case mem != nil:
		g.cfg.Metrics.DrainReaction(g.cfg.Now().Sub(mem.RequestedAt))
	case st.Status == marker.Active && !st.AgeFromMtime:
		g.cfg.Metrics.DrainReaction(g.cfg.Now().Sub(st.Request.RequestedAt))
	}
	return changed
}

// fire fires ev and, when the state changed, writes the state file with
// st, the marker as the caller read it: a transition reads the marker
// once. The gate has switched, and the observer has run, before the write.
func (g *Gateway) fire(ctx context.Context, ev fsm.Event, st marker.State) (bool, error) {
	changed, err := g.m.Fire(ctx, ev)
	if changed {
		g.state.writeWith(st)
	}
	return changed, err
}

// onTransition is the Machine's observer: note the instant, log, tell
// OnTransition, and replay the spool on resume. The caller of Fire writes
// the state file after it, with the marker it read (fire).
func (g *Gateway) onTransition(t fsm.Transition) {
	g.since.Store(&entered{t.To, g.cfg.Now().UTC()})
	g.record(api.HistoryEntry{Kind: HistoryTransition, From: t.From, To: t.To, Event: t.Event})
	attrs := []any{"from", t.From, "to", t.To, "event", t.Event, "active_agents", t.InFlight}
	if t.Event == fsm.Drain {
		attrs = append(attrs, drainAttrs(g.firing.Load())...)
	}
	g.log.Info("gateway state", attrs...)
	if g.cfg.OnTransition != nil {
		g.cfg.OnTransition(t)
	}
	if t.To == fsm.Running {
		g.dispatchAsync()
	}
}

// BeginDrain writes the drain marker (stamped with this instance's epoch
// and the current time) and reconciles before it returns: a turn started
// after BeginDrain returns is refused. A request naming the active drain's
// request id refreshes it (see DrainRequest). Once shutting down it
// changes nothing and returns ErrShuttingDown (shutdown wins); a marker
// path that is not a regular file gives ErrMarkerUnusable, and a reason
// marker.CheckReason refuses gives ErrInvalid, nothing changed.
//
// When the marker cannot be written (a full disk, a read-only home), the
// gate closes anyway (fail safe toward quiescing): the drain is held in
// memory, and BeginDrain returns an *UnwritableError (ErrMarkerUnwritable)
// carrying the result. Reconcile honours that drain like a marker until a
// cancel ends it, a later marker write supersedes it (a refresh or another
// drain that gets through) or it expires by the max age; a restart forgets
// it.
//
// With req.Announce above zero while running, the drain is announced
// first (see DrainRequest.Announce): Ready is false at once while the gate
// stays open; when the window ends the request is applied as above and
// BeginDrain returns. A drain with an announce that arrives during an open
// window joins it (the window keeps its end) and is applied after the
// requests already waiting, in arrival order; a drain without an announce
// ends the window at once (the waiting requests are applied, then it).
// CancelDrain during the window ends it: the waiting requests return
// ErrDrainCancelled, nothing written, and the gateway is ready again. A
// shutdown during the window wins: they return ErrShuttingDown, nothing
// written. If ctx ends during the window, BeginDrain returns ctx.Err() but
// the request stays: it is applied when the window ends.
func (g *Gateway) BeginDrain(ctx context.Context, req DrainRequest) (DrainResult, error) {
	if err := checkDrainRequest(req); err != nil {
		return DrainResult{}, err
	}
	if err := checkAnnounce(req.Announce); err != nil {
		return DrainResult{}, err
	}
	// ctlMu makes check, write and reconcile one step against
	// runShutdown's shutdown event: a drain either lands before the
	// shutdown or is refused, never a marker written after it.
	g.ctlMu.Lock()
	if g.shuttingDown() {
		g.ctlMu.Unlock()
		return DrainResult{}, fmt.Errorf("gateway: drain: %w", ErrShuttingDown)
	}
	switch w := g.window; {
	case req.Announce > 0 && (w != nil || g.m.State() == fsm.Running):
		return g.announceDrain(ctx, req) // releases ctlMu
	case w != nil:
		g.closeWindowLocked(ctx, w, nil) // a drain now ends the window: its requests first
	}
	defer g.ctlMu.Unlock()
	return g.drainLocked(ctx, req)
}

// drainLocked writes the drain marker for req and reconciles: BeginDrain's
// work once it is known to apply now. The caller holds ctlMu and has
// checked req and that the gateway is not shutting down.
func (g *Gateway) drainLocked(ctx context.Context, req DrainRequest) (DrainResult, error) {
	now := g.cfg.Now()
	mem := g.unpersisted.Load()
	var (
		next      marker.Request
		was       bool
		refreshed bool
		edited    bool
	)
	// The marker is read, merged and written under its lock (marker.Edit),
	// so a refresh keeps the fields of the request that is really there.
	edit := func(prev marker.State) (marker.Request, error) {
		edited = true
		active, ok := activeRequest(prev, mem)
		was = prev.Drains() || mem != nil
		next, refreshed = nextRequest(active, ok, req, now, g.epoch)
		return next, nil
	}
	_, written, werr := marker.Edit(g.cfg.Home, now, g.epoch, g.cfg.MaxAge, edit)
	persisted := werr == nil
	switch {
	case persisted:
		g.unpersisted.Store(nil) // the marker now holds the latest request
	case errors.Is(werr, homefile.ErrNotRegular) || errors.Is(werr, marker.ErrUnusable):
		return DrainResult{}, markerError("drain", werr)
	case errors.Is(werr, marker.ErrInvalidRequest): // not expected: the request was checked
		return DrainResult{}, fmt.Errorf("%w: %w", ErrInvalid, werr)
	default:
		// Fail safe toward quiescing: hold the drain in memory.
		if !edited { // the marker's lock could not even be taken
			_, _ = edit(g.reader.Read())
		}
		written = next
		g.unpersisted.Store(&written)
		g.log.Error("drain marker not written: the gate closes anyway, the drain is held in memory only (a restart forgets it)",
			"path", marker.Path(g.cfg.Home), "request_id", written.RequestID, "error", werr)
	}
	changed := g.reconcileLocked(ctx) // a drain that drains is recorded there
	if !changed {
		g.state.kick() // the drain request changed even if the state did not
	}
	snap := g.m.Snapshot()
	info := drainInfo(written, marker.Active)
	info.Persisted = persisted
	info.ExpiresAt = written.RequestedAt.Add(g.cfg.MaxAge).UTC()
	if !changed {
		g.recordDrain(&info, was, refreshed)
	}
	res := DrainResult{Drain: info, State: snap.State, ActiveAgents: snap.InFlight,
		WasDraining: was, Refreshed: refreshed}
	if !persisted {
		return res, &UnwritableError{Result: res, Path: marker.Path(g.cfg.Home), Err: werr}
	}
	return res, nil
}

// CancelDrain removes the drain marker (only if its request id matches,
// when requestID is not empty; else ErrRequestMismatch) and ends a drain
// held in memory (see BeginDrain), and reconciles before it returns. The
// drain held in memory is the active one: a requestID must name it, and
// cancelling it also removes an older marker. Cancelling with no drain is
// not an error. Once shutting down it returns ErrShuttingDown; a marker
// path that is not a regular file gives ErrMarkerUnusable; in both cases
// nothing changed.
//
// During an announce window (see BeginDrain) a cancel without requestID
// ends the window, the drains waiting in it return ErrDrainCancelled, and
// then it cancels as above; a cancel naming one of the window's requests
// ends the window only (WasDraining true) and leaves any marker alone. A
// requestID that names neither the window's requests nor the drain in
// effect (an active marker or the drain held in memory; a stale or
// expired marker is none) gives ErrRequestMismatch naming the window's
// latest request, and nothing changes.
func (g *Gateway) CancelDrain(ctx context.Context, requestID string) (CancelResult, error) {
	g.ctlMu.Lock()
	defer g.ctlMu.Unlock()
	if g.shuttingDown() {
		return CancelResult{}, fmt.Errorf("gateway: cancel drain: %w", ErrShuttingDown)
	}
	w := g.window
	switch {
	case w == nil || requestID == "":
	case w.has(requestID):
		g.closeWindowLocked(ctx, w, fmt.Errorf("gateway: drain: %w", ErrDrainCancelled))
		snap := g.m.Snapshot()
		return CancelResult{WasDraining: true, State: snap.State, ActiveAgents: snap.InFlight}, nil
	default:
		// Only the drain in effect counts: a stale or expired marker's id
		// names no drain, and a 200 for it would leave the window's drain
		// to go ahead.
		if active, ok := activeRequest(g.reader.Read(), g.unpersisted.Load()); !ok || active.RequestID != requestID {
			return CancelResult{}, &MismatchError{Active: w.latest().req.RequestID}
		}
		w = nil // it names the drain in effect: cancel that one only
	}
	res, err := g.cancelLocked(ctx, requestID)
	if err == nil && w != nil {
		g.closeWindowLocked(ctx, w, fmt.Errorf("gateway: drain: %w", ErrDrainCancelled))
		res.WasDraining = true
		snap := g.m.Snapshot()
		res.State, res.ActiveAgents = snap.State, snap.InFlight
	}
	return res, err
}

// cancelLocked is CancelDrain's work on the marker and the drain held in
// memory; the caller holds ctlMu.
func (g *Gateway) cancelLocked(ctx context.Context, requestID string) (CancelResult, error) {
	mem := g.unpersisted.Load()
	clearID := requestID
	if mem != nil {
		if requestID != "" && requestID != mem.RequestID {
			return CancelResult{}, &MismatchError{Active: mem.RequestID}
		}
		clearID = "" // the drain in memory replaced whatever the marker holds
	}
	existed, err := marker.Clear(g.cfg.Home, clearID)
	if errors.Is(err, marker.ErrRequestMismatch) {
		return CancelResult{}, &MismatchError{Active: g.reader.Read().Request.RequestID}
	}
	if err != nil {
		return CancelResult{}, markerError("cancel drain", err)
	}
	if mem != nil {
		g.unpersisted.Store(nil)
		existed = true
		g.log.Info("drain held in memory cancelled", "request_id", mem.RequestID)
	}
	g.record(api.HistoryEntry{Kind: HistoryCancel, RequestID: requestID, WasDraining: existed})
	if !g.reconcileLocked(ctx) {
		g.state.kick() // the marker went even if the state did not change
	}
	snap := g.m.Snapshot()
	return CancelResult{WasDraining: existed, State: snap.State, ActiveAgents: snap.InFlight}, nil
}

// shuttingDown reports whether the shutdown sequence has begun.
func (g *Gateway) shuttingDown() bool {
	s := g.m.State()
	return s == fsm.ShuttingDown || s == fsm.Stopped
}

// Status returns a snapshot for the API.
func (g *Gateway) Status() api.Status {
	snap := g.m.Snapshot()
	st := api.Status{
		Seq:               g.state.seq(),
		State:             snap.State,
		StateSince:        g.stateSince(snap.State),
		Ready:             snap.State == fsm.Running && g.announcing.Load() == nil,
		ActiveAgents:      snap.InFlight,
		Drain:             g.drainView(g.reader.Read()),
		Epoch:             g.epoch,
		PID:               os.Getpid(),
		UptimeSeconds:     g.cfg.Now().Sub(g.started).Seconds(),
		OldestTurnSeconds: g.oldestTurn().Seconds(),
		SpooledEvents:     g.spool.len(),
		WebhookPending:    g.webhookPending(),
		Live:              true,
		Version:           g.cfg.Version,
		Agent:             g.agentStatus(),
	}
	if g.epochErr != nil {
		st.EpochError = g.epochErr.Error()
	}
	return st
}

// drainStatus converts a marker read into the API's view (nil if absent).
func drainStatus(st marker.State, maxAge time.Duration) *api.DrainInfo {
	if st.Status == marker.Absent {
		return nil
	}
	info := drainInfo(st.Request, st.Status)
	if !st.Request.RequestedAt.IsZero() && !st.AgeFromMtime {
		info.ExpiresAt = st.Request.RequestedAt.Add(maxAge).UTC()
	}
	return &info
}

// drainInfo is the API's view of request r read with status s, from the
// marker (Persisted true).
func drainInfo(r marker.Request, s marker.Status) api.DrainInfo {
	return api.DrainInfo{
		Action: r.Action, RequestedAt: r.RequestedAt, Principal: r.Principal, Epoch: r.Epoch,
		SuppressNotification: r.SuppressNotification, RequestID: r.RequestID, Reason: r.Reason,
		Status: s.String(), Persisted: true,
	}
}

// markerError wraps a marker write or clear failure: a marker path that
// is not a regular file becomes ErrMarkerUnusable.
func markerError(op string, err error) error {
	if errors.Is(err, homefile.ErrNotRegular) || errors.Is(err, marker.ErrUnusable) {
		return fmt.Errorf("gateway: %s: %w: %w", op, ErrMarkerUnusable, err)
	}
	return fmt.Errorf("gateway: %s: %w", op, err)
}

type nopMetrics struct{}

func (nopMetrics) TurnEnded(string)                   {}
func (nopMetrics) TurnDuration(string, time.Duration) {}
func (nopMetrics) DrainReaction(time.Duration)        {}
func (nopMetrics) EventRejected()                     {}
func (nopMetrics) EventRetried()                      {}
func (nopMetrics) Notified(string, string)            {}
func (nopMetrics) MarkerRead(string)                  {}
