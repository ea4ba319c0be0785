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

// TestE2EEventRunsAgainAfterKill9MidTurn: an acknowledged internal event
// whose system turn is cut off by kill -9 runs again at the next start,
// with the same QUIESCE_EVENT_ID (I8: at-least-once); once it completed
// it never runs again.
func TestE2EEventRunsAgainAfterKill9MidTurn(t *testing.T) {
	t.Parallel()
	home := newHome(t)
	proc := fakeProcRoot(t, "boot-ev", 100)
	ran := filepath.Join(t.TempDir(), "ran")
	// The first run hangs (it is killed); later runs complete.
	agent := fmt.Sprintf(`echo "$QUIESCE_EVENT_ID" >> %[1]s; if [ "$(wc -l < %[1]s)" -lt 2 ]; then sleep 60; fi; echo ok`, ran)
	args := []string{"--agent", "exec", "--agent-cmd", agent}
	p := startGateway(t, home, proc, args...)
	r := p.call(http.MethodPost, "/api/gateway/events", opsToken, `{"session":"job","text":"build finished"}`)
	require.Equal(t, http.StatusAccepted, r.code, r.raw)
	id, _ := r.body["event_id"].(string)
	require.NotEmpty(t, id)
	eventually(t, 10*time.Second, "the system turn started", func() bool { return len(lines(t, ran)) == 1 })
	require.NoError(t, p.cmd.Process.Kill())
	<-p.done

	p2 := startGateway(t, home, proc, args...)
	eventually(t, 20*time.Second, "the event ran again and completed", func() bool {
		return len(lines(t, ran)) == 2 && p2.status()["spooled_events"] == float64(0)
	})
	assert.Equal(t, []string{id, id}, lines(t, ran), "the same event id on every run")
	p2.signal(syscall.SIGTERM)
	require.Equal(t, 0, p2.wait())

	p3 := startGateway(t, home, proc, args...)
	assert.Equal(t, float64(0), p3.status()["spooled_events"])
	p3.signal(syscall.SIGTERM)
	require.Equal(t, 0, p3.wait())
	assert.Len(t, lines(t, ran), 2, "a completed event never runs again")
}

// lines returns the non-empty lines of path (none if it is missing).
func lines(t *testing.T, path string) []string {
	t.Helper()
	data, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return nil
	}
	require.NoError(t, err)
	return strings.Fields(string(data))
}

// TestE2ESecondGatewayOnHomeExits78: one home, one gateway (I9). A second
// run on a home a live gateway holds exits 78 naming the holder's pid and
// changes nothing; the first keeps serving.
func TestE2ESecondGatewayOnHomeExits78(t *testing.T) {
	t.Parallel()
	home := newHome(t)
	proc := fakeProcRoot(t, "boot-lock", 100)
	p := startGateway(t, home, proc)
	r := p.call(http.MethodPost, "/api/gateway/drain", opsToken, "") // the event stays spooled
	require.Equal(t, http.StatusOK, r.code, r.raw)
	r = p.call(http.MethodPost, "/api/gateway/events", opsToken, `{"session":"s","text":"kept"}`)
	require.Equal(t, http.StatusAccepted, r.code, r.raw)
	spool, err := os.ReadFile(filepath.Join(home, "events.spool.jsonl"))
	require.NoError(t, err)

	second := startProcess(t, home, proc)
	select {
	case <-second.addr:
		require.Fail(t, fmt.Sprintf("a second gateway started serving on a held home; stderr:\n%s", second.stderr.String()))
	case <-second.done:
	case <-time.After(exitTimeout):
		require.Fail(t, fmt.Sprintf("the second gateway neither exited nor served within %v", exitTimeout))
	}
	require.Equal(t, 78, second.code, second.stderr.String())
	assert.Contains(t, second.stderr.String(), "pid "+strconv.Itoa(p.cmd.Process.Pid))
	after, err := os.ReadFile(filepath.Join(home, "events.spool.jsonl"))
	require.NoError(t, err)
	assert.Equal(t, string(spool), string(after), "the second gateway changed nothing")
	assert.Equal(t, http.StatusOK, p.call(http.MethodGet, "/healthz", "", "").code)
	p.signal(syscall.SIGTERM)
	require.Equal(t, 0, p.wait())
}

