package main_test

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// notifySocket is a unixgram socket standing in for systemd's
// NOTIFY_SOCKET: it hands each line of each datagram to the test.
type notifySocket struct {
	path  string
	lines chan string // every line received, in order
	// watchdog counts WATCHDOG=1 lines next has skipped.
	watchdog int
	seen     []string // every other line next has returned, in order
}

// listenNotify opens a notify socket in a short temp dir (a unix socket's
// path is limited to about 100 bytes) and reads it until the test ends.
func listenNotify(t *testing.T) *notifySocket {
	t.Helper()
	dir, err := os.MkdirTemp("", "sdn")
	require.NoError(t, err)
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	s := &notifySocket{path: filepath.Join(dir, "notify.sock"), lines: make(chan string, 4096)}
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: s.path, Net: "unixgram"})
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	go func() {
		buf := make([]byte, 64<<10)
		for {
			n, err := conn.Read(buf)
			if err != nil {
				close(s.lines)
				return
			}
			for line := range strings.SplitSeq(string(buf[:n]), "\n") {
				if line != "" {
					s.lines <- line
				}
			}
		}
	}()
	return s
}

// read consumes lines until done holds for one, failing after a bound:
// watchdog pings are counted, every other line is kept in seen.
func (s *notifySocket) read(t *testing.T, what string, done func(line string) bool) string {
	t.Helper()
	deadline := time.After(startTimeout)
	for {
		select {
		case line, ok := <-s.lines:
			require.Truef(t, ok, "notify socket closed before %s; got %q", what, s.seen)
			if line == "WATCHDOG=1" {
				s.watchdog++
			} else {
				s.seen = append(s.seen, line)
			}
			if done(line) {
				return line
			}
		case <-deadline:
			require.Fail(t, fmt.Sprintf("no %s on NOTIFY_SOCKET within %v; got %q and %d watchdog pings", what, startTimeout, s.seen, s.watchdog))
			return ""
		}
	}
}

// next returns the next line other than a watchdog ping for which match
// holds.
func (s *notifySocket) next(t *testing.T, what string, match func(string) bool) string {
	t.Helper()
	return s.read(t, what, func(l string) bool { return l != "WATCHDOG=1" && match(l) })
}

// awaitWatchdog waits until n watchdog pings have arrived in all.
func (s *notifySocket) awaitWatchdog(t *testing.T, n int) {
	t.Helper()
	s.read(t, fmt.Sprintf("%d WATCHDOG=1", n), func(string) bool { return s.watchdog >= n })
}

// drain reads everything sent so far (by a process that has exited): it
// sends a sentinel datagram itself and reads up to it.
func (s *notifySocket) drain(t *testing.T) {
	t.Helper()
	conn, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: s.path, Net: "unixgram"})
	require.NoError(t, err)
	_, err = conn.Write([]byte("TEST_END=1"))
	require.NoError(t, err)
	require.NoError(t, conn.Close())
	s.next(t, "the sentinel", lineIs("TEST_END=1"))
	s.seen = s.seen[:len(s.seen)-1]
}

func lineIs(want string) func(string) bool { return func(l string) bool { return l == want } }

func lineHasPrefix(p string) func(string) bool {
	return func(l string) bool { return strings.HasPrefix(l, p) }
}

