package gateway

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/quiesce-dev/quiesce/fsm"
	"github.com/quiesce-dev/quiesce/marker"
	"github.com/quiesce-dev/quiesce/notify"
)

// Defaults for the zero values of Config.
const (
	DefaultDrainTimeout  = 25 * time.Second // with the notify timeout, fits Kubernetes' 30s grace period
	DefaultNotifyTimeout = 3 * time.Second
	DefaultProcRoot      = "/proc"
)

// Files the gateway keeps in its home.
const (
	StateFileName  = "gateway_state.json"
	OutboxFileName = "outbox.jsonl"
	SpoolFileName  = "events.spool.jsonl"
)

// Config builds a Gateway. Zero durations take the defaults.
type Config struct {
	Home     string // directory of the marker, state, outbox and spool (created 0700)
	ProcRoot string // for the instance epoch; "" means /proc
	Agent    Agent  // runs turns; nil means NewEcho(200ms)
	// Sinks receive every notification after the outbox (always on) has
	// recorded it: e.g. notify.NewLog, notify.NewWebhook.
	Sinks         []notify.Sink
	DrainTimeout  time.Duration // how long shutdown waits for in-flight turns
	NotifyTimeout time.Duration // how long shutdown waits for interrupted turns and sinks
	MaxAge        time.Duration // markers older than this are expired (marker.DefaultMaxAge)
	// WatchInterval is the marker poll fallback (marker.DefaultWatchInterval).
	// A negative value disables the watcher: the caller calls Reconcile.
	WatchInterval time.Duration
	Now           func() time.Time // clock for marker ages and timestamps; nil means time.Now
	Logger        *slog.Logger
	Metrics       Metrics // may be nil
}

// Gateway is the quiesce runtime. Build it with New, then call Start. All
// methods are safe for concurrent use.
type Gateway struct {
	cfg      Config
	log      *slog.Logger
	m        *fsm.Machine
	epoch    string
	reader   *marker.Reader
	notifier *notify.Notifier
	started  time.Time

	ctlMu sync.Mutex // serializes Reconcile: one marker read + event at a time

	sessMu   sync.Mutex
	sessions map[string]*slot // sessions with a turn running

	spool *spool
	state *stateWriter

	bg      sync.WaitGroup // system turns, dispatches, the watcher
	runCtx  context.Context
	stopRun context.CancelFunc

	sd shutdown
}

// slot is a session's running turn.
type slot struct {
	cancel context.CancelCauseFunc
	system bool
}

// New builds a Gateway from cfg: it creates the home, computes the epoch
// and opens the outbox. It starts nothing; call Start.
func New(cfg Config) (*Gateway, error) {
	if cfg.Home == "" {
		return nil, fmt.Errorf("%w: empty home", ErrInvalid)
	}
	if cfg.ProcRoot == "" {
		cfg.ProcRoot = DefaultProcRoot
	}
	if cfg.Agent == nil {
		cfg.Agent = NewEcho(200 * time.Millisecond)
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
		return nil, fmt.Errorf("gateway: home: %w", err)
	}
	outbox, err := notify.OpenOutbox(filepath.Join(cfg.Home, OutboxFileName))
	if err != nil {
		return nil, fmt.Errorf("gateway: %w", err)
	}
	sp, err := openSpool(filepath.Join(cfg.Home, SpoolFileName))
	if err != nil {
		_ = outbox.Close()
		return nil, fmt.Errorf("gateway: %w", err)
	}
	g := &Gateway{
		cfg:      cfg,
		log:      cfg.Logger,
		m:        fsm.New(),
		epoch:    marker.ProcessEpoch(cfg.ProcRoot),
		notifier: notify.NewNotifier(outbox, cfg.Logger, cfg.Sinks...),
		started:  cfg.Now(),
		sessions: map[string]*slot{},
		spool:    sp,
	}
	g.reader = &marker.Reader{Home: cfg.Home, Epoch: g.epoch, MaxAge: cfg.MaxAge, Now: cfg.Now, Logger: cfg.Logger}
	g.state = newStateWriter(g)
	g.sd.done = make(chan struct{})
	g.sd.force = make(chan struct{})
	g.runCtx, g.stopRun = context.WithCancel(context.Background())
	g.m.Subscribe(g.onTransition)
	return g, nil
}

// Start reconciles with the marker (a surviving same-epoch marker means the
// gateway starts draining, before any turn can be accepted), writes the
// state file, replays the event spool if running, and starts the marker
// watcher and the state writer. They stop when ctx is done or the gateway
// has stopped.
func (g *Gateway) Start(ctx context.Context) error {
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
		for range marker.Watch(g.runCtx, g.cfg.Home, g.cfg.WatchInterval, g.log) {
			g.Reconcile(g.runCtx)
		}
	}()
	g.dispatch()
	return nil
}

