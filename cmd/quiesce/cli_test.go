package main_test

import (
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/quiesce-dev/quiesce/internal/refused"

	"github.com/quiesce-dev/quiesce/gateway"
)

// cliMode is one way a client command reaches a gateway.
type cliMode struct {
	name string
	env  func(p *gatewayProc, proc string) []string
}

var cliModes = []cliMode{
	{"HTTP", func(p *gatewayProc, _ string) []string {
		return []string{"QUIESCE_URL=" + p.url, "QUIESCE_TOKEN=" + opsToken}
	}},
	{"Local", func(p *gatewayProc, proc string) []string {
		return []string{"QUIESCE_HOME=" + p.home, "QUIESCE_PROC_ROOT=" + proc}
	}},
}

// mustCLI runs the binary and fails unless it exits 0.
func mustCLI(t *testing.T, env []string, args ...string) string {
	t.Helper()
	out, errOut, code := cli(t, env, args...)
	require.Equalf(t, 0, code, "%v: stdout %s stderr %s", args, out, errOut)
	return out
}

// jsonDocs decodes the stream of JSON documents a --json command printed.
func jsonDocs(t *testing.T, out string) []map[string]any {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(out))
	var docs []map[string]any
	for dec.More() {
		var d map[string]any
		require.NoError(t, dec.Decode(&d), "output %s", out)
		docs = append(docs, d)
	}
	require.NotEmpty(t, docs, "no JSON in %q", out)
	return docs
}

// noPackagePrefixes checks a message shown to the user.
func noPackagePrefixes(t *testing.T, msg string) {
	t.Helper()
	for _, p := range []string{"server: ", "client: ", "gateway: ", "marker: "} {
		assert.NotContainsf(t, msg, p, "package prefix %q in %q", p, msg)
	}
}

// TestE2EClientCommands runs drain, status and cancel, as text and as
// JSON, over HTTP and on the local home: each does what it says, and
// --json prints the API's document.
func TestE2EClientCommands(t *testing.T) {
	t.Parallel()
	for _, mode := range cliModes {
		t.Run(mode.name, func(t *testing.T) {
			t.Parallel()
			home, proc := newHome(t), fakeProcRoot(t, "boot-cli-"+mode.name, 100)
			p := startGateway(t, home, proc)
			env := mode.env(p, proc)

			out := mustCLI(t, env, "drain", "--request-id", "first")
			assert.Contains(t, out, "drain requested")
			assert.Contains(t, out, "request_id first")
			assert.Contains(t, out, "state draining", "the gateway shows the drain before the command returns")
			assert.Equal(t, "draining", p.status()["state"])

			docs := jsonDocs(t, mustCLI(t, env, "drain", "--json", "--request-id", "second", "--suppress-notification"))
			require.Len(t, docs, 1)
			for k, want := range map[string]any{"ok": true, "action": "drain", "draining": true, "request_id": "second",
				"suppress_notification": true, "state": "draining", "active_agents": float64(0), "was_draining": true} {
				assert.Equalf(t, want, docs[0][k], "drain --json field %s", k)
			}
			assert.NotEmpty(t, docs[0]["principal"])
			assert.Equal(t, "second", readMarker(t, home)["request_id"])

			out = mustCLI(t, env, "drain", "--request-id", "third")
			assert.Contains(t, out, "replaced the drain request that was already active")

			out, errOut, code := cli(t, env, "status")
			assert.Equal(t, 3, code, "status exits 3 while draining: %s", errOut)
			for _, want := range []string{"state", "draining", "turns in flight", "request_id third", "boot-cli-" + mode.name + ":100", "pid"} {
				assert.Contains(t, out, want)
			}
			out, errOut, code = cli(t, env, "status", "--json")
			assert.Equal(t, 3, code, "status --json exits 3 while draining: %s", errOut)
			st := jsonDocs(t, out)[0]
			assert.Equal(t, "draining", st["state"])
			assert.Equal(t, true, st["live"])
			require.NotNil(t, st["drain"])
			assert.Equal(t, "third", st["drain"].(map[string]any)["request_id"])
			assert.Equal(t, "active", st["drain"].(map[string]any)["status"])

			// A cancel naming another drain changes nothing and names the active one.
			out, errOut, code = cli(t, env, "cancel", "--request-id", "nope")
			assert.Equal(t, 1, code, "stdout %s", out)
			assert.Contains(t, errOut, `"third"`, "the active request_id is named")
			assert.Contains(t, errOut, "nothing was changed")
			noPackagePrefixes(t, errOut)
			assert.Equal(t, "third", readMarker(t, home)["request_id"], "marker untouched")

			doc := jsonDocs(t, mustCLI(t, env, "cancel", "--json", "--request-id", "third"))[0]
			for k, want := range map[string]any{"ok": true, "action": "cancel", "was_draining": true, "state": "running"} {
				assert.Equalf(t, want, doc[k], "cancel --json field %s", k)
			}
			assert.Nil(t, readMarker(t, home))
			assert.Equal(t, "running", p.status()["state"])

			out = mustCLI(t, env, "cancel")
			assert.Contains(t, out, "no drain to cancel")
			assert.Contains(t, out, "(was draining: false): nothing changed")
			doc = jsonDocs(t, mustCLI(t, env, "cancel", "--json"))[0]
			assert.Equal(t, false, doc["was_draining"])
		})
	}
}