// TestE2ELocalStatusTellsDeadFromLive: after kill -9 the state file still
// says running, but local status reads the home lock and says the
// gateway is not running; local shutdown refuses to signal a stale pid.
func TestE2ELocalStatusTellsDeadFromLive(t *testing.T) {
	t.Parallel()
	home := newHome(t)
	p := startGateway(t, home, fakeProcRoot(t, "boot-dead", 100))
	out, errOut, code := cli(t, nil, "status", "--home", home)
	require.Equal(t, 0, code, errOut)
	assert.Contains(t, out, "running")
	assert.NotContains(t, out, "not running")
	require.NoError(t, p.cmd.Process.Kill())
	<-p.done
	out, errOut, code = cli(t, nil, "status", "--home", home)
	require.Equal(t, 5, code, "status exits 5 for a dead gateway: %s", errOut)
	assert.Contains(t, out, "not running")
	_, errOut, code = cli(t, nil, "shutdown", "--home", home)
	assert.NotEqual(t, 0, code)
	assert.Contains(t, errOut, "not running")
}

// TestE2EShutdownBoundHoldsWithSlowUpload: the whole shutdown ends within
// drain + notify + 1s whatever clients do: here a turn that outlives the
// drain timeout and a client that uploads its body one byte at a time.
func TestE2EShutdownBoundHoldsWithSlowUpload(t *testing.T) {
	t.Parallel()
	home := newHome(t)
	p := startGateway(t, home, fakeProcRoot(t, "boot-slow", 100),
		"--agent-work", "1m", "--drain-timeout", "1s", "--notify-timeout", "1s")
	inflight := p.turnAsync("alice", "long")
	p.waitInFlight(1)
	slowUpload(t, p)

	begin := time.Now()
	p.signal(syscall.SIGTERM)
	// The bound under test is 1s + 1s + 1s; the margin is for a loaded
	// machine scheduling the process, not for work the gateway may do.
	const bound = 3*time.Second + 2*time.Second
	select {
	case <-p.done:
	case <-time.After(bound):
		require.Fail(t, fmt.Sprintf("still running %v after SIGTERM (drain 1s + notify 1s + 1s)", bound))
	}
	t.Logf("exited %v after SIGTERM", time.Since(begin).Round(time.Millisecond))
	assert.Equal(t, 0, p.code)
	r := await(t, inflight)
	assert.Equal(t, "interrupted", r.body["error"], r.raw)
}

// TestE2EHostileHomeFiles: a FIFO, directory or dangling symlink where a
// file of the home belongs stops run at once with exit 78 and an error
// naming the file (never a hang).
func TestE2EHostileHomeFiles(t *testing.T) {
	t.Parallel()
	kinds := map[string]func(path string) error{
		"fifo":     func(p string) error { return syscall.Mkfifo(p, 0o600) },
		"dir":      func(p string) error { return os.Mkdir(p, 0o700) },
		"dangling": func(p string) error { return os.Symlink(p+".nowhere", p) },
	}
	for _, file := range []string{"outbox.jsonl", "events.spool.jsonl", "gateway_state.json", "gateway.lock", "tokens", ".drain_request.lock"} {
		for kind, make := range kinds {
			t.Run(file+"/"+kind, func(t *testing.T) {
				t.Parallel()
				home := newHome(t)
				path := filepath.Join(home, file)
				_ = os.Remove(path)
				require.NoError(t, make(path))
				p := startProcess(t, home, fakeProcRoot(t, "boot-hostile", 100))
				require.Equal(t, 78, p.wait(), p.stderr.String())
				assert.Contains(t, p.stderr.String(), path, "the error names the file")
			})
		}
	}
}

// TestE2ETempFilesRemovedAtStart: temp files a killed writer left in the
// home are removed when the next gateway starts.
func TestE2ETempFilesRemovedAtStart(t *testing.T) {
	t.Parallel()
	home := newHome(t)
	left := []string{"gateway_state.json.tmp-0123456789abcdef", "events.spool.jsonl.tmp-0123456789abcdef", "outbox.jsonl.tmp-aa"}
	for _, name := range left {
		require.NoError(t, os.WriteFile(filepath.Join(home, name), []byte("torn"), 0o600))
	}
	p := startGateway(t, home, fakeProcRoot(t, "boot-tmp", 100))
	for _, name := range left {
		assert.NoFileExists(t, filepath.Join(home, name))
	}
	p.signal(syscall.SIGTERM)
	require.Equal(t, 0, p.wait())
}

// TestE2EExecAgentDiesWithGateway: kill -9 of the gateway also kills the
// exec agent's whole process group (a grandchild included), through the
// parent-death signal.
func TestE2EExecAgentDiesWithGateway(t *testing.T) {
	t.Parallel()
	home := newHome(t)
	pidFile := filepath.Join(t.TempDir(), "pid")
	p := startGateway(t, home, fakeProcRoot(t, "boot-pdeath", 100),
		"--agent", "exec", "--agent-cmd", "sleep 300 & echo $! > "+pidFile+"; wait")
	inflight := p.turnAsync("alice", "hi")
	eventually(t, 10*time.Second, "the agent's child wrote its pid", func() bool { return len(lines(t, pidFile)) == 1 })
	pid, err := strconv.Atoi(lines(t, pidFile)[0])
	require.NoError(t, err)
	require.NoError(t, p.cmd.Process.Kill())
	<-p.done
	<-inflight
	eventually(t, 10*time.Second, fmt.Sprintf("agent grandchild %d gone", pid), func() bool {
		return syscall.Kill(pid, 0) != nil
	})
}