// Epoch returns this instance's epoch ("" when it cannot be computed).
func (g *Gateway) Epoch() string { return g.epoch }

// State returns the lifecycle state.
func (g *Gateway) State() fsm.State { return g.m.State() }

// WaitIdle blocks until no turn is in flight or ctx is done.
func (g *Gateway) WaitIdle(ctx context.Context) error { return g.m.WaitIdle(ctx) }

// Reconcile reads the marker and fires drain (the marker drains) or resume
// (it does not). Shutdown wins: in shutting_down or stopped it changes
// nothing.
func (g *Gateway) Reconcile(ctx context.Context) {
	g.ctlMu.Lock()
	defer g.ctlMu.Unlock()
	st := g.reader.Read()
	ev := fsm.Resume
	if st.Drains() {
		ev = fsm.Drain
	}
	changed, err := g.m.Fire(ctx, ev)
	if err != nil {
		if !errors.Is(err, fsm.ErrShutdownWins) && !errors.Is(err, fsm.ErrStopped) {
			g.log.Error("reconcile", "event", ev, "error", err)
		}
		return
	}
	if changed && ev == fsm.Drain && st.Status == marker.Active && !st.AgeFromMtime {
		g.cfg.Metrics.DrainReaction(g.cfg.Now().Sub(st.Request.RequestedAt))
	}
}

// onTransition is the Machine's observer: log, persist, and replay the
// spool on resume.
func (g *Gateway) onTransition(t fsm.Transition) {
	g.log.Info("gateway state", "from", t.From, "to", t.To, "event", t.Event, "active_agents", t.InFlight)
	g.state.writeNow()
	if t.To == fsm.Running {
		g.dispatchAsync()
	}
}

// BeginDrain writes the drain marker (stamped with this instance's epoch
// and the current time) and reconciles before it returns: a turn started
// after BeginDrain returns is refused. The marker is written even while
// shutting down (it then changes nothing but suppression).
func (g *Gateway) BeginDrain(ctx context.Context, req DrainRequest) (DrainResult, error) {
	written, err := marker.Write(g.cfg.Home, marker.Request{
		Action:               marker.ActionDrain,
		RequestedAt:          g.cfg.Now(),
		Principal:            req.Principal,
		Epoch:                g.epoch,
		SuppressNotification: req.SuppressNotification,
		RequestID:            req.RequestID,
	})
	if err != nil {
		return DrainResult{}, fmt.Errorf("gateway: drain: %w", err)
	}
	g.Reconcile(ctx)
	snap := g.m.Snapshot()
	info := drainInfo(written, marker.Active)
	return DrainResult{Drain: info, State: snap.State, ActiveAgents: snap.InFlight}, nil
}

// CancelDrain removes the drain marker (only if its request id matches,
// when requestID is not empty; else ErrRequestMismatch) and reconciles
// before it returns. Cancelling with no marker is not an error.
func (g *Gateway) CancelDrain(ctx context.Context, requestID string) (CancelResult, error) {
	existed, err := marker.Clear(g.cfg.Home, requestID)
	if err != nil {
		return CancelResult{}, fmt.Errorf("gateway: cancel drain: %w", err)
	}
	g.Reconcile(ctx)
	snap := g.m.Snapshot()
	return CancelResult{WasDraining: existed, State: snap.State, ActiveAgents: snap.InFlight}, nil
}

// Status returns a snapshot for the API.
func (g *Gateway) Status() Status {
	snap := g.m.Snapshot()
	return Status{
		State:         snap.State,
		ActiveAgents:  snap.InFlight,
		Drain:         drainStatus(g.reader.Read()),
		Epoch:         g.epoch,
		PID:           os.Getpid(),
		UptimeSeconds: g.cfg.Now().Sub(g.started).Seconds(),
	}
}

// drainStatus converts a marker read into the API's view (nil if absent).
func drainStatus(st marker.State) *DrainInfo {
	if st.Status == marker.Absent {
		return nil
	}
	info := drainInfo(st.Request, st.Status)
	return &info
}

func drainInfo(r marker.Request, s marker.Status) DrainInfo {
	return DrainInfo{
		Action: r.Action, RequestedAt: r.RequestedAt, Principal: r.Principal, Epoch: r.Epoch,
		SuppressNotification: r.SuppressNotification, RequestID: r.RequestID, Status: s.String(),
	}
}

// newID returns a random 16-hex-character id.
func newID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

type nopMetrics struct{}

func (nopMetrics) TurnEnded(string)            {}
func (nopMetrics) DrainReaction(time.Duration) {}
