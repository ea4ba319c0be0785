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

// statusSource is what the notifier reads from the gateway.
type statusSource interface {
	Status() api.Status
	WaitChange(ctx context.Context, after uint64) (api.Status, error)
}

// systemdNotifier tells a service manager that speaks the sd_notify
// protocol (systemd with Type=notify, through $NOTIFY_SOCKET) about the
// gateway:
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
// A nil *systemdNotifier (what newSystemdNotifier returns without
// NOTIFY_SOCKET) is silent: every method is a no-op. Each message is one
// daemon.SdNotify call made by the caller, under mu so that messages
// reach the service manager in the order they were decided; there is no
// queue. A datagram to a service manager that reads its socket (systemd
// does, in its main loop) does not wait.
type systemdNotifier struct {
	log    *slog.Logger
	send   func(state string) error // writes one datagram (daemon.SdNotify)
	extend time.Duration            // EXTEND_TIMEOUT_USEC sent when shutdown begins

	mu       sync.Mutex         // serialises sends (in order) and guards stopping, line, note, failed and cancel
	stopping bool               // STOPPING=1 was sent: READY=1 and RELOADING=1 must not follow
	line     string             // the last status line sent (systemdStatusLine), without the note
	note     string             // a failed reload's note, appended to status lines until a reload succeeds
	failed   bool               // a send failed and was logged at WARN (later ones at DEBUG)
	cancel   context.CancelFunc // stops the status watcher

	stop      chan struct{}  // closed by close: the watchdog pinger returns
	done      chan struct{}  // closed when the watchdog pinger has returned (at once without a watchdog)
	watching  sync.WaitGroup // the status watcher, waited for by close
	closeOnce sync.Once      // close runs once
}

// newSystemdNotifier returns a notifier writing to $NOTIFY_SOCKET, or nil
// when it is unset. extend is what EXTEND_TIMEOUT_USEC asks for when the
// shutdown sequence begins (drain + notify timeout + 1s). It reads the
// watchdog settings (WATCHDOG_USEC, honoured when WATCHDOG_PID is unset or
// this process) and removes them from the environment, so agents the
// gateway runs do not take the watchdog for theirs. Its watchdog pinger
// runs until close.
func newSystemdNotifier(logger *slog.Logger, extend time.Duration) *systemdNotifier {
	if os.Getenv("NOTIFY_SOCKET") == "" {
		return nil
	}
	wd, err := daemon.SdWatchdogEnabled(true)
	if err != nil {
		logger.Warn("systemd watchdog settings unusable; not sending WATCHDOG=1", "error", err)
	}
	return startSystemdNotifier(logger, systemdSend, wd, extend)
}

// startSystemdNotifier returns a notifier writing through send and, when
// watchdog is not 0, starts its pinger (WATCHDOG=1 every watchdog/2).
func startSystemdNotifier(logger *slog.Logger, send func(string) error, watchdog, extend time.Duration) *systemdNotifier {
	n := &systemdNotifier{
		log:    logger,
		send:   send,
		extend: extend,
		stop:   make(chan struct{}),
		done:   make(chan struct{}),
		cancel: func() {},
	}
	if watchdog <= 0 {
		close(n.done)
		return n
	}
	go n.pingWatchdog(watchdog / 2)
	return n
}

// systemdSend writes state to $NOTIFY_SOCKET.
func systemdSend(state string) error {
	if _, err := daemon.SdNotify(false, state); err != nil {
		return fmt.Errorf("sd_notify %s: %w", strings.ReplaceAll(state, "\n", " "), err)
	}
	return nil
}

// ready sends READY=1 with the current status, then reports every change
// of the status line (watching gw.WaitChange, no polling) until close. It
// sends nothing once the shutdown sequence has begun.
func (n *systemdNotifier) ready(ctx context.Context, gw statusSource) {
	if n == nil {
		return
	}
	st := gw.Status()
	ctx, cancel := context.WithCancel(ctx)
	n.mu.Lock()
	n.line = systemdStatusLine(st)
	if !n.stopping {
		n.sendLocked(daemon.SdNotifyReady + "\nSTATUS=" + n.statusLocked())
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
			n.setLine(systemdStatusLine(st))
		}
	})
}

// setLine sends STATUS= for a new status line (nothing when it is the
// same as the last one).
func (n *systemdNotifier) setLine(line string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if line == n.line {
		return
	}
	n.line = line
	n.sendLocked("STATUS=" + n.statusLocked())
}

// statusLocked is the STATUS= text: the status line and a failed
// reload's note; n.mu is held.
func (n *systemdNotifier) statusLocked() string {
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
func (n *systemdNotifier) reloading() {
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
	n.sendLocked(msg + "\nSTATUS=reloading the tokens file")
}

// reloaded tells the service manager the reload is done, whatever its
// outcome: READY=1 with a STATUS= saying it (outcome, one line). A failed
// reload's outcome stays in later STATUS= lines until one succeeds.
// Nothing once shutting down.
func (n *systemdNotifier) reloaded(ok bool, outcome string) {
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
	n.sendLocked(daemon.SdNotifyReady + "\nSTATUS=" + status)
}

// transition is the gateway's OnTransition hook: entering shutting_down
// sends STOPPING=1 and asks for EXTEND_TIMEOUT_USEC to cover the wait for
// turns and notifications.
func (n *systemdNotifier) transition(t fsm.Transition) {
	if n == nil || t.To != fsm.ShuttingDown {
		return
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	n.stopping = true
	n.sendLocked(fmt.Sprintf("%s\nEXTEND_TIMEOUT_USEC=%d", daemon.SdNotifyStopping, n.extend.Microseconds()))
}

// close stops the status watcher and the watchdog pinger, and waits for
// both.
func (n *systemdNotifier) close() {
	if n == nil {
		return
	}
	n.closeOnce.Do(func() {
		n.mu.Lock()
		n.cancel()
		n.mu.Unlock()
		n.watching.Wait()
		close(n.stop)
		<-n.done
	})
}

// pingWatchdog is the watchdog pinger: WATCHDOG=1 every interval until
// close.
func (n *systemdNotifier) pingWatchdog(interval time.Duration) {
	defer close(n.done)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			n.mu.Lock()
			n.sendLocked(daemon.SdNotifyWatchdog)
			n.mu.Unlock()
		case <-n.stop:
			return
		}
	}
}

// sendLocked sends msg; n.mu is held. The first failure is logged at
// WARN, later ones at DEBUG (a supervisor that went away would otherwise
// fill the log).
func (n *systemdNotifier) sendLocked(msg string) {
	err := n.send(msg)
	if err == nil {
		return
	}
	level := slog.LevelDebug
	if !n.failed {
		level = slog.LevelWarn
	}
	n.failed = true
	n.log.Log(context.Background(), level, "sd_notify failed", "error", err)
}

// systemdStatusLine is the STATUS= text for st, e.g. "draining, 2 turns in
// flight, oldest 14s".
func systemdStatusLine(st api.Status) string {
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
