package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"

	"github.com/quiesce-dev/quiesce/api"
	"github.com/quiesce-dev/quiesce/fsm"
)

// sdCloseTimeout bounds how long close waits for the last notifications
// to reach a service manager that does not read its socket.
const sdCloseTimeout = 500 * time.Millisecond

// statusSource is what the notifier reads from the gateway.
type statusSource interface {
	Status() api.Status
	WaitChange(ctx context.Context, after uint64) (api.Status, error)
}

// sdNotifier tells a service manager that speaks the sd_notify protocol
// (systemd with Type=notify, through $NOTIFY_SOCKET) about the gateway:
//
//	READY=1 + STATUS=…       once the gateway has reconciled and serves
//	STATUS=<state>, <n> turns in flight[, oldest <age>]  on every change
//	STOPPING=1 + EXTEND_TIMEOUT_USEC=<µs>  when the shutdown sequence begins
//	WATCHDOG=1               every WATCHDOG_USEC/2, when the watchdog is on
//	RELOADING=1 + MONOTONIC_USEC=<µs>      when a SIGHUP reload begins, then
//	READY=1 + STATUS=<state>; <outcome>    when it is done, whatever its outcome
//
// Together they speak systemd's Type=notify-reload protocol. A failed
// reload's note stays at the end of every later STATUS= line until a
// reload succeeds, so "systemctl status" keeps showing that the gateway
// runs on its old tokens and that a restart would exit 78.
//
// A nil *sdNotifier (what newSDNotifier returns without NOTIFY_SOCKET) is
// silent: every method is a no-op. Producers never block: messages queue
// in order and one goroutine writes them to the socket, so a service
// manager that is slow to read holds back nothing but the notifier.
type sdNotifier struct {
	log      *slog.Logger
	send     func(state string) error // writes one datagram (daemon.SdNotify)
	watchdog time.Duration            // WATCHDOG_USEC; 0 when the watchdog is off
	extend   time.Duration            // EXTEND_TIMEOUT_USEC sent when shutdown begins

	mu       sync.Mutex         // guards queue, stopping, failed, line, note and cancel
	queue    []string           // messages not yet written, in order
	stopping bool               // STOPPING=1 is queued or sent: READY=1 and RELOADING=1 must not follow
	line     string             // the last status line sent (sdStatusLine), without the note
	note     string             // a failed reload's note, appended to status lines until a reload succeeds
	failed   bool               // a write failed and was logged at WARN (later ones at DEBUG)
	cancel   context.CancelFunc // stops the status watcher

	wake      chan struct{}  // capacity 1: the queue has messages for the writer
	stop      chan struct{}  // closed by close: the writer flushes and returns
	done      chan struct{}  // closed when the writer has returned
	watching  sync.WaitGroup // the status watcher
	closeOnce sync.Once      // close runs once
}

// newSDNotifier returns a notifier writing to $NOTIFY_SOCKET, or nil when
// it is unset. extend is what EXTEND_TIMEOUT_USEC asks for when the
// shutdown sequence begins (drain + notify timeout + 1s). It reads the
// watchdog settings (WATCHDOG_USEC, honoured when WATCHDOG_PID is unset or
// this process) and removes them from the environment, so agents the
// gateway runs do not take the watchdog for theirs. Its writer goroutine
// runs until close.
func newSDNotifier(logger *slog.Logger, extend time.Duration) *sdNotifier {
	if os.Getenv("NOTIFY_SOCKET") == "" {
		return nil
	}
	wd, err := daemon.SdWatchdogEnabled(true)
	if err != nil {
		logger.Warn("systemd watchdog settings unusable; not sending WATCHDOG=1", "error", err)
	}
	return startSDNotifier(logger, sdSend, wd, extend)
}

// startSDNotifier returns a notifier writing through send, pinging every
// watchdog/2 (none when watchdog is 0), and starts its writer goroutine.
func startSDNotifier(logger *slog.Logger, send func(string) error, watchdog, extend time.Duration) *sdNotifier {
	n := &sdNotifier{
		log:      logger,
		send:     send,
		watchdog: watchdog,
		extend:   extend,
		wake:     make(chan struct{}, 1),
		stop:     make(chan struct{}),
		done:     make(chan struct{}),
		cancel:   func() {},
	}
	go n.write()
	return n
}

// sdSend writes state to $NOTIFY_SOCKET.
func sdSend(state string) error {
	if _, err := daemon.SdNotify(false, state); err != nil {
		return fmt.Errorf("sd_notify %s: %w", strings.ReplaceAll(state, "\n", " "), err)
	}
	return nil
}

// ready sends READY=1 with the current status, then reports every change
// of the status line (watching gw.WaitChange, no polling) until close. It
// sends nothing once the shutdown sequence has begun.
func (n *sdNotifier) ready(ctx context.Context, gw statusSource) {
	if n == nil {
		return
	}
	st := gw.Status()
	ctx, cancel := context.WithCancel(ctx)
	n.mu.Lock()
	n.line = sdStatusLine(st)
	if !n.stopping {
		n.queueLocked(daemon.SdNotifyReady + "\nSTATUS=" + n.statusLocked())
	}
	n.cancel = cancel
	n.mu.Unlock()
	n.watching.Go(func() {
		seq := st.Seq
		for {
			st, err := gw.WaitChange(ctx, seq)
			if err != nil {
				return
			}
			seq = st.Seq
			n.setLine(sdStatusLine(st))
		}
	})
}