// TestE2EDrainWaitReturnsWhenTheLastTurnEnds: drain --wait over HTTP
// shows the turn in flight and its age, and returns (exit 0) once it has
// ended; with --json the last document is the status, idle.
func TestE2EDrainWaitReturnsWhenTheLastTurnEnds(t *testing.T) {
	t.Parallel()
	for _, asJSON := range []bool{false, true} {
		t.Run(map[bool]string{false: "Text", true: "JSON"}[asJSON], func(t *testing.T) {
			t.Parallel()
			home, proc := newHome(t), fakeProcRoot(t, "boot-wait", 100)
			p := startGateway(t, home, proc, "--agent-work", "1s")
			env := []string{"QUIESCE_URL=" + p.url, "QUIESCE_TOKEN=" + opsToken}
			inflight := p.turnAsync("alice", "slow")
			p.waitInFlight(1)

			args := []string{"drain", "--wait", "--timeout", "30s"}
			if asJSON {
				args = append(args, "--json")
			}
			out := mustCLI(t, env, args...)
			st := p.status()
			assert.Equal(t, float64(0), st["active_agents"], "no turn in flight when drain --wait returned")
			assert.Equal(t, "draining", st["state"])
			r := await(t, inflight)
			assert.Equal(t, http.StatusOK, r.code, "the turn in flight finished: %s", r.raw)

			if asJSON {
				docs := jsonDocs(t, out)
				require.Len(t, docs, 2, out)
				assert.Equal(t, float64(1), docs[0]["active_agents"], "the drain saw the turn")
				assert.Equal(t, true, docs[1]["idle"])
				assert.Equal(t, float64(0), docs[1]["active_agents"])
				return
			}
			assert.Contains(t, out, "draining, 1 turn in flight (oldest ")
			assert.Contains(t, out, "idle: no turn in flight")
		})
	}
}

// processGone reports whether pid has exited (a zombie not yet reaped by
// the test counts as exited).
func processGone(pid int) bool {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if errors.Is(err, os.ErrNotExist) {
		return true
	}
	if err != nil {
		return syscall.Kill(pid, 0) == syscall.ESRCH
	}
	s := string(data)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	return len(f) > 0 && (f[0] == "Z" || f[0] == "X")
}

// TestE2EShutdownWait: shutdown --wait lets the turn in flight finish and
// returns only after the gateway has exited: over HTTP its port refuses
// connections, locally the home lock is free and the process is gone.
func TestE2EShutdownWait(t *testing.T) {
	t.Parallel()
	for _, mode := range cliModes {
		t.Run(mode.name, func(t *testing.T) {
			t.Parallel()
			home, proc := newHome(t), fakeProcRoot(t, "boot-sdwait-"+mode.name, 100)
			p := startGateway(t, home, proc, "--agent-work", "1s")
			inflight := p.turnAsync("alice", "finish me")
			p.waitInFlight(1)

			out := mustCLI(t, mode.env(p, proc), "shutdown", "--wait", "--timeout", "30s")
			assert.Contains(t, out, "the gateway has exited")
			if mode.name == "HTTP" {
				_, err := doCall(p.url, http.MethodGet, "/healthz", "", "")
				assert.ErrorIs(t, err, syscall.ECONNREFUSED, "the port is closed when shutdown --wait returns")
			} else {
				live, _, err := gateway.HomeLive(home)
				require.NoError(t, err)
				assert.False(t, live, "the home lock is free when shutdown --wait returns")
				assert.True(t, processGone(p.cmd.Process.Pid), "the process has exited when shutdown --wait returns")
			}
			r := await(t, inflight)
			assert.Equal(t, http.StatusOK, r.code, "the turn in flight finished: %s", r.raw)
			require.Equal(t, 0, p.wait())
		})
	}
}

