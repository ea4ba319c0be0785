package gateway

import (
	"context"
	"fmt"
	"time"

	"github.com/quiesce-dev/quiesce/api"
	"github.com/quiesce-dev/quiesce/fsm"
	"github.com/quiesce-dev/quiesce/internal/randid"
	"github.com/quiesce-dev/quiesce/marker"
)

// MaxAnnounce is the longest announce window a drain may ask for
// (DrainRequest.Announce).
const MaxAnnounce = 300 * time.Second

// DrainStatusAnnouncing is api.DrainInfo.Status while an announce window is
// open and no drain is in effect yet: /readyz fails, the gate is still
// open, and the drain takes effect at api.DrainInfo.AnnounceUntil.
const DrainStatusAnnouncing = "announcing"

// announceWindow is one open announce window: the time between a drain
// request with an announce and the gate closing, while /readyz fails so a
// load balancer stops sending new turns and the gate still admits those
// it sends meanwhile. It is not a lifecycle state: the state stays running
// and the gate word is untouched; only readiness (Gateway.Ready) and the
// status read it.
//
// Every field but ended is guarded by the Gateway's ctlMu; lock-free
// readers use the announceView the Gateway publishes for it.
type announceWindow struct {
	until time.Time
	// pending are the drain requests waiting for the window's end, in
	// arrival order: the first opened it, the others joined it. When the
	// window ends with the gate closing, each is applied in this order,
	// as if it had been made at that moment.
	pending []*pendingDrain
	// stop stops the timer that ends the window (Gateway.afterFunc).
	stop func() bool
	// ended is closed once the window is over and every pending request's
	// result is set: the gate has closed (each was applied), or a cancel
	// or a shutdown ended it (none was).
	ended chan struct{}
}

// pendingDrain is a drain request waiting in an announce window, and its
// result once the window is over.
type pendingDrain struct {
	req DrainRequest // RequestID filled in when the window took it
	at  time.Time    // when it was made
	res DrainResult  // set before the window's ended is closed
	err error        // set before the window's ended is closed
}

// has reports whether id names one of the window's requests.
func (w *announceWindow) has(id string) bool {
	for _, p := range w.pending {
		if p.req.RequestID == id {
			return true
		}
	}
	return false
}

// latest returns the request that will be the active drain once the
// window's requests are applied (the last to arrive).
func (w *announceWindow) latest() *pendingDrain { return w.pending[len(w.pending)-1] }

// announceView is what Ready, Status and the state file show of an open
// window: its end and its latest request as the status shows it. It is
// immutable; the Gateway publishes a new one under ctlMu whenever the
// window changes.
type announceView struct {
	until  time.Time
	latest api.DrainInfo // status "announcing"
}

// view returns w's announceView; epoch is the gateway's.
func (w *announceWindow) view(epoch string) *announceView {
	p := w.latest()
	d := api.DrainInfo{Action: marker.ActionDrain, RequestedAt: p.at.UTC(), Principal: p.req.Principal, Epoch: epoch,
		RequestID: p.req.RequestID, Status: DrainStatusAnnouncing, AnnounceUntil: w.until}
	if s := p.req.SuppressNotification; s != nil {
		d.SuppressNotification = *s
	}
	if r := p.req.Reason; r != nil {
		d.Reason = *r
	}
	return &announceView{until: w.until, latest: d}
}

// Ready reports whether the gateway is ready for new turns from a load
// balancer: it is running and no announce window is open. /readyz answers
// 200 exactly when Ready is true, and api.Status.Ready says the same.
func (g *Gateway) Ready() bool {
	return g.m.State() == fsm.Running && g.announcing.Load() == nil
}