// setLine sends STATUS= for a new status line (nothing when it is the
// same as the last one).
func (n *sdNotifier) setLine(line string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if line == n.line {
		return
	}
	n.line = line
	n.queueLocked("STATUS=" + n.statusLocked())
}

// statusLocked is the STATUS= text: the status line and a failed
// reload's note; n.mu is held.
func (n *sdNotifier) statusLocked() string {
	if n.note == "" {
		return n.line
	}
	if n.line == "" {
		return n.note
	}
	return n.line + "; " + n.note
}

// reloading tells the service manager a reload has begun: RELOADING=1
// with MONOTONIC_USEC, the CLOCK_MONOTONIC time in µs that systemd uses to
// match it with the reload it asked for. Nothing once shutting down.
func (n *sdNotifier) reloading() {
	if n == nil {
		return
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.stopping {
		return
	}
	msg := daemon.SdNotifyReloading
	if usec := strings.TrimSpace(daemon.SdNotifyMonotonicUsec()); usec != "" { // "MONOTONIC_USEC=…\n"
		msg += "\n" + usec
	}
	n.queueLocked(msg + "\nSTATUS=reloading the tokens file")
}

// reloaded tells the service manager the reload is done, whatever its
// outcome: READY=1 with a STATUS= saying it (outcome, one line). A failed
// reload's outcome stays in later STATUS= lines until one succeeds.
// Nothing once shutting down.
func (n *sdNotifier) reloaded(ok bool, outcome string) {
	if n == nil {
		return
	}
	outcome = strings.Join(strings.Fields(outcome), " ") // one line
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.stopping {
		return
	}
	if ok {
		n.note = ""
	} else {
		n.note = outcome
	}
	status := n.line
	switch {
	case status == "":
		status = outcome
	default:
		status += "; " + outcome
	}
	n.queueLocked(daemon.SdNotifyReady + "\nSTATUS=" + status)
}

// transition is the gateway's OnTransition hook: entering shutting_down
// sends STOPPING=1 and asks for EXTEND_TIMEOUT_USEC to cover the wait for
// turns and notifications.
func (n *sdNotifier) transition(t fsm.Transition) {
	if n == nil || t.To != fsm.ShuttingDown {
		return
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	n.stopping = true
	n.queueLocked(fmt.Sprintf("%s\nEXTEND_TIMEOUT_USEC=%d", daemon.SdNotifyStopping, n.extend.Microseconds()))
}

// close stops the status watcher and the watchdog, and waits (up to
// sdCloseTimeout) for the queued messages to be written.
func (n *sdNotifier) close() {
	if n == nil {
		return
	}
	n.closeOnce.Do(func() {
		n.mu.Lock()
		n.cancel()
		n.mu.Unlock()
		n.watching.Wait()
		close(n.stop)
		select {
		case <-n.done:
		case <-time.After(sdCloseTimeout):
			n.log.Warn("sd_notify: the service manager did not take the last notifications in time")
		}
	})
}

// queueLocked queues msg and wakes the writer; n.mu is held.
func (n *sdNotifier) queueLocked(msg string) {
	n.queue = append(n.queue, msg)
	select {
	case n.wake <- struct{}{}:
	default: // already woken
	}
}

// write is the writer goroutine: it sends queued messages in order and
// the watchdog pings, until close.
func (n *sdNotifier) write() {
	defer close(n.done)
	var ping <-chan time.Time
	if n.watchdog > 0 {
		t := time.NewTicker(n.watchdog / 2)
		defer t.Stop()
		ping = t.C
	}
	for {
		select {
		case <-n.wake:
			n.flush()
		case <-ping:
			n.sendOne(daemon.SdNotifyWatchdog)
		case <-n.stop:
			n.flush()
			return
		}
	}
}

// flush sends every queued message.
func (n *sdNotifier) flush() {
	n.mu.Lock()
	msgs := n.queue
	n.queue = nil
	n.mu.Unlock()
	for _, m := range msgs {
		n.sendOne(m)
	}
}

// sendOne sends msg; the first failure is logged at WARN, later ones at
// DEBUG (a supervisor that went away would otherwise fill the log).
func (n *sdNotifier) sendOne(msg string) {
	err := n.send(msg)
	if err == nil {
		return
	}
	n.mu.Lock()
	first := !n.failed
	n.failed = true
	n.mu.Unlock()
	level := slog.LevelDebug
	if first {
		level = slog.LevelWarn
	}
	n.log.Log(context.Background(), level, "sd_notify failed", "error", err)
}

// sdStatusLine is the STATUS= text for st, e.g. "draining, 2 turns in
// flight, oldest 14s".
func sdStatusLine(st api.Status) string {
	turns := "turns"
	if st.ActiveAgents == 1 {
		turns = "turn"
	}
	line := fmt.Sprintf("%s, %d %s in flight", st.State, st.ActiveAgents, turns)
	if st.ActiveAgents > 0 && st.OldestTurnSeconds > 0 {
		age := time.Duration(st.OldestTurnSeconds * float64(time.Second)).Round(time.Second)
		if age < time.Second {
			line += ", oldest <1s"
		} else {
			line += ", oldest " + age.String()
		}
	}
	return line
}
