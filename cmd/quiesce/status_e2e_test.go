package main_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// statusJSON runs status --json with args and decodes its output.
func statusJSON(t *testing.T, env []string, args ...string) (map[string]any, int) {
	t.Helper()
	out, errOut, code := cli(t, env, append([]string{"status", "--json"}, args...)...)
	var doc map[string]any
	if strings.TrimSpace(out) != "" {
		require.NoError(t, json.Unmarshal([]byte(out), &doc), "stdout %q stderr %q", out, errOut)
	}
	return doc, code
}

// TestE2EStatusExitsByState: status exits by state like systemctl
// is-active, locally and over HTTP, with --json too: 0 running, 3
// draining, 4 shutting down, 5 not running (with the last pid and when it
// stopped), 6 unreachable. shutdown --wait on a gateway already stopped is
// exit 0 "already stopped".
func TestE2EStatusExitsByState(t *testing.T) {
	t.Parallel()
	home := newHome(t)
	proc := fakeProcRoot(t, "boot-status", 100)
	p := startGateway(t, home, proc, "--agent-work", "1m", "--drain-timeout", "1m")
	pid := p.cmd.Process.Pid
	tokenEnv := []string{"QUIESCE_TOKEN=" + opsToken}
	procEnv := []string{"QUIESCE_PROC_ROOT=" + proc}
	expect := func(code int, state string) {
		t.Helper()
		out, errOut, got := cli(t, procEnv, "status", "--home", home)
		assert.Equal(t, code, got, "local status: %s %s", out, errOut)
		assert.Contains(t, out, state)
		doc, got := statusJSON(t, procEnv, "--home", home)
		assert.Equal(t, code, got, "local status --json")
		assert.Equal(t, state, doc["state"])
		doc, got = statusJSON(t, tokenEnv, "--url", p.url)
		assert.Equal(t, code, got, "status --url --json")
		assert.Equal(t, state, doc["state"])
	}

	expect(0, "running")
	doc, _ := statusJSON(t, nil, "--home", home)
	assert.Equal(t, "live", doc["condition"])
	assert.Equal(t, "gateway", doc["source"], "a live gateway is asked for its state")
	assert.Equal(t, float64(pid), doc["pid"])

	_, errOut, code := cli(t, procEnv, "drain", "--home", home)
	require.Equal(t, 0, code, errOut)
	expect(3, "draining")
	_, errOut, code = cli(t, procEnv, "cancel", "--home", home)
	require.Equal(t, 0, code, errOut)

	inflight := p.turnAsync("alice", "long")
	p.waitInFlight(1)
	p.signal(syscall.SIGTERM)
	eventually(t, exitTimeout, "shutting_down", func() bool { return p.status()["state"] == "shutting_down" })
	expect(4, "shutting_down")

	p.signal(syscall.SIGINT) // forces: the turn is interrupted
	await(t, inflight)
	require.Equal(t, 0, p.wait())

	out, errOut, code := cli(t, nil, "status", "--home", home)
	assert.Equal(t, 5, code, errOut)
	assert.Regexp(t, fmt.Sprintf(`not running \(last pid %d, stopped at \d{4}-\d\d-\d\dT`, pid), out)
	assert.NotContains(t, out, "uptime", "a stopped gateway has no uptime")
	doc, code = statusJSON(t, nil, "--home", home)
	assert.Equal(t, 5, code)
	assert.Equal(t, "not_running", doc["state"])
	assert.Equal(t, "stopped", doc["last_state"])
	assert.Equal(t, false, doc["live"])

	_, errOut, code = cli(t, tokenEnv, "status", "--url", p.url)
	assert.Equal(t, 6, code, "unreachable")
	assert.Contains(t, errOut, "connection refused")
	_, _, code = cli(t, tokenEnv, "status", "--json", "--url", p.url)
	assert.Equal(t, 6, code, "unreachable, --json too")

	for _, args := range [][]string{{"--home", home}, {"--url", p.url}} {
		out, errOut, code = cli(t, tokenEnv, append([]string{"shutdown", "--wait"}, args...)...)
		assert.Equal(t, 0, code, "shutdown --wait %v on a stopped gateway: %s", args, errOut)
		assert.Contains(t, out, "already stopped")
	}
}