// TestE2EShutdownJSON: shutdown --json prints the API's answer (locally
// with the pid and signals); a repeat over HTTP says it changed nothing.
func TestE2EShutdownJSON(t *testing.T) {
	t.Parallel()
	for _, mode := range cliModes {
		t.Run(mode.name, func(t *testing.T) {
			t.Parallel()
			home, proc := newHome(t), fakeProcRoot(t, "boot-sdjson-"+mode.name, 100)
			p := startGateway(t, home, proc, "--agent-work", "1m", "--drain-timeout", "1m")
			inflight := p.turnAsync("alice", "long")
			p.waitInFlight(1)
			env := mode.env(p, proc)

			doc := jsonDocs(t, mustCLI(t, env, "shutdown", "--json"))[0]
			assert.Equal(t, true, doc["ok"])
			assert.Equal(t, false, doc["force"])
			if mode.name == "HTTP" {
				assert.NotEmpty(t, doc["shutdown_id"])
				assert.Equal(t, false, doc["already_shutting_down"])
				out := mustCLI(t, env, "shutdown")
				assert.Contains(t, out, "already in progress: nothing changed")
			} else {
				assert.Equal(t, float64(p.cmd.Process.Pid), doc["pid"])
				assert.Equal(t, []any{"SIGTERM"}, doc["signals"])
			}
			eventually(t, exitTimeout, "state shutting_down", func() bool { return p.status()["state"] == "shutting_down" })

			// The turn outlives --timeout: shutdown --wait gives up with exit 3
			// (and, being a repeat without --force, changes nothing).
			_, errOut, code := cli(t, env, "shutdown", "--wait", "--timeout", "200ms")
			assert.Equal(t, 3, code, errOut)
			assert.Contains(t, errOut, "timed out after 200ms")
			assert.Equal(t, 1, int(p.status()["active_agents"].(float64)), "the turn is still running")

			// While shutting down, drain and cancel are refused with the reason.
			for _, cmd := range []string{"drain", "cancel"} {
				_, errOut, code := cli(t, env, cmd)
				assert.Equalf(t, 1, code, "%s: %s", cmd, errOut)
				assert.Containsf(t, errOut, "shutting down, and shutdown wins", "%s", cmd)
				noPackagePrefixes(t, errOut)
			}
			assert.Nil(t, readMarker(t, home), "no marker written while shutting down")

			doc = jsonDocs(t, mustCLI(t, env, "shutdown", "--force", "--json", "--wait", "--timeout", "30s"))[0]
			assert.Equal(t, true, doc["force"])
			r := await(t, inflight)
			assert.Equal(t, "interrupted", r.body["error"], r.raw)
			require.Equal(t, 0, p.wait())
		})
	}
}

