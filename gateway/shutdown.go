package gateway

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/quiesce-dev/quiesce/api"
	"github.com/quiesce-dev/quiesce/fsm"
	"github.com/quiesce-dev/quiesce/internal/randid"
	"github.com/quiesce-dev/quiesce/notify"
)

// shutdownState is the state of the one shutdown sequence a Gateway runs.
type shutdownState struct {
	mu     sync.Mutex
	id     string         // set by the first BeginShutdown
	forced bool           // force has been closed
	force  chan struct{}  // closed to stop waiting for in-flight turns
	gated  chan struct{}  // closed once the shutdown event fired (the gate refuses); set with id
	done   chan struct{}  // closed once stopped
	report ShutdownReport // written before done is closed
}

// BeginShutdown starts the shutdown sequence (see runShutdown) and returns
// once the gate is closed and the broadcast decided (and, unless
// suppressed, recorded). It does not wait for in-flight turns. The first
// call starts the sequence; a later call without force changes nothing
// and says so (AlreadyShuttingDown): a supervisor's SIGTERM after a
// preStop or ExecStop request must not cut turns off. force (now or in a
// later call) cuts the remaining turns off at once.
func (g *Gateway) BeginShutdown(force bool) ShutdownStart {
	g.shutdown.mu.Lock()
	first := g.shutdown.id == ""
	if first {
		g.shutdown.id = randid.New()
		g.shutdown.gated = make(chan struct{})
	}
	id, gated := g.shutdown.id, g.shutdown.gated
	escalate := force && !g.shutdown.forced
	if escalate {
		g.shutdown.forced = true
		close(g.shutdown.force)
	}
	forced := g.shutdown.forced
	g.shutdown.mu.Unlock()

	if first {
		begun := make(chan struct{})
		go g.runShutdown(id, gated, begun)
		<-begun
	}
	// A repeated request returns once the gate is closed too (its answer
	// must not let a turn in after it), but does not wait for the
	// broadcast: a force is never held back by a slow outbox.
	<-gated
	switch {
	case first:
	case escalate:
		g.record(api.HistoryEntry{Kind: HistoryShutdown, ShutdownID: id, Force: true})
		g.log.Warn("shutdown forced: interrupting remaining turns", "shutdown_id", id)
	default:
		g.log.Info("shutdown already in progress; request changes nothing", "shutdown_id", id)
	}
	return ShutdownStart{ID: id, Force: forced, AlreadyShuttingDown: !first}
}

// Shutdown runs BeginShutdown(force) and waits until the gateway has
// stopped or ctx is done (then it returns ctx.Err(); the sequence goes on,
// bounded by the drain and notify timeouts).
func (g *Gateway) Shutdown(ctx context.Context, force bool) (ShutdownReport, error) {
	g.BeginShutdown(force)
	select {
	case <-g.shutdown.done:
		return g.shutdown.report, nil
	case <-ctx.Done():
		return ShutdownReport{}, ctx.Err()
	}
}

// Done is closed once the gateway has stopped.
func (g *Gateway) Done() <-chan struct{} { return g.shutdown.done }

