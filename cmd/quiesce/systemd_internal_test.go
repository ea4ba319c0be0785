package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/quiesce-dev/quiesce/api"
	"github.com/quiesce-dev/quiesce/fsm"
)

// systemdWait bounds every wait of these tests.
const systemdWait = 10 * time.Second

// fakeStatus is a statusSource whose status the test sets.
type fakeStatus struct {
	mu      sync.Mutex    // guards st and changed
	st      api.Status    // the current status
	changed chan struct{} // closed and replaced by set
}

func newFakeStatus(st api.Status) *fakeStatus {
	return &fakeStatus{st: st, changed: make(chan struct{})}
}

func (f *fakeStatus) Status() api.Status {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.st
}

func (f *fakeStatus) WaitChange(ctx context.Context, after uint64) (api.Status, error) {
	for {
		f.mu.Lock()
		st, ch := f.st, f.changed
		f.mu.Unlock()
		if st.Seq > after {
			return st, nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return st, ctx.Err()
		}
	}
}

// set replaces the status with st (its Seq one past the last).
func (f *fakeStatus) set(st api.Status) {
	f.mu.Lock()
	defer f.mu.Unlock()
	st.Seq = f.st.Seq + 1
	f.st = st
	close(f.changed)
	f.changed = make(chan struct{})
}

// recorder is a send func that hands each message to the test.
type recorder struct{ msgs chan string }

func newRecorder() *recorder { return &recorder{msgs: make(chan string, 256)} }

func (r *recorder) send(msg string) error {
	r.msgs <- msg
	return nil
}

// next returns the next message that is not a watchdog ping.
func (r *recorder) next(t *testing.T, what string) string {
	t.Helper()
	deadline := time.After(systemdWait)
	for {
		select {
		case m := <-r.msgs:
			if m != "WATCHDOG=1" {
				return m
			}
		case <-deadline:
			require.Fail(t, fmt.Sprintf("no sd_notify message within %v: wanted %s", systemdWait, what))
			return ""
		}
	}
}

// none fails if a message other than a watchdog ping is waiting.
func (r *recorder) none(t *testing.T) {
	t.Helper()
	for {
		select {
		case m := <-r.msgs:
			require.Equalf(t, "WATCHDOG=1", m, "unexpected sd_notify message %q", m)
		default:
			return
		}
	}
}

func discardLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func TestSystemdStatusLine(t *testing.T) {
	tests := []struct {
		st   api.Status
		want string
	}{
		{api.Status{State: fsm.Running}, "running, 0 turns in flight"},
		{api.Status{State: fsm.Running, ActiveAgents: 1, OldestTurnSeconds: 0.2}, "running, 1 turn in flight, oldest <1s"},
		{api.Status{State: fsm.Draining, ActiveAgents: 2, OldestTurnSeconds: 14.4}, "draining, 2 turns in flight, oldest 14s"},
		{api.Status{State: fsm.ShuttingDown, ActiveAgents: 3, OldestTurnSeconds: 75}, "shutting_down, 3 turns in flight, oldest 1m15s"},
		{api.Status{State: fsm.Stopped}, "stopped, 0 turns in flight"},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, systemdStatusLine(tt.st))
	}
}

// TestSystemdNotifierSilentWithoutSocket shows that without NOTIFY_SOCKET there
// is no notifier and every call on it is a no-op.
func TestSystemdNotifierSilentWithoutSocket(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", "")
	n := newSystemdNotifier(discardLogger(), time.Second)
	require.Nil(t, n)
	n.ready(t.Context(), newFakeStatus(api.Status{State: fsm.Running}))
	n.transition(fsm.Transition{From: fsm.Running, To: fsm.ShuttingDown})
	n.close()
}

// TestSystemdNotifierSequence shows the messages a supervisor gets, in order:
// READY=1 with the status, a STATUS= for each change of the status line
// (none for a change that leaves it the same), STOPPING=1 with
// EXTEND_TIMEOUT_USEC when shutdown begins.
func TestSystemdNotifierSequence(t *testing.T) {
	rec := newRecorder()
	n := startSystemdNotifier(discardLogger(), rec.send, 0, 13*time.Second)
	defer n.close()
	gw := newFakeStatus(api.Status{State: fsm.Running})

	n.transition(fsm.Transition{From: fsm.Running, To: fsm.Draining}) // not a shutdown: nothing
	n.ready(t.Context(), gw)
	assert.Equal(t, "READY=1\nSTATUS=running, 0 turns in flight", rec.next(t, "READY=1"))

	gw.set(api.Status{State: fsm.Draining})
	assert.Equal(t, "STATUS=draining, 0 turns in flight", rec.next(t, "STATUS=draining"))
	gw.set(api.Status{State: fsm.Draining}) // same line: not repeated
	gw.set(api.Status{State: fsm.Running, ActiveAgents: 1})
	assert.Equal(t, "STATUS=running, 1 turn in flight", rec.next(t, "STATUS=running"))

	n.transition(fsm.Transition{From: fsm.Running, To: fsm.ShuttingDown, Event: fsm.Shutdown})
	assert.Equal(t, "STOPPING=1\nEXTEND_TIMEOUT_USEC=13000000", rec.next(t, "STOPPING=1"))
	n.close()
	rec.none(t)
}