// TestE2ELocalStatusDeadGateway: after kill -9 local status says not
// running with the last pid and the state it died in, exit 5, not the
// dead process's "running" with its turns.
func TestE2ELocalStatusDeadGateway(t *testing.T) {
	t.Parallel()
	home := newHome(t)
	p := startGateway(t, home, fakeProcRoot(t, "boot-dead2", 100))
	pid := p.cmd.Process.Pid
	require.NoError(t, p.cmd.Process.Kill())
	<-p.done
	out, errOut, code := cli(t, nil, "status", "--home", home)
	assert.Equal(t, 5, code, errOut)
	assert.Contains(t, out, fmt.Sprintf("not running (last pid %d, last seen running at ", pid))
	assert.Contains(t, out, "died without shutting down")
	assert.NotContains(t, out, "turns in flight")
}

// TestE2ELocalStatusAsksTheGateway: a live gateway's state file can be
// stale (a write fails on a full disk while the gateway carries on), so
// local status asks the gateway over loopback and never shows the file's
// state as current: here the file says running, idle, while the gateway
// drains. A gateway that does not answer (stopped with SIGSTOP) is shown
// from its file, with a note that it may be stale. A contentless marker
// says why, and that it drains until cancelled or expired.
func TestE2ELocalStatusAsksTheGateway(t *testing.T) {
	t.Parallel()
	home := newHome(t)
	p := startGateway(t, home, fakeProcRoot(t, "boot-ask", 100))

	require.NoError(t, writeMarkerFile(home, nil))
	eventually(t, exitTimeout, "draining", func() bool { return p.status()["state"] == "draining" })
	out, errOut, code := cli(t, nil, "status", "--home", home)
	assert.Equal(t, 3, code, errOut)
	assert.Contains(t, out, "contentless: "+filepath.Join(home, ".drain_request.json")+" is empty")
	assert.Contains(t, out, "until cancelled")
	assert.NotContains(t, out, "0001-01-01")

	// The state file goes stale: the gateway's own pid, an older moment.
	statePath := filepath.Join(home, "gateway_state.json")
	data, err := os.ReadFile(statePath)
	require.NoError(t, err)
	var doc map[string]any
	require.NoError(t, json.Unmarshal(data, &doc))
	doc["gateway_state"], doc["drain"] = "running", nil
	stale, err := json.Marshal(doc)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(statePath, stale, 0o600))

	st, code := statusJSON(t, nil, "--home", home)
	assert.Equal(t, 3, code)
	assert.Equal(t, "draining", st["state"], "the gateway's state, not its stale file's")
	assert.Equal(t, "gateway", st["source"])

	p.signal(syscall.SIGSTOP)
	t.Cleanup(func() { _ = p.cmd.Process.Signal(syscall.SIGCONT) })
	// Written again now that the gateway cannot answer: before the stop
	// it may have rewritten its file (a watcher event, a coalesced write).
	require.NoError(t, os.WriteFile(statePath, stale, 0o600))
	out, _, code = cli(t, nil, "status", "--home", home)
	assert.Equal(t, 0, code, "the file says running")
	assert.Contains(t, out, "may be stale")
	st, _ = statusJSON(t, nil, "--home", home)
	assert.Equal(t, "state_file", st["source"])
	assert.NotEmpty(t, st["stale"])
	p.signal(syscall.SIGCONT)
	p.signal(syscall.SIGTERM)
	require.Equal(t, 0, p.wait())
}

// TestE2ELocalCommandsNeverHangOnHomeFiles: a FIFO, a directory or a
// symlink at any file of the home never hangs a local command (status,
// drain, cancel, shutdown, shutdown --wait, wait, events replay); each answers
// within the deadline, and one that has to read the file fails naming it.
func TestE2ELocalCommandsNeverHangOnHomeFiles(t *testing.T) {
	t.Parallel()
	needBinary(t)
	gone := exec.Command("true")
	require.NoError(t, gone.Run())
	files := []string{"gateway.lock", "gateway_state.json", ".drain_request.json", ".drain_request.lock", "outbox.jsonl",
		"events.spool.jsonl", "events.spool.rejected.jsonl", "webhook.pending.jsonl", "tokens"}
	// The files each local command has to read: the lifecycle commands
	// the lock's pid and the state file (drain and cancel also the
	// marker; status shows a marker that is not a file as contentless,
	// naming it), events replay the rejected file.
	mustName := func(cmd, file string) bool {
		switch cmd {
		case "events":
			return file == "events.spool.rejected.jsonl" // with none rejected, it needs no spool
		case "drain", "cancel":
			if file == ".drain_request.json" {
				return true
			}
		}
		return file == "gateway.lock" || file == "gateway_state.json"
	}
	kinds := map[string]func(p string) error{
		"fifo":    func(p string) error { return syscall.Mkfifo(p, 0o600) },
		"dir":     func(p string) error { return os.Mkdir(p, 0o700) },
		"symlink": func(p string) error { return os.Symlink("/dev/zero", p) },
	}
	commands := [][]string{{"status"}, {"drain"}, {"cancel"}, {"shutdown"}, {"shutdown", "--wait", "--timeout", "2s"}, {"wait", "--timeout", "2s"}, {"events", "replay"}}
	for _, file := range files {
		for kind, plant := range kinds {
			t.Run(file+"/"+kind, func(t *testing.T) {
				t.Parallel()
				home := newHome(t)
				state := fmt.Sprintf(`{"gateway_state":"stopped","pid":%d,"started_at":"2026-01-01T00:00:00Z","updated_at":"2026-01-01T00:01:00Z"}`,
					gone.Process.Pid)
				require.NoError(t, os.WriteFile(filepath.Join(home, "gateway_state.json"), []byte(state), 0o600))
				require.NoError(t, os.WriteFile(filepath.Join(home, "gateway.lock"), []byte(strconv.Itoa(gone.Process.Pid)+"\n"), 0o644))
				path := filepath.Join(home, file)
				_ = os.Remove(path)
				require.NoError(t, plant(path))
				for _, args := range commands {
					out, errOut, code := cli(t, nil, append(args, "--home", home)...)
					require.NotEqual(t, -1, code, "%v hung on a %s at %s", args, kind, file)
					if mustName(args[0], file) {
						assert.Equal(t, 1, code, "%v with a %s at %s: %s%s", args, kind, file, out, errOut)
						assert.Contains(t, errOut, path, "%v: the error names the file", args)
					}
					if file == ".drain_request.json" && args[0] == "status" {
						assert.Contains(t, out, path, "status names the unusable marker")
					}
				}
			})
		}
	}
}