// TestSystemdNotify runs the binary with NOTIFY_SOCKET and WATCHDOG_USEC
// set, as systemd does for a Type=notify unit with WatchdogSec, and shows
// what the supervisor is told, in order: READY=1 once the gateway serves
// (a request right after it is answered), a STATUS= line when a drain
// starts, when a turn is in flight and when the drain is cancelled,
// STOPPING=1 then EXTEND_TIMEOUT_USEC (drain + notify timeout + 1s) when a
// SIGTERM begins the shutdown, and watchdog pings all along; the gateway
// then exits 0.
func TestSystemdNotify(t *testing.T) {
	needBinary(t)
	sock := listenNotify(t)
	// The child inherits the test's environment (helpers' cleanEnv): set
	// systemd's variables here. WATCHDOG_PID stays unset, so the child
	// takes the watchdog for its own.
	t.Setenv("NOTIFY_SOCKET", sock.path)
	t.Setenv("WATCHDOG_USEC", "200000")
	t.Setenv("WATCHDOG_PID", "")
	home := newHome(t)
	p := startGateway(t, home, fakeProcRoot(t, "boot-sd", 100),
		"--agent-work", "3s", "--drain-timeout", "10s", "--notify-timeout", "2s")

	sock.next(t, "READY=1", lineIs("READY=1"))
	r := p.call(http.MethodGet, "/readyz", "", "")
	assert.Equal(t, http.StatusOK, r.code, "ready once READY=1 is sent: %s", r.raw)
	assert.Equal(t, "STATUS=running, 0 turns in flight", sock.next(t, "STATUS with READY=1", lineHasPrefix("STATUS=")))

	r = p.call(http.MethodPost, "/api/gateway/drain", opsToken, "")
	require.Equal(t, http.StatusOK, r.code, r.raw)
	sock.next(t, "STATUS=draining", lineIs("STATUS=draining, 0 turns in flight"))

	r = p.call(http.MethodPost, "/api/gateway/drain", opsToken, `{"action":"cancel"}`)
	require.Equal(t, http.StatusOK, r.code, r.raw)
	sock.next(t, "STATUS=running after cancel", lineIs("STATUS=running, 0 turns in flight"))

	turn := p.turnAsync("alice", "hello")
	sock.next(t, "STATUS with a turn in flight", lineHasPrefix("STATUS=running, 1 turn in flight"))

	// At least two pings at WATCHDOG_USEC/2 = 100ms before shutting down.
	sock.awaitWatchdog(t, 2)

	p.signal(syscall.SIGTERM)
	sock.next(t, "STOPPING=1", lineIs("STOPPING=1"))
	want := fmt.Sprintf("EXTEND_TIMEOUT_USEC=%d", (10*time.Second + 2*time.Second + time.Second).Microseconds())
	sock.next(t, "EXTEND_TIMEOUT_USEC", lineHasPrefix("EXTEND_TIMEOUT_USEC="))
	assert.Equal(t, want, sock.seen[len(sock.seen)-1], "EXTEND_TIMEOUT_USEC covers drain + notify + 1s")
	assert.Equal(t, "STOPPING=1", sock.seen[len(sock.seen)-2], "right after STOPPING=1")

	got := await(t, turn)
	assert.Equal(t, http.StatusOK, got.code, "the turn in flight finishes: %s", got.raw)
	assert.Equal(t, 0, p.wait(), "exit 0 after the shutdown sequence")
	sock.drain(t)

	ready := lineIndex(sock.seen, "READY=1")
	assert.Zero(t, ready, "READY=1 is the first message: %q", sock.seen)
	assert.Less(t, ready, lineIndex(sock.seen, "STATUS=draining, 0 turns in flight"))
	assert.Less(t, lineIndex(sock.seen, "STATUS=draining, 0 turns in flight"), lineIndex(sock.seen, "STOPPING=1"))
	assert.Equal(t, 1, lineCount(sock.seen, "READY=1"), "READY=1 once: %q", sock.seen)
	assert.Equal(t, 1, lineCount(sock.seen, "STOPPING=1"), "STOPPING=1 once: %q", sock.seen)
	assert.GreaterOrEqual(t, sock.watchdog, 2, "watchdog pings")
}

// TestSystemdNotifyRepeatedSignal shows that a second SIGTERM (systemd's
// ExecStop and its own stop both send one) does not repeat STOPPING=1.
func TestSystemdNotifyRepeatedSignal(t *testing.T) {
	needBinary(t)
	sock := listenNotify(t)
	t.Setenv("NOTIFY_SOCKET", sock.path)
	t.Setenv("WATCHDOG_USEC", "")
	p := startGateway(t, newHome(t), fakeProcRoot(t, "boot-sd2", 100), "--agent-work", "2s")
	sock.next(t, "READY=1", lineIs("READY=1"))
	turn := p.turnAsync("bob", "hi")
	sock.next(t, "STATUS with a turn in flight", lineHasPrefix("STATUS=running, 1 turn in flight"))
	p.signal(syscall.SIGTERM)
	sock.next(t, "STOPPING=1", lineIs("STOPPING=1"))
	p.signal(syscall.SIGTERM)
	assert.Equal(t, http.StatusOK, await(t, turn).code, "the turn finishes: a repeated SIGTERM does not force")
	assert.Equal(t, 0, p.wait())
	sock.drain(t)
	assert.Equal(t, 1, lineCount(sock.seen, "STOPPING=1"), "STOPPING=1 once: %q", sock.seen)
	assert.Zero(t, sock.watchdog, "no watchdog pings without WATCHDOG_USEC")
}

func lineIndex(lines []string, want string) int {
	for i, l := range lines {
		if l == want {
			return i
		}
	}
	return -1
}