// TestSystemdNotifierNoReadyAfterStopping shows that a shutdown begun before
// the gateway was ready is not followed by READY=1.
func TestSystemdNotifierNoReadyAfterStopping(t *testing.T) {
	rec := newRecorder()
	n := startSystemdNotifier(discardLogger(), rec.send, 0, time.Second)
	defer n.close()
	n.transition(fsm.Transition{From: fsm.Running, To: fsm.ShuttingDown})
	assert.Equal(t, "STOPPING=1\nEXTEND_TIMEOUT_USEC=1000000", rec.next(t, "STOPPING=1"))
	gw := newFakeStatus(api.Status{State: fsm.ShuttingDown})
	n.ready(t.Context(), gw)
	gw.set(api.Status{State: fsm.Stopped})
	assert.Equal(t, "STATUS=stopped, 0 turns in flight", rec.next(t, "STATUS=stopped"))
	n.close()
	rec.none(t)
}

// TestSystemdNotifierSendsBeforeReturning shows there is no queue: each
// message is on the socket when the call that decided it returns, so
// STOPPING=1 has been sent before the shutdown sequence goes on.
func TestSystemdNotifierSendsBeforeReturning(t *testing.T) {
	rec := newRecorder()
	n := startSystemdNotifier(discardLogger(), rec.send, 0, time.Second)
	defer n.close()
	sent := func(what string) string {
		t.Helper()
		select {
		case m := <-rec.msgs:
			return m
		default:
			require.Fail(t, fmt.Sprintf("%s not sent when the call returned", what))
			return ""
		}
	}
	n.ready(t.Context(), newFakeStatus(api.Status{State: fsm.Running}))
	assert.Equal(t, "READY=1\nSTATUS=running, 0 turns in flight", sent("READY=1"))
	n.reloading()
	assert.True(t, strings.HasPrefix(sent("RELOADING=1"), "RELOADING=1\n"))
	n.reloaded(true, "tokens reloaded: 1 token")
	assert.Equal(t, "READY=1\nSTATUS=running, 0 turns in flight; tokens reloaded: 1 token", sent("READY=1 after the reload"))
	n.transition(fsm.Transition{From: fsm.Running, To: fsm.ShuttingDown})
	assert.Equal(t, "STOPPING=1\nEXTEND_TIMEOUT_USEC=1000000", sent("STOPPING=1"))
	n.close()
	rec.none(t)
}

// TestSystemdNotifierWatchdog shows the watchdog pings while the notifier runs
// and stops with close (its writer has returned).
func TestSystemdNotifierWatchdog(t *testing.T) {
	rec := newRecorder()
	n := startSystemdNotifier(discardLogger(), rec.send, 20*time.Millisecond, time.Second)
	pings := 0
	deadline := time.After(systemdWait)
	for pings < 2 {
		select {
		case m := <-rec.msgs:
			require.Equal(t, "WATCHDOG=1", m)
			pings++
		case <-deadline:
			require.Fail(t, fmt.Sprintf("%d watchdog pings within %v, want 2", pings, systemdWait))
		}
	}
	n.close()
	select {
	case <-n.done:
	default:
		require.Fail(t, "the watchdog pinger (and its ticker) still runs after close")
	}
}