// runShutdown is the shutdown sequence. It first fires shutdown, so the
// gate refuses new turns; then it decides suppression from the marker
// (current epoch, fresh, flag true) and, unless suppressed, sends the home
// broadcast once, and closes begun; it stops the marker watcher and waits
// for in-flight turns to finish, up to the drain timeout or until forced; then
// the notify window opens: it cancels the turns still running and sends
// each of those user sessions one interrupt ping (all in one outbox
// append), which is never suppressed; within the same window it waits for
// the interrupted turns to unwind and flushes the sinks, stops the
// background work, and fires stop (which writes the final state). A stuck agent
// or sink cannot hold it past drain + notify timeout; a disk whose fsync
// hangs forever can (the outbox append is not abandoned half-way).
func (g *Gateway) runShutdown(id string, gated, begun chan<- struct{}) {
	ctx := context.Background()
	rep := ShutdownReport{ID: id}
	g.log.Info("shutdown started", "shutdown_id", id, "active_agents", g.m.InFlight())
	g.shutdown.mu.Lock()
	forced := g.shutdown.forced
	g.shutdown.mu.Unlock()
	g.record(api.HistoryEntry{Kind: HistoryShutdown, ShutdownID: id, Force: forced})

	// 1. Refuse new turns (under ctlMu: a drain request in progress
	// finishes first, or is refused after). Shutdown wins over an open
	// announce window: its drains return ErrShuttingDown, nothing written.
	g.ctlMu.Lock()
	changed, err := g.m.Fire(ctx, fsm.Shutdown)
	if w := g.window; w != nil {
		g.closeWindowLocked(ctx, w, fmt.Errorf("gateway: drain: %w", ErrShuttingDown))
	}
	g.ctlMu.Unlock()
	close(gated)
	if err != nil {
		g.log.Error("shutdown", "error", err)
	}

	// 2. Broadcast once, unless a current, fresh marker (or the drain held
	// in memory, see BeginDrain) suppresses it.
	// This reading is also the one the state file shows until the end.
	mk := g.reader.Read()
	g.state.fix(mk)
	if changed {
		g.state.writeWith(mk)
	}
	rep.Suppressed = g.suppresses(mk)
	if !rep.Suppressed {
		rep.Broadcast = g.notify(ctx, notify.KindShutdownBroadcast, notify.HomeTarget, notify.BroadcastText(), id)
	}
	close(begun)

	// The marker changes nothing from now on (shutdown wins): stop
	// watching it. The kernel takes milliseconds to release an inotify
	// watch (an RCU grace period), whether closed here or by the exit;
	// paid now, it overlaps the turns still running instead of sitting
	// between the last reply and the exit. Step 5 waits for it.
	g.stopWatch()

	// 3. Wait for in-flight turns, up to the drain timeout or until forced.
	idle := g.waitIdleOrForce(ctx, g.cfg.DrainTimeout)

	// The notify window opens now: the pings below and the flush share it.
	flush, cancel := context.WithTimeout(ctx, g.cfg.NotifyTimeout)
	defer cancel()

	// 4. Cut off what is left; ping each of those sessions once (one
	// outbox append for all of them).
	if !idle {
		rep.Forced = true
		rep.Interrupted = g.interruptAll()
		pings := make([]notify.Message, 0, len(rep.Interrupted))
		for _, session := range rep.Interrupted {
			pings = append(pings, notify.Message{At: g.cfg.Now().UTC(), Kind: notify.KindSessionInterrupted,
				Target: session, Text: notify.InterruptText(session), ShutdownID: id})
		}
		g.sendAll(flush, pings)
		g.recordInterrupted(id, rep.Interrupted)
		g.log.Warn("turns interrupted", "shutdown_id", id, "sessions", rep.Interrupted)
	}

	// 5. Within the notify timeout: let interrupted turns unwind, flush
	// the sinks, stop the background work; then stop.
	if err := g.m.WaitIdle(flush); err != nil {
		g.log.Error("turns still running at stop", "active_agents", g.m.InFlight())
	}
	if err := g.notifier.Close(flush); err != nil {
		g.log.Warn("notifications not all delivered; they are in the outbox", "error", err)
	}
	g.stopRun()
	waitGroup(flush, &g.bg)
	if _, err := g.fire(ctx, fsm.Stop, mk); err != nil {
		g.log.Error("stop", "error", err)
	}
	g.log.Info("gateway stopped", "shutdown_id", id, "broadcast", rep.Broadcast, "suppressed", rep.Suppressed,
		"interrupted", len(rep.Interrupted))

	g.shutdown.mu.Lock()
	g.shutdown.report = rep
	g.shutdown.mu.Unlock()
	close(g.shutdown.done)
}

// waitIdleOrForce waits until nothing is in flight, limit passes or
// shutdown is forced, and reports whether nothing is in flight.
func (g *Gateway) waitIdleOrForce(ctx context.Context, limit time.Duration) bool {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		select {
		case <-g.shutdown.force:
			cancel()
		case <-stop:
		}
	}()
	return g.m.WaitIdle(ctx) == nil
}

// notify sends one message through the notifier and reports success.
func (g *Gateway) notify(ctx context.Context, kind notify.Kind, target, text, id string) bool {
	return g.sendAll(ctx, []notify.Message{{At: g.cfg.Now().UTC(), Kind: kind, Target: target, Text: text, ShutdownID: id}})
}

// sendAll sends msgs through the notifier and reports whether they went
// out (to the other sinks at least, when the outbox failed).
func (g *Gateway) sendAll(ctx context.Context, msgs []notify.Message) bool {
	if len(msgs) == 0 {
		return true
	}
	kind, target := msgs[0].Kind, msgs[0].Target
	err := g.notifier.SendAll(ctx, msgs)
	switch {
	case err == nil:
		return true
	case errors.Is(err, notify.ErrNotRecorded):
		// The outbox failed (a full disk); the other sinks still get it.
		g.log.Error("notification not recorded in the outbox; sent to the other sinks", "kind", kind, "target", target, "error", err)
		return true
	default:
		g.log.Error("notification not sent", "kind", kind, "target", target, "error", err)
		return false
	}
}

// waitGroup waits for wg or ctx, whichever comes first.
func waitGroup(ctx context.Context, wg *sync.WaitGroup) {
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
	}
}