// TestE2EClientErrorsSayWhatToDo: the mistakes an operator makes get a
// message that names the fix, and no stacked package prefixes.
func TestE2EClientErrorsSayWhatToDo(t *testing.T) {
	t.Parallel()
	closed := "http://" + refused.Addr(t)
	home, proc := newHome(t), fakeProcRoot(t, "boot-errors", 100)
	p := startGateway(t, home, proc)
	missing := filepath.Join(t.TempDir(), "no-such-home")
	tokenFile := filepath.Join(t.TempDir(), "token")
	require.NoError(t, os.WriteFile(tokenFile, []byte("wrong-token-from-file-0123456789\n"), 0o600))

	tests := []struct {
		name string
		env  []string
		args []string
		code int
		want []string
	}{
		{"ConnectionRefused", []string{"QUIESCE_URL=" + closed, "QUIESCE_TOKEN=" + opsToken}, []string{"status"}, 6, // status: unreachable
			[]string{"cannot reach the gateway at " + closed, "connection refused", "Is the gateway running?", "--url (QUIESCE_URL)"}},
		{"ConnectionRefusedDrain", []string{"QUIESCE_TOKEN=" + opsToken}, []string{"drain", "--url", closed}, 1,
			[]string{"connection refused", "Is the gateway running?"}},
		{"WrongEnvToken", []string{"QUIESCE_URL=" + p.url, "QUIESCE_TOKEN=wrong-token-0123456789abcdef"}, []string{"status"}, 1,
			[]string{"401", "refused the token from QUIESCE_TOKEN", "tokens file"}},
		{"WrongFileToken", []string{"QUIESCE_URL=" + p.url}, []string{"drain", "--token-file", tokenFile}, 1,
			[]string{"401", "refused the token from the token file " + tokenFile}},
		{"NoToken", []string{"QUIESCE_URL=" + p.url}, []string{"status", "--home", missing}, 1,
			[]string{"no token", "QUIESCE_TOKEN", "--tokens-file"}},
		{"BadTimeout", nil, []string{"drain", "--wait", "--timeout", "soon"}, 2,
			[]string{`invalid value "soon" for flag --timeout`, "25s", "1m30s", "help drain"}},
		{"TimeoutWithoutUnit", []string{"QUIESCE_URL=" + p.url}, []string{"shutdown", "--wait", "--timeout", "30"}, 2,
			[]string{"25s", "1m30s"}},
		{"CancelMissingHome", nil, []string{"cancel", "--home", missing}, 1,
			[]string{"the home " + missing + " does not exist", "--home (QUIESCE_HOME)"}},
		{"DrainMissingHome", []string{"QUIESCE_HOME=" + missing}, []string{"drain"}, 1,
			[]string{"does not exist"}},
		{"StatusEmptyHome", []string{"QUIESCE_HOME=" + t.TempDir()}, []string{"status"}, 1,
			[]string{"no gateway has run", "--home"}},
		{"MistypedCommand", nil, []string{"stauts"}, 2, []string{`did you mean "status"?`}},
		{"MistypedFlag", nil, []string{"drain", "--supress-notification"}, 2, []string{"did you mean --suppress-notification?"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			out, errOut, code := cli(t, tt.env, tt.args...)
			assert.Equalf(t, tt.code, code, "stdout %s stderr %s", out, errOut)
			for _, w := range tt.want {
				assert.Contains(t, errOut, w)
			}
			noPackagePrefixes(t, errOut)
		})
	}
	_, err := os.Stat(missing)
	assert.True(t, os.IsNotExist(err), "no command created the missing home")
}

// TestE2EMarkerUnusable: with a directory where the marker belongs,
// drain and cancel change nothing and say what is there and what to do,
// over HTTP (409 marker_unusable) and locally.
func TestE2EMarkerUnusable(t *testing.T) {
	t.Parallel()
	home, proc := newHome(t), fakeProcRoot(t, "boot-unusable", 100)
	p := startGateway(t, home, proc)
	markerPath := filepath.Join(home, ".drain_request.json")
	require.NoError(t, os.Mkdir(markerPath, 0o700))
	for _, mode := range cliModes {
		for _, cmd := range []string{"drain", "cancel"} {
			_, errOut, code := cli(t, mode.env(p, proc), cmd)
			assert.Equalf(t, 1, code, "%s %s: %s", mode.name, cmd, errOut)
			assert.Containsf(t, errOut, markerPath+" is a directory", "%s %s", mode.name, cmd)
			assert.Containsf(t, errOut, "move it aside", "%s %s", mode.name, cmd)
			noPackagePrefixes(t, errOut)
		}
	}
	fi, err := os.Lstat(markerPath)
	require.NoError(t, err)
	assert.True(t, fi.IsDir(), "left as it was")
}

// TestE2EVersionHelpCompletion: the binary prints its version, a
// command's help on stdout, and completion scripts.
func TestE2EVersionHelpCompletion(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{{"version"}, {"--version"}} {
		out := mustCLI(t, nil, args...)
		assert.True(t, strings.HasPrefix(out, "quiesce "), out)
	}
	doc := jsonDocs(t, mustCLI(t, nil, "version", "--json"))[0]
	assert.NotEmpty(t, doc["version"])
	assert.NotEmpty(t, doc["go"])

	out := mustCLI(t, nil, "help", "shutdown")
	assert.Contains(t, out, "Usage: ")
	assert.Contains(t, out, "-wait")
	assert.Equal(t, out, mustCLI(t, nil, "shutdown", "-h"))

	assert.Contains(t, mustCLI(t, nil, "completion", "bash"), "complete -F _quiesce quiesce")
	assert.Contains(t, mustCLI(t, nil, "completion", "zsh"), "#compdef quiesce")
	_, errOut, code := cli(t, nil, "completion", "fish")
	assert.Equal(t, 2, code)
	assert.Contains(t, errOut, "want bash or zsh")
}