// TestE2EEpochUnavailableIsReported: without a usable proc root the
// gateway warns at start and status reports epoch_error (markers then
// drain by presence only and never suppress).
func TestE2EEpochUnavailableIsReported(t *testing.T) {
	t.Parallel()
	home := newHome(t)
	p := startGateway(t, home, t.TempDir())
	assert.Contains(t, p.stderr.String(), "epoch unavailable")
	st := p.status()
	assert.NotEmpty(t, st["epoch_error"], "status: %v", st)
	out, _, code := cli(t, []string{"QUIESCE_URL=" + p.url, "QUIESCE_TOKEN=" + opsToken}, "status")
	assert.Equal(t, 0, code)
	assert.Contains(t, out, "epoch error")
	p.signal(syscall.SIGTERM)
	require.Equal(t, 0, p.wait())
}

// TestE2ENoTurnServedBeforeFirstReconcile: start-up is lock → listen →
// reconcile → serve, so with a surviving marker of this epoch even the
// very first request, sent while the process starts, is refused: clients
// hammering the port from before it opens never get a 200.
func TestE2ENoTurnServedBeforeFirstReconcile(t *testing.T) {
	t.Parallel()
	home := newHome(t)
	proc := fakeProcRoot(t, "boot-order", 100)
	marker := fmt.Sprintf(`{"action":"drain","requested_at":%q,"principal":"ops","epoch":"boot-order:100","suppress_notification":false,"request_id":"r"}`,
		time.Now().UTC().Format(time.RFC3339))
	require.NoError(t, os.WriteFile(filepath.Join(home, ".drain_request.json"), []byte(marker), 0o600))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())

	type answer struct{ code int }
	answers := make(chan answer, 1024)
	stop := make(chan struct{})
	for range 4 {
		go func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				r, err := doCall("http://"+addr, http.MethodPost, "/v1/sessions/early/messages", opsToken, `{"text":"hi"}`)
				if err == nil {
					select {
					case answers <- answer{r.code}:
					default:
					}
				}
			}
		}()
	}
	p := startProcess(t, home, proc, "--addr", addr, "--agent-work", "0s")
	defer close(stop)
	got := 0
	deadline := time.After(startTimeout)
	for got < 20 {
		select {
		case a := <-answers:
			got++
			require.Equal(t, http.StatusServiceUnavailable, a.code, "answer %d: a turn was served before the marker was reconciled", got)
		case <-deadline:
			require.Fail(t, fmt.Sprintf("only %d answers within %v; stderr:\n%s", got, startTimeout, p.stderr.String()))
		}
	}
}

// TestE2ESIGTERMWhileClosingStillExitsZero: a supervisor's second SIGTERM
// that lands after the sequence ended, while the server closes its last
// connections, is still caught: exit 0, not death by signal (143).
func TestE2ESIGTERMWhileClosingStillExitsZero(t *testing.T) {
	t.Parallel()
	p := startGateway(t, newHome(t), fakeProcRoot(t, "boot-close", 100), "--drain-timeout", "200ms", "--notify-timeout", "200ms")
	conn, err := net.Dial("tcp", strings.TrimPrefix(p.url, "http://"))
	require.NoError(t, err)
	defer conn.Close()
	// A half-sent upload keeps the server's close busy for its whole bound.
	_, err = fmt.Fprintf(conn, "POST /api/gateway/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Length: 100\r\n\r\n{", opsToken)
	require.NoError(t, err)
	p.signal(syscall.SIGTERM)
	eventually(t, exitTimeout, "the sequence ended", func() bool { return strings.Contains(p.stderr.String(), "gateway stopped") })
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Skip("the process exited before the second signal")
	}
	require.Equal(t, 0, p.wait(), "exit 0, not killed by the repeated SIGTERM")
	assert.Contains(t, p.stderr.String(), `"msg":"exiting"`)
}

// slowUpload opens a connection to p and starts a turn whose body it
// sends one byte every 100 ms, until the test ends or the server closes
// the connection: a client that holds a request open as long as it can.
func slowUpload(t *testing.T, p *gatewayProc) {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(p.url, "http://"))
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	_, err = fmt.Fprintf(conn, "POST /v1/sessions/slow/messages HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Length: 1000\r\n\r\n{", opsToken)
	require.NoError(t, err)
	stop := make(chan struct{})
	t.Cleanup(func() { close(stop) })
	go func() {
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				if _, err := conn.Write([]byte(" ")); err != nil {
					return
				}
			}
		}
	}()
}