// TestE2EStartHints: a listen error's hint follows its errno (an address
// that is not this host's is not "another gateway"); a start that finds a
// drain active warns who drained, when, the request id and how to cancel;
// the echo agent warns that it is a demo.
func TestE2EStartHints(t *testing.T) {
	t.Parallel()
	home := newHome(t)
	p := startProcess(t, home, fakeProcRoot(t, "boot-hint", 100), "--addr", "192.0.2.1:0")
	require.Equal(t, 78, p.wait())
	assert.Contains(t, p.stderr.String(), "not one of this host's")
	assert.NotContains(t, p.stderr.String(), "another gateway")

	proc := fakeProcRoot(t, "boot-hint", 100)
	_, errOut, code := cli(t, []string{"QUIESCE_PROC_ROOT=" + proc}, "drain", "--home", home, "--request-id", "maint-42", "--reason", "kernel upgrade")
	require.Equal(t, 0, code, errOut)
	p = startGateway(t, home, proc)
	// The warnings follow the "listening" line startGateway waits for.
	eventually(t, exitTimeout, "the start warnings", func() bool {
		return strings.Contains(p.stderr.String(), "started draining") && strings.Contains(p.stderr.String(), "echo agent is a demo")
	})
	var warn map[string]any
	for _, line := range strings.Split(p.stderr.String(), "\n") {
		var l map[string]any
		if json.Unmarshal([]byte(line), &l) == nil && l["level"] == "WARN" && strings.Contains(fmt.Sprint(l["msg"]), "started draining") {
			warn = l
		}
	}
	require.NotNil(t, warn, "a WARN at start names the surviving drain: %s", p.stderr.String())
	assert.Equal(t, "maint-42", warn["request_id"])
	assert.Equal(t, "kernel upgrade", warn["reason"])
	assert.Contains(t, warn["principal"], "local:")
	assert.NotEmpty(t, warn["requested_at"])
	assert.Equal(t, "quiesce cancel --home "+home+" --request-id maint-42", warn["cancel"])
	assert.Contains(t, p.stderr.String(), "echo agent is a demo")
	assert.Equal(t, http.StatusServiceUnavailable, p.turn("alice", "hi").code)
	p.signal(syscall.SIGTERM)
	require.Equal(t, 0, p.wait())
}

// TestE2EStartTempFail: a home that cannot be written at start for a
// reason a restart may cure (a full disk, a read-only file system) exits
// 75, which the systemd unit restarts, not 78, which it never restarts;
// once space is back the next start works.
func TestE2EStartTempFail(t *testing.T) {
	t.Parallel()
	disk := smallDisk(t)
	home := filepath.Join(disk, "home")
	require.NoError(t, os.Mkdir(home, 0o700))
	require.NoError(t, os.WriteFile(filepath.Join(home, "tokens"), []byte("ops "+opsToken+"\n"), 0o600))
	proc := fakeProcRoot(t, "boot-full-start", 100)

	free := fill(t, disk)
	p := startProcess(t, home, proc)
	require.Equal(t, 75, p.wait(), p.stderr.String())
	assert.Contains(t, p.stderr.String(), "no space left on device")
	assert.Contains(t, p.stderr.String(), "exit 75")
	free()

	p = startGateway(t, home, proc)
	p.signal(syscall.SIGTERM)
	require.Equal(t, 0, p.wait())

	out, err := exec.Command("mount", "-o", "remount,ro", disk).CombinedOutput()
	require.NoError(t, err, "%s", out)
	p = startProcess(t, home, proc)
	require.Equal(t, 75, p.wait(), p.stderr.String())
	assert.Contains(t, p.stderr.String(), "read-only file system")
	out, err = exec.Command("mount", "-o", "remount,rw", disk).CombinedOutput()
	require.NoError(t, err, "%s", out)
}