func lineCount(lines []string, want string) int {
	n := 0
	for _, l := range lines {
		if l == want {
			n++
		}
	}
	return n
}

// metricValue returns the value of the series line (name and labels as
// printed) in the gateway's /metrics, failing when it is absent.
func (p *gatewayProc) metricValue(series string) float64 {
	p.t.Helper()
	r := p.call(http.MethodGet, "/metrics", "", "")
	require.Equal(p.t, http.StatusOK, r.code)
	for line := range strings.Lines(r.raw) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), series+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			require.NoError(p.t, err, line)
			return f
		}
	}
	require.Fail(p.t, fmt.Sprintf("no series %s in /metrics:\n%s", series, r.raw))
	return 0
}

// TestSystemdNotifyReload runs the binary as a Type=notify-reload unit
// would and sends SIGHUP twice: a good tokens file, then a group-readable
// one. Each reload is RELOADING=1 with MONOTONIC_USEC, then READY=1 with a
// STATUS= saying the outcome (the failure says the old tokens are in use
// and stays on later status lines), and /metrics counts it by result,
// with the last good load's time and whether the last load succeeded.
func TestSystemdNotifyReload(t *testing.T) {
	needBinary(t)
	sock := listenNotify(t)
	t.Setenv("NOTIFY_SOCKET", sock.path)
	t.Setenv("WATCHDOG_USEC", "")
	secret := filepath.Join(t.TempDir(), "tokens")
	writeSecret(t, secret, "ops "+opsToken+"\n", 0o600)
	p := startGateway(t, filepath.Join(t.TempDir(), "home"), fakeProcRoot(t, "boot-sdr", 100), "--tokens-file", secret)
	sock.next(t, "READY=1", lineIs("READY=1"))
	assert.Equal(t, 1.0, p.metricValue("quiesce_tokens_last_reload_successful"), "the load at start succeeded")
	startedAt := p.metricValue("quiesce_tokens_last_reload_success_timestamp_seconds")
	assert.Greater(t, startedAt, 0.0)

	writeSecret(t, secret, "ops "+opsToken+"\nci ci-e2e-token-0123456789abcdef\n", 0o600)
	p.signal(syscall.SIGHUP)
	sock.next(t, "RELOADING=1", lineIs("RELOADING=1"))
	assert.Regexp(t, `^MONOTONIC_USEC=[0-9]+$`, sock.next(t, "MONOTONIC_USEC", func(string) bool { return true }), "right after RELOADING=1")
	sock.next(t, "READY=1 after the reload", lineIs("READY=1"))
	assert.Equal(t, "STATUS=running, 0 turns in flight; tokens reloaded: 2 tokens", sock.next(t, "STATUS= with READY=1", lineHasPrefix("STATUS=")))
	assert.Equal(t, 1.0, p.metricValue(`quiesce_tokens_reload_total{result="ok"}`))
	assert.Equal(t, 0.0, p.metricValue(`quiesce_tokens_reload_total{result="error"}`))
	goodAt := p.metricValue("quiesce_tokens_last_reload_success_timestamp_seconds")
	assert.GreaterOrEqual(t, goodAt, startedAt)

	writeSecret(t, secret, "ops "+opsToken+"\n", 0o640)
	p.signal(syscall.SIGHUP)
	sock.next(t, "RELOADING=1", lineIs("RELOADING=1"))
	sock.next(t, "READY=1 after the failed reload", lineIs("READY=1"))
	status := sock.next(t, "STATUS= with READY=1", lineHasPrefix("STATUS="))
	assert.Contains(t, status, "tokens reload failed, still using the old 2 tokens (a restart would exit 78)")
	assert.Contains(t, status, "0640")
	assert.Equal(t, 1.0, p.metricValue(`quiesce_tokens_reload_total{result="error"}`))
	assert.Equal(t, 0.0, p.metricValue("quiesce_tokens_last_reload_successful"))
	assert.Equal(t, goodAt, p.metricValue("quiesce_tokens_last_reload_success_timestamp_seconds"), "still the last good load")

	r := p.call(http.MethodPost, "/api/gateway/drain", opsToken, "")
	require.Equal(t, http.StatusOK, r.code, r.raw)
	assert.Contains(t, sock.next(t, "STATUS=draining", lineHasPrefix("STATUS=draining")), "tokens reload failed", "the failure stays on the status line")

	p.signal(syscall.SIGTERM)
	assert.Equal(t, 0, p.wait())
}