// TestSystemdNotifierSendFailureKeepsGoing shows that a failing socket is
// logged once at WARN and does not stop later messages.
func TestSystemdNotifierSendFailureKeepsGoing(t *testing.T) {
	var mu sync.Mutex // guards calls
	var calls []string
	send := func(msg string) error {
		mu.Lock()
		defer mu.Unlock()
		calls = append(calls, msg)
		return errors.New("connection refused")
	}
	var logs strings.Builder
	var logMu sync.Mutex // guards logs
	logger := slog.New(slog.NewTextHandler(writerFunc(func(p []byte) (int, error) {
		logMu.Lock()
		defer logMu.Unlock()
		return logs.Write(p)
	}), nil))
	n := startSystemdNotifier(logger, send, 0, time.Second)
	n.ready(t.Context(), newFakeStatus(api.Status{State: fsm.Running}))
	n.transition(fsm.Transition{From: fsm.Running, To: fsm.ShuttingDown})
	n.close()
	mu.Lock()
	assert.Len(t, calls, 2, "both messages were tried: %q", calls)
	mu.Unlock()
	logMu.Lock()
	assert.Equal(t, 1, strings.Count(logs.String(), "sd_notify failed"), "logged once at WARN:\n%s", logs.String())
	logMu.Unlock()
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// TestRunTokensFileFlag shows --tokens-file and its environment variable.
func TestRunTokensFileFlag(t *testing.T) {
	tests := []struct {
		args []string
		env  map[string]string
		want string
	}{
		{[]string{"run"}, nil, ""},
		{[]string{"run", "--tokens-file", "/run/secrets/quiesce/tokens"}, nil, "/run/secrets/quiesce/tokens"},
		{[]string{"run"}, map[string]string{"QUIESCE_TOKENS_FILE": "/etc/quiesce/tokens"}, "/etc/quiesce/tokens"},
		{[]string{"run", "--tokens-file", "/a"}, map[string]string{"QUIESCE_TOKENS_FILE": "/b"}, "/a"},
	}
	for _, tt := range tests {
		m, _, _ := newTestMain(tt.env)
		require.NoError(t, m.ParseFlags(t.Context(), tt.args))
		assert.Equal(t, tt.want, m.cmd.(*runCmd).tokensFile, "%v %v", tt.args, tt.env)
	}
}

// monotonicUsec reads CLOCK_MONOTONIC in µs, as MONOTONIC_USEC carries it.
func monotonicUsec(t *testing.T) uint64 {
	t.Helper()
	var ts unix.Timespec
	require.NoError(t, unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts))
	return uint64(ts.Sec)*1e6 + uint64(ts.Nsec)/1e3
}

// TestSystemdNotifierReload shows systemd's Type=notify-reload protocol around
// a reload: RELOADING=1 with MONOTONIC_USEC (the CLOCK_MONOTONIC time the
// reload began, in µs), then READY=1 with a STATUS= saying the outcome,
// whatever it was. A failed reload's note stays on every later STATUS=
// line until a reload succeeds; once shutting down, a reload sends
// nothing (READY=1 must not follow STOPPING=1).
func TestSystemdNotifierReload(t *testing.T) {
	rec := newRecorder()
	n := startSystemdNotifier(discardLogger(), rec.send, 0, time.Second)
	defer n.close()
	gw := newFakeStatus(api.Status{State: fsm.Running})
	n.ready(t.Context(), gw)
	assert.Equal(t, "READY=1\nSTATUS=running, 0 turns in flight", rec.next(t, "READY=1"))

	before := monotonicUsec(t)
	n.reloading()
	msg := rec.next(t, "RELOADING=1")
	after := monotonicUsec(t)
	lines := strings.Split(msg, "\n")
	require.Len(t, lines, 3, "%q", msg)
	assert.Equal(t, "RELOADING=1", lines[0])
	usec, ok := strings.CutPrefix(lines[1], "MONOTONIC_USEC=")
	require.True(t, ok, "%q", msg)
	v, err := strconv.ParseUint(usec, 10, 64)
	require.NoError(t, err)
	assert.True(t, before <= v && v <= after, "MONOTONIC_USEC=%d is CLOCK_MONOTONIC when the reload began (between %d and %d)", v, before, after)
	assert.Equal(t, "STATUS=reloading the tokens file", lines[2])

	n.reloaded(false, "tokens reload failed, still using the old 1 token:\nmode 0644")
	assert.Equal(t, "READY=1\nSTATUS=running, 0 turns in flight; tokens reload failed, still using the old 1 token: mode 0644",
		rec.next(t, "READY=1 after a failed reload"))
	gw.set(api.Status{State: fsm.Draining})
	assert.Equal(t, "STATUS=draining, 0 turns in flight; tokens reload failed, still using the old 1 token: mode 0644",
		rec.next(t, "STATUS= keeps the failed reload's note"))

	n.reloading()
	assert.True(t, strings.HasPrefix(rec.next(t, "RELOADING=1"), "RELOADING=1\nMONOTONIC_USEC="))
	n.reloaded(true, "tokens reloaded: 2 tokens")
	assert.Equal(t, "READY=1\nSTATUS=draining, 0 turns in flight; tokens reloaded: 2 tokens", rec.next(t, "READY=1 after a good reload"))
	gw.set(api.Status{State: fsm.Running})
	assert.Equal(t, "STATUS=running, 0 turns in flight", rec.next(t, "STATUS= without the note"))

	n.transition(fsm.Transition{From: fsm.Running, To: fsm.ShuttingDown})
	assert.Equal(t, "STOPPING=1\nEXTEND_TIMEOUT_USEC=1000000", rec.next(t, "STOPPING=1"))
	n.reloading()
	n.reloaded(true, "tokens reloaded: 2 tokens")
	n.close()
	rec.none(t)
}

// TestSystemdNotifierReloadSilentWithoutSocket: without NOTIFY_SOCKET, the
// reload calls are no-ops.
func TestSystemdNotifierReloadSilentWithoutSocket(t *testing.T) {
	var n *systemdNotifier
	n.reloading()
	n.reloaded(false, "x")
}