// TestE2ELocalStatusOnFullDisk: while the home's disk is full the state
// file cannot follow the gateway (its writes fail), yet the local status
// never contradicts /metrics: a turn that started after the disk filled
// is in flight in both.
func TestE2ELocalStatusOnFullDisk(t *testing.T) {
	t.Parallel()
	disk := smallDisk(t)
	home := filepath.Join(disk, "home")
	require.NoError(t, os.Mkdir(home, 0o700))
	require.NoError(t, os.WriteFile(filepath.Join(home, "tokens"), []byte("ops "+opsToken+"\n"), 0o600))
	p := startGateway(t, home, fakeProcRoot(t, "boot-full-status", 100), "--agent-work", "1m", "--drain-timeout", "1m")

	free := fill(t, disk)
	defer free()
	inflight := p.turnAsync("alice", "long")
	p.waitInFlight(1)
	eventually(t, exitTimeout, "a failed state write", func() bool {
		return strings.Contains(p.stderr.String(), "write state file")
	})
	data, err := os.ReadFile(filepath.Join(home, "gateway_state.json"))
	require.NoError(t, err)
	assert.Contains(t, string(data), `"active_agents": 0`, "the file is stale: the disk is full")

	metrics := p.call(http.MethodGet, "/metrics", "", "")
	require.Equal(t, http.StatusOK, metrics.code)
	assert.Contains(t, metrics.raw, "quiesce_turns_in_flight 1")
	st, code := statusJSON(t, nil, "--home", home)
	assert.Equal(t, 0, code)
	assert.Equal(t, float64(1), st["active_agents"], "local status agrees with /metrics, not with the stale file")
	assert.Equal(t, "running", st["state"])
	assert.Equal(t, "gateway", st["source"])

	r := p.call(http.MethodPost, "/api/gateway/shutdown", opsToken, `{"force":true}`)
	require.Equal(t, http.StatusAccepted, r.code, r.raw)
	await(t, inflight)
	require.Equal(t, 0, p.wait())
}

// TestE2EStatusOfAGatewayKilledMidLife: a gateway killed (SIGKILL) while
// running or draining leaves a state file that still says so, but no
// process holds the home's lock: local status must say not running and
// exit 5, with --json too (last_state the recorded one), never 0 or 3 as
// if it were alive (DESIGN, CLI: status tells a live gateway from a dead
// one by the lock).
func TestE2EStatusOfAGatewayKilledMidLife(t *testing.T) {
	t.Parallel()
	for _, state := range []string{"running", "draining"} {
		t.Run(state, func(t *testing.T) {
			t.Parallel()
			home := newHome(t)
			proc := fakeProcRoot(t, "boot-killed-"+state, 100)
			procEnv := []string{"QUIESCE_PROC_ROOT=" + proc}
			p := startGateway(t, home, proc)
			pid := p.cmd.Process.Pid
			if state == "draining" {
				_, errOut, code := cli(t, procEnv, "drain", "--home", home)
				require.Equal(t, 0, code, errOut)
			}
			_, _, code := cli(t, procEnv, "status", "--home", home)
			require.Equal(t, map[string]int{"running": 0, "draining": 3}[state], code, "alive first")

			require.NoError(t, p.cmd.Process.Kill())
			require.Equal(t, -1, p.wait(), "killed by SIGKILL")

			out, errOut, code := cli(t, procEnv, "status", "--home", home)
			assert.Equal(t, 5, code, "a dead gateway is not running: %s %s", out, errOut)
			assert.Contains(t, out, fmt.Sprintf("not running (last pid %d", pid))
			doc, code := statusJSON(t, procEnv, "--home", home)
			assert.Equal(t, 5, code, "--json too")
			assert.Equal(t, "not_running", doc["state"])
			assert.Equal(t, state, doc["last_state"], "the state it was in when it died")
			assert.Equal(t, false, doc["live"])
		})
	}
}