// announceDrain handles a drain request with an announce (req.Announce >
// 0) while the gateway is running; the caller holds ctlMu and this
// releases it. A request arriving while a window is open joins it (the
// window keeps its end); otherwise it opens one that ends after
// req.Announce. Either way the request waits for the window's end, when
// the gate closes and the requests are applied in arrival order, and it
// returns its own result then; a cancel or a shutdown during the window
// ends it with ErrDrainCancelled or ErrShuttingDown, nothing written. If
// ctx ends first, announceDrain returns ctx.Err() but the request stays in
// the window: the operator asked for a drain, and a client that went away
// does not take that back.
func (g *Gateway) announceDrain(ctx context.Context, req DrainRequest) (DrainResult, error) {
	p := &pendingDrain{req: req, at: g.cfg.Now()}
	if p.req.RequestID == "" {
		p.req.RequestID = randid.New() // so that status and a cancel can name it
	}
	w := g.window
	if w != nil {
		w.pending = append(w.pending, p)
		g.announcing.Store(w.view(g.epoch))
		g.log.Info("drain joined the open announce window", "request_id", p.req.RequestID,
			"principal", req.Principal, "announce_until", w.until)
	} else {
		w = &announceWindow{until: p.at.Add(req.Announce).UTC(), pending: []*pendingDrain{p}, ended: make(chan struct{})}
		w.stop = g.afterFunc(req.Announce, func() { g.endAnnounce(w) })
		g.window = w
		g.announcing.Store(w.view(g.epoch))
		g.log.Info("drain announced: /readyz fails now, the gate closes at the end of the window",
			"request_id", p.req.RequestID, "principal", req.Principal, "announce", req.Announce, "announce_until", w.until)
	}
	g.ctlMu.Unlock()
	g.state.kick() // status changed: ready false, the window's end
	select {
	case <-w.ended:
		return p.res, p.err
	case <-ctx.Done():
		g.log.Info("drain request gone while announcing (the client went away); the drain stays announced",
			"request_id", p.req.RequestID, "announce_until", w.until)
		return DrainResult{}, ctx.Err()
	}
}

// endAnnounce ends window w when its time is up (the timer's goroutine),
// unless a cancel, a shutdown or a drain without announce ended it first.
func (g *Gateway) endAnnounce(w *announceWindow) {
	g.ctlMu.Lock()
	defer g.ctlMu.Unlock()
	if g.window == w {
		g.closeWindowLocked(context.Background(), w, nil)
	}
}

// closeWindowLocked ends the open window w; the caller holds ctlMu. With
// outcome nil the window's requests are applied in arrival order (the
// first closes the gate) before readiness can turn true again; otherwise
// none is, and each gets outcome. The window is over once it returns.
func (g *Gateway) closeWindowLocked(ctx context.Context, w *announceWindow, outcome error) {
	w.stop()
	for _, p := range w.pending {
		if outcome != nil {
			p.err = outcome
			continue
		}
		p.res, p.err = g.drainLocked(ctx, p.req)
	}
	g.window = nil
	g.announcing.Store(nil) // after the gate closed: ready never turns true in between
	close(w.ended)
	g.state.kick() // the state file and WaitChange show the window gone
	if outcome != nil {
		g.log.Info("announce window ended without a drain", "reason", outcome.Error(),
			"request_id", w.latest().req.RequestID, "ready", g.Ready())
	}
}

// withAnnounce adds the open announce window, if any, to d, the drain in
// effect (nil: none): AnnounceUntil is set, and with no drain in effect
// the window's latest request is shown with status "announcing". It takes
// no lock (the state writer calls it with ctlMu held).
func (g *Gateway) withAnnounce(d *api.DrainInfo) *api.DrainInfo {
	v := g.announcing.Load()
	if v == nil {
		return d
	}
	if d == nil || (d.Status != marker.Active.String() && d.Status != marker.Contentless.String()) {
		latest := v.latest
		return &latest
	}
	d.AnnounceUntil = v.until
	return d
}

// checkAnnounce refuses an announce outside 0 to MaxAnnounce.
func checkAnnounce(d time.Duration) error {
	if d < 0 || d > MaxAnnounce {
		return fmt.Errorf("%w: announce must be between 0 and %v, not %v", ErrInvalid, MaxAnnounce, d)
	}
	return nil
}
