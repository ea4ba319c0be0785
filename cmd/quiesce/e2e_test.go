package main_test

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/quiesce-dev/quiesce/notify"
)

// TestE2EDrainEndpoint runs the upstream endpoint cases against a real
// gateway: begin writes the marker, an empty body defaults to begin, the
// suppress flag passes through and defaults to false, cancel removes the
// marker and is idempotent, a bad action is a 400 that writes nothing.
func TestE2EDrainEndpoint(t *testing.T) {
	t.Parallel()
	home := newHome(t)
	p := startGateway(t, home, fakeProcRoot(t, "boot-a", 100))
	drain := func(body string) response {
		t.Helper()
		return p.call(http.MethodPost, "/api/gateway/drain", opsToken, body)
	}

	t.Run("BeginWritesMarker", func(t *testing.T) {
		r := drain(`{"action":"drain"}`)
		require.Equal(t, http.StatusOK, r.code, r.raw)
		for k, want := range map[string]any{"ok": true, "action": "drain", "draining": true,
			"suppress_notification": false, "principal": "ops", "state": "draining"} {
			assert.Equalf(t, want, r.body[k], "response field %s", k)
		}
		m := readMarker(t, home)
		require.NotNil(t, m, "marker written")
		assert.Equal(t, "drain", m["action"])
		assert.Equal(t, "ops", m["principal"])
		assert.Equal(t, "boot-a:100", m["epoch"])
		assert.Equal(t, r.body["request_id"], m["request_id"])
	})
	t.Run("CancelRemovesMarker", func(t *testing.T) {
		r := drain(`{"action":"cancel"}`)
		require.Equal(t, http.StatusOK, r.code, r.raw)
		assert.Equal(t, true, r.body["was_draining"])
		assert.Equal(t, "running", r.body["state"])
		assert.Nil(t, readMarker(t, home))
	})
	t.Run("CancelIdempotent", func(t *testing.T) {
		r := drain(`{"action":"cancel"}`)
		require.Equal(t, http.StatusOK, r.code, r.raw)
		assert.Equal(t, true, r.body["ok"])
		assert.Equal(t, false, r.body["was_draining"])
		assert.Nil(t, readMarker(t, home))
	})
	t.Run("DefaultsToBegin", func(t *testing.T) {
		r := drain("")
		require.Equal(t, http.StatusOK, r.code, r.raw)
		assert.Equal(t, "drain", r.body["action"])
		assert.NotNil(t, readMarker(t, home))
		drain(`{"action":"cancel"}`)
	})
	t.Run("SuppressPassthrough", func(t *testing.T) {
		r := drain(`{"action":"drain","suppress_notification":true}`)
		require.Equal(t, http.StatusOK, r.code, r.raw)
		assert.Equal(t, true, r.body["suppress_notification"])
		assert.Equal(t, true, readMarker(t, home)["suppress_notification"])
		drain(`{"action":"cancel"}`)
	})
	t.Run("SuppressDefaultsFalse", func(t *testing.T) {
		r := drain(`{"action":"drain"}`)
		require.Equal(t, http.StatusOK, r.code, r.raw)
		assert.Equal(t, false, r.body["suppress_notification"])
		assert.Equal(t, false, readMarker(t, home)["suppress_notification"])
		drain(`{"action":"cancel"}`)
	})
	t.Run("BadAction400", func(t *testing.T) {
		r := drain(`{"action":"begin"}`)
		require.Equal(t, http.StatusBadRequest, r.code, r.raw)
		assert.Equal(t, "bad_request", r.body["error"])
		assert.Nil(t, readMarker(t, home), "nothing half-done")
		assert.Equal(t, "running", p.status()["state"])
	})
}

// TestE2EErrorStatuses produces every error status of the API on a real
// gateway and checks each is JSON with the documented code.
func TestE2EErrorStatuses(t *testing.T) {
	t.Parallel()
	home := newHome(t)
	p := startGateway(t, home, fakeProcRoot(t, "boot-b", 100), "--agent-work", "2s", "--retry-after", "7s")
	check := func(t *testing.T, r response, status int, code string) {
		t.Helper()
		require.Equalf(t, status, r.code, "body %s", r.raw)
		assert.Equal(t, "application/json", r.header.Get("Content-Type"))
		assert.Equal(t, code, r.body["error"])
		assert.NotEmpty(t, r.body["message"])
	}

	t.Run("400", func(t *testing.T) {
		for _, body := range []string{
			`{"action":"drain","extra":1}`,
			`{"suppress_notification":"false"}`,
			`{"action":"drain"} {"action":"cancel"}`,
			`[]`,
			`{"action":"begin"}`,
		} {
			check(t, p.call(http.MethodPost, "/api/gateway/drain", opsToken, body), http.StatusBadRequest, "bad_request")
		}
		check(t, p.call(http.MethodGet, "/api/gateway/status?wait=idle&timeout=soon", opsToken, ""), http.StatusBadRequest, "bad_request")
		assert.Nil(t, readMarker(t, home), "no 400 wrote a marker")
	})
	t.Run("401", func(t *testing.T) {
		for _, token := range []string{"", "wrong-token-0123456789abcdef"} {
			r := p.call(http.MethodGet, "/api/gateway/status", token, "")
			check(t, r, http.StatusUnauthorized, "unauthorized")
			assert.Contains(t, r.header.Get("WWW-Authenticate"), "Bearer")
			check(t, p.call(http.MethodPost, "/v1/sessions/a/messages", token, `{"text":"x"}`), http.StatusUnauthorized, "unauthorized")
		}
	})
	t.Run("NoTokenNeeded", func(t *testing.T) {
		for _, path := range []string{"/healthz", "/readyz", "/metrics"} {
			for _, method := range []string{http.MethodGet, http.MethodHead} {
				r := p.call(method, path, "", "")
				assert.Equalf(t, http.StatusOK, r.code, "%s %s", method, path)
			}
		}
		r := p.call(http.MethodGet, "/metrics", "", "")
		assert.Contains(t, r.raw, `quiesce_state{state="running"} 1`)
	})
	t.Run("404", func(t *testing.T) {
		check(t, p.call(http.MethodGet, "/api/gateway/nope", opsToken, ""), http.StatusNotFound, "not_found")
	})
	t.Run("405", func(t *testing.T) {
		r := p.call(http.MethodGet, "/api/gateway/drain", opsToken, "")
		check(t, r, http.StatusMethodNotAllowed, "method_not_allowed")
		assert.Equal(t, "POST", r.header.Get("Allow"))
		r = p.call(http.MethodPost, "/healthz", "", "")
		check(t, r, http.StatusMethodNotAllowed, "method_not_allowed")
		assert.Equal(t, "GET, HEAD", r.header.Get("Allow"))
	})
	t.Run("409SessionBusy", func(t *testing.T) {
		first := p.turnAsync("busy", "one")
		p.waitInFlight(1)
		check(t, p.turn("busy", "two"), http.StatusConflict, "session_busy")
		assert.Equal(t, http.StatusOK, await(t, first).code)
	})
	t.Run("409RequestMismatch", func(t *testing.T) {
		r := p.call(http.MethodPost, "/api/gateway/drain", opsToken, `{"request_id":"mine"}`)
		require.Equal(t, http.StatusOK, r.code, r.raw)
		check(t, p.call(http.MethodPost, "/api/gateway/drain", opsToken, `{"action":"cancel","request_id":"other"}`),
			http.StatusConflict, "conflict")
		assert.Equal(t, "mine", readMarker(t, home)["request_id"], "marker untouched")
		r = p.call(http.MethodPost, "/api/gateway/drain", opsToken, `{"action":"cancel","request_id":"mine"}`)
		require.Equal(t, http.StatusOK, r.code, r.raw)
		assert.Equal(t, true, r.body["was_draining"])
	})
	t.Run("413", func(t *testing.T) {
		body := `{"text":"` + strings.Repeat("x", 64<<10) + `"}`
		check(t, p.call(http.MethodPost, "/v1/sessions/a/messages", opsToken, body), http.StatusRequestEntityTooLarge, "too_large")
	})
	t.Run("503", func(t *testing.T) {
		require.Equal(t, http.StatusOK, p.call(http.MethodPost, "/api/gateway/drain", opsToken, "").code)
		r := p.turn("a", "refused")
		check(t, r, http.StatusServiceUnavailable, "draining")
		assert.Equal(t, "draining", r.body["state"])
		assert.Equal(t, "7", r.header.Get("Retry-After"))
		r = p.call(http.MethodGet, "/readyz", "", "")
		check(t, r, http.StatusServiceUnavailable, "not_ready")
		assert.Equal(t, "draining", r.body["state"])
		require.Equal(t, http.StatusOK, p.call(http.MethodPost, "/api/gateway/drain", opsToken, `{"action":"cancel"}`).code)
	})
}

// TestE2ETurnInFlightSurvivesDrain shows the drain contract: a turn in
// flight completes, a turn sent right after the drain's 200 is refused
// (503 + Retry-After, no waiting for a watcher tick: --watch-interval is
// an hour), and cancel re-opens the gate.
func TestE2ETurnInFlightSurvivesDrain(t *testing.T) {
	t.Parallel()
	p := startGateway(t, newHome(t), fakeProcRoot(t, "boot-c", 100), "--agent-work", "2s", "--watch-interval", "1h")
	inflight := p.turnAsync("alice", "long task")
	p.waitInFlight(1)

	r := p.call(http.MethodPost, "/api/gateway/drain", opsToken, "")
	require.Equal(t, http.StatusOK, r.code, r.raw)
	assert.Equal(t, float64(1), r.body["active_agents"])

	refused := p.turn("bob", "new task")
	require.Equal(t, http.StatusServiceUnavailable, refused.code, refused.raw)
	assert.Equal(t, "draining", refused.body["error"])
	assert.Equal(t, "draining", refused.body["state"])
	assert.Equal(t, "5", refused.header.Get("Retry-After"))

	done := await(t, inflight)
	require.Equal(t, http.StatusOK, done.code, done.raw)
	assert.Equal(t, "long task", done.body["reply"])
	assert.Equal(t, "draining", p.status()["state"], "still draining: the process stays up")

	r = p.call(http.MethodPost, "/api/gateway/drain", opsToken, `{"action":"cancel"}`)
	require.Equal(t, http.StatusOK, r.code, r.raw)
	assert.Equal(t, "running", r.body["state"])
	reopened := p.call(http.MethodPost, "/v1/sessions/bob/messages", opsToken, `{"text":"again"}`)
	assert.Equal(t, http.StatusOK, reopened.code, reopened.raw)
}

// TestE2ERestart restarts a drained gateway on the same home: with the
// same instance epoch it comes up draining and refuses its very first
// turn; with a new epoch (PID 1 restarted) the marker is stale and it
// comes up running. The watcher interval is an hour, so the startup
// reconcile alone decides.
func TestE2ERestart(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name       string
		newEpoch   bool
		wantStatus int
		wantState  string
		drainState string
	}{
		{"SameEpochComesUpDraining", false, http.StatusServiceUnavailable, "draining", "active"},
		{"NewEpochComesUpRunning", true, http.StatusOK, "running", "stale"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			home, proc := newHome(t), fakeProcRoot(t, "boot-d", 100)
			first := startGateway(t, home, proc, "--agent-work", "10ms", "--watch-interval", "1h")
			require.Equal(t, http.StatusOK, first.call(http.MethodPost, "/api/gateway/drain", opsToken, "").code)
			first.signal(syscall.SIGTERM)
			require.Equal(t, 0, first.wait())
			require.NotNil(t, readMarker(t, home), "the marker survives the restart")

			if tt.newEpoch {
				setStartTime(t, proc, 200)
			}
			second := startGateway(t, home, proc, "--agent-work", "10ms", "--watch-interval", "1h")
			r := second.turn("alice", "first turn after restart")
			require.Equalf(t, tt.wantStatus, r.code, "body %s", r.raw)
			st := second.status()
			assert.Equal(t, tt.wantState, st["state"])
			require.NotNil(t, st["drain"])
			assert.Equal(t, tt.drainState, st["drain"].(map[string]any)["status"])
		})
	}
}

// TestE2ESIGTERMGraceful: a turn in flight at SIGTERM completes with 200,
// new turns are refused while shutting down, the home broadcast is sent
// exactly once, nobody is pinged, and the exit code is 0.
func TestE2ESIGTERMGraceful(t *testing.T) {
	t.Parallel()
	home := newHome(t)
	p := startGateway(t, home, fakeProcRoot(t, "boot-e", 100), "--agent-work", "2500ms")
	inflight := p.turnAsync("alice", "finish me")
	p.waitInFlight(1)
	p.signal(syscall.SIGTERM)
	eventually(t, exitTimeout, "state shutting_down", func() bool { return p.status()["state"] == "shutting_down" })
	refused := p.turn("bob", "too late")
	assert.Equal(t, http.StatusServiceUnavailable, refused.code, refused.raw)
	assert.Equal(t, "draining", refused.body["error"])
	assert.Equal(t, "shutting_down", refused.body["state"])

	done := await(t, inflight)
	require.Equal(t, http.StatusOK, done.code, done.raw)
	assert.Equal(t, "finish me", done.body["reply"])
	require.Equal(t, 0, p.wait())
	assert.Len(t, outbox(t, home, notify.KindShutdownBroadcast), 1)
	assert.Empty(t, outbox(t, home, notify.KindSessionInterrupted))
}

// TestE2ESIGTERMDeadline: turns outlive --drain-timeout, so they are
// interrupted (503 "interrupted") and each cut-off session gets exactly
// one ping. A suppressing drain removes the broadcast, never the pings.
func TestE2ESIGTERMDeadline(t *testing.T) {
	t.Parallel()
	for _, suppress := range []bool{false, true} {
		name := map[bool]string{false: "Broadcast", true: "Suppressed"}[suppress]
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			home := newHome(t)
			p := startGateway(t, home, fakeProcRoot(t, "boot-f", 100), "--agent-work", "1m", "--drain-timeout", "300ms")
			a, b := p.turnAsync("alice", "long"), p.turnAsync("bob", "long")
			p.waitInFlight(2)
			if suppress {
				r := p.call(http.MethodPost, "/api/gateway/drain", opsToken, `{"suppress_notification":true}`)
				require.Equal(t, http.StatusOK, r.code, r.raw)
			}
			p.signal(syscall.SIGTERM)
			for _, ch := range []<-chan response{a, b} {
				r := await(t, ch)
				assert.Equal(t, http.StatusServiceUnavailable, r.code, r.raw)
				assert.Equal(t, "interrupted", r.body["error"])
			}
			require.Equal(t, 0, p.wait())
			pings := outbox(t, home, notify.KindSessionInterrupted)
			assert.ElementsMatch(t, []string{"alice", "bob"}, targets(pings), "one ping per cut-off session")
			wantBroadcasts := 1
			if suppress {
				wantBroadcasts = 0
			}
			assert.Len(t, outbox(t, home, notify.KindShutdownBroadcast), wantBroadcasts)
		})
	}
}

// TestE2ERepeatedSIGTERMChangesNothing: a supervisor's SIGTERM after a
// preStop or ExecStop request (or a second SIGTERM) must not cut a turn
// off (I3); only a SIGINT while shutting down (Ctrl-C twice), or local
// "quiesce shutdown --force" (SIGTERM, then SIGINT), forces.
func TestE2ERepeatedSIGTERMChangesNothing(t *testing.T) {
	t.Parallel()
	home := newHome(t)
	p := startGateway(t, home, fakeProcRoot(t, "boot-g", 100), "--agent-work", "1500ms", "--drain-timeout", "1m")
	inflight := p.turnAsync("alice", "long")
	p.waitInFlight(1)
	r := p.call(http.MethodPost, "/api/gateway/shutdown", opsToken, "")
	require.Equal(t, http.StatusAccepted, r.code, r.raw)
	p.signal(syscall.SIGTERM)
	p.signal(syscall.SIGTERM)
	r = await(t, inflight)
	assert.Equal(t, http.StatusOK, r.code, "the turn finished: %s", r.raw)
	assert.Equal(t, "long", r.body["reply"])
	require.Equal(t, 0, p.wait())
	assert.Empty(t, outbox(t, home, notify.KindSessionInterrupted), "nobody was cut off")
	assert.Len(t, outbox(t, home, notify.KindShutdownBroadcast), 1)
	assert.Contains(t, p.stderr.String(), "already_shutting_down\":true")
}

// TestE2EForcedShutdown: SIGTERM then SIGINT, or local shutdown --force,
// interrupts the turn at once and pings its session.
func TestE2EForcedShutdown(t *testing.T) {
	t.Parallel()
	for _, viaCLI := range []bool{false, true} {
		name := map[bool]string{false: "SIGTERMThenSIGINT", true: "LocalCLI"}[viaCLI]
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			home := newHome(t)
			p := startGateway(t, home, fakeProcRoot(t, "boot-g", 100), "--agent-work", "1m", "--drain-timeout", "1m")
			inflight := p.turnAsync("alice", "long")
			p.waitInFlight(1)
			if viaCLI {
				out, errOut, code := cli(t, nil, "shutdown", "--force", "--home", home)
				require.Equal(t, 0, code, "stdout %s stderr %s", out, errOut)
				assert.Contains(t, out, "SIGINT")
			} else {
				p.signal(syscall.SIGTERM)
				eventually(t, exitTimeout, "state shutting_down", func() bool { return p.status()["state"] == "shutting_down" })
				select {
				case r := <-inflight:
					require.Fail(t, fmt.Sprintf("turn ended before the SIGINT: %d %s", r.code, r.raw))
				default:
				}
				p.signal(syscall.SIGINT)
			}
			r := await(t, inflight)
			assert.Equal(t, http.StatusServiceUnavailable, r.code, r.raw)
			assert.Equal(t, "interrupted", r.body["error"])
			require.Equal(t, 0, p.wait())
			assert.Equal(t, []string{"alice"}, targets(outbox(t, home, notify.KindSessionInterrupted)))
			assert.Len(t, outbox(t, home, notify.KindShutdownBroadcast), 1)
		})
	}
}

// TestE2ESuppressedDrainNoBroadcast: drain with suppress_notification,
// then shut down with the local CLI (SIGTERM to the pid in the state
// file): no broadcast, nothing interrupted, exit 0.
func TestE2ESuppressedDrainNoBroadcast(t *testing.T) {
	t.Parallel()
	home := newHome(t)
	p := startGateway(t, home, fakeProcRoot(t, "boot-h", 100))
	r := p.call(http.MethodPost, "/api/gateway/drain", opsToken, `{"suppress_notification":true}`)
	require.Equal(t, http.StatusOK, r.code, r.raw)
	out, errOut, code := cli(t, nil, "shutdown", "--home", home)
	require.Equal(t, 0, code, "stdout %s stderr %s", out, errOut)
	assert.Contains(t, out, "SIGTERM")
	require.Equal(t, 0, p.wait())
	assert.Empty(t, outbox(t, home, notify.KindShutdownBroadcast))
	assert.Empty(t, outbox(t, home, notify.KindSessionInterrupted))
}

// TestE2ETokensRefused: the gateway refuses to start (exit 1, the file
// named) when the tokens file is too open, malformed or missing.
func TestE2ETokensRefused(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name, content string
		mode          os.FileMode
		want          string
	}{
		{"Mode0644", "ops " + opsToken + "\n", 0o644, "0644"},
		{"Malformed", "ops " + opsToken + "\nbroken\n", 0o600, "tokens:2:"},
		{"Missing", "", 0, "--dev"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			home := filepath.Join(t.TempDir(), "home")
			require.NoError(t, os.Mkdir(home, 0o700))
			path := filepath.Join(home, "tokens")
			if tt.mode != 0 {
				require.NoError(t, os.WriteFile(path, []byte(tt.content), tt.mode))
				require.NoError(t, os.Chmod(path, tt.mode))
			}
			p := startProcess(t, home, fakeProcRoot(t, "boot-i", 100))
			require.Equal(t, 78, p.wait(), "EX_CONFIG: a supervisor stops restarting")
			assert.Contains(t, p.stderr.String(), path)
			assert.Contains(t, p.stderr.String(), tt.want)
			_, err := os.Stat(filepath.Join(home, "gateway_state.json"))
			assert.True(t, os.IsNotExist(err), "refused before the gateway started")
		})
	}
}

// TestE2EDev: run --dev creates a 0600 tokens file and prints commands
// with a token that works.
func TestE2EDev(t *testing.T) {
	t.Parallel()
	home := filepath.Join(t.TempDir(), "fresh")
	p := startGateway(t, home, fakeProcRoot(t, "boot-j", 100), "--dev")
	fi, err := os.Stat(filepath.Join(home, "tokens"))
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
	fi, err = os.Stat(home)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o700), fi.Mode().Perm())

	eventually(t, exitTimeout, "dev help on stdout", func() bool { return strings.Contains(p.stdout.String(), "status --home") })
	out := p.stdout.String()
	i := strings.Index(out, "QUIESCE_TOKEN=")
	require.GreaterOrEqual(t, i, 0, "stdout: %s", out)
	token := strings.Fields(out[i+len("QUIESCE_TOKEN="):])[0]
	for _, want := range []string{"QUIESCE_URL=" + p.url, "/api/gateway/drain", "/v1/sessions/alice/messages",
		`{"action":"cancel"}`, "drain --wait", "cancel", "status", "shutdown", "status --home " + home} {
		assert.Contains(t, out, want)
	}
	r := p.call(http.MethodGet, "/api/gateway/status", token, "")
	assert.Equal(t, http.StatusOK, r.code, r.raw)
}

// TestE2ECLI drives a gateway with the CLI: drain, status, cancel on the
// local home and over HTTP, drain --wait (idle and timed out), diagram,
// and shutdown over HTTP.
func TestE2ECLI(t *testing.T) {
	t.Parallel()
	home, proc := newHome(t), fakeProcRoot(t, "boot-k", 100)
	p := startGateway(t, home, proc, "--agent-work", "2500ms")
	local := []string{"QUIESCE_HOME=" + home, "QUIESCE_PROC_ROOT=" + proc}
	remote := []string{"QUIESCE_URL=" + p.url, "QUIESCE_TOKEN=" + opsToken}
	runCode := func(t *testing.T, env []string, want int, args ...string) string {
		t.Helper()
		out, errOut, code := cli(t, env, args...)
		require.Equalf(t, want, code, "%v: stdout %s stderr %s", args, out, errOut)
		return out
	}
	run := func(t *testing.T, env []string, args ...string) string {
		t.Helper()
		return runCode(t, env, 0, args...)
	}

	t.Run("LocalDrainStatusCancel", func(t *testing.T) {
		out := run(t, local, "drain", "--request-id", "cli-1")
		assert.Contains(t, out, "cli-1")
		m := readMarker(t, home)
		require.NotNil(t, m)
		assert.Equal(t, "boot-k:100", m["epoch"], "same epoch as the gateway")
		// The gateway's watcher picks the marker up.
		eventually(t, exitTimeout, "gateway draining", func() bool { return p.status()["state"] == "draining" })
		eventually(t, exitTimeout, "local status draining", func() bool {
			out, _, code := cli(t, local, "status")
			return code == 3 && strings.Contains(out, "draining")
		})
		out = runCode(t, local, 3, "status") // exit 3: draining
		for _, want := range []string{"state", "turns in flight", "cli-1", "boot-k:100", "pid"} {
			assert.Contains(t, out, want)
		}
		out = run(t, local, "cancel")
		assert.Contains(t, out, "was draining: true")
		eventually(t, exitTimeout, "gateway running", func() bool { return p.status()["state"] == "running" })
	})
	t.Run("HTTPDrainStatusCancel", func(t *testing.T) {
		out := run(t, remote, "drain", "--suppress-notification")
		assert.Contains(t, out, "state draining")
		assert.Contains(t, out, "suppress_notification true")
		out = runCode(t, remote, 3, "status", "--json")
		assert.Contains(t, out, `"state": "draining"`)
		out = run(t, remote, "cancel")
		assert.Contains(t, out, "was draining: true")
		assert.Contains(t, out, "state running")
		_, errOut, code := cli(t, remote, "cancel", "--request-id", "nope")
		assert.Equal(t, 0, code, errOut) // no active drain: nothing to mismatch
	})
	t.Run("DrainWait", func(t *testing.T) {
		inflight := p.turnAsync("alice", "slow")
		p.waitInFlight(1)
		out := run(t, remote, "drain", "--wait", "--timeout", "30s")
		assert.Contains(t, out, "draining, 1 turn in flight")
		assert.Contains(t, out, "idle")
		assert.Equal(t, http.StatusOK, await(t, inflight).code)
		run(t, remote, "cancel")
	})
	t.Run("DrainWaitLocal", func(t *testing.T) {
		out := run(t, local, "drain", "--wait", "--timeout", "30s")
		assert.Contains(t, out, "idle")
		run(t, local, "cancel")
		eventually(t, exitTimeout, "gateway running", func() bool { return p.status()["state"] == "running" })
	})
	t.Run("DrainWaitTimeout", func(t *testing.T) {
		inflight := p.turnAsync("bob", "slow")
		p.waitInFlight(1)
		out, errOut, code := cli(t, remote, "drain", "--wait", "--timeout", "100ms")
		assert.Equal(t, 3, code, "stdout %s stderr %s", out, errOut)
		assert.Contains(t, errOut, "timed out")
		assert.Equal(t, http.StatusOK, await(t, inflight).code)
		run(t, remote, "cancel")
	})
	t.Run("Diagram", func(t *testing.T) {
		assert.Contains(t, run(t, nil, "diagram"), "stateDiagram-v2")
		assert.Contains(t, run(t, nil, "diagram", "--format", "dot"), "digraph")
		_, _, code := cli(t, nil, "diagram", "--format", "png")
		assert.Equal(t, 2, code)
	})
	t.Run("Usage", func(t *testing.T) {
		out := run(t, nil, "-h")
		assert.Contains(t, out, "Exit codes")
		_, _, code := cli(t, nil, "frobnicate")
		assert.Equal(t, 2, code)
		_, _, code = cli(t, nil, "drain", "--no-such-flag")
		assert.Equal(t, 2, code)
		_, errOut, code := cli(t, []string{"QUIESCE_HOME=" + t.TempDir()}, "status")
		assert.Equal(t, 1, code)
		assert.Contains(t, errOut, "no gateway has run")
	})
	t.Run("HTTPShutdown", func(t *testing.T) {
		out := run(t, remote, "shutdown")
		assert.Contains(t, out, "started")
		require.Equal(t, 0, p.wait())
		out = runCode(t, local, 5, "status") // exit 5: not running
		assert.Contains(t, out, "stopped")
	})
}

// TestE2EShutdownEndpointForce: POST /api/gateway/shutdown {"force":true}
// interrupts the turn in flight at once; the server answers during the
// sequence and the process exits 0.
func TestE2EShutdownEndpointForce(t *testing.T) {
	t.Parallel()
	home := newHome(t)
	p := startGateway(t, home, fakeProcRoot(t, "boot-l", 100), "--agent-work", "1m", "--drain-timeout", "1m")
	inflight := p.turnAsync("alice", "long")
	p.waitInFlight(1)
	r := p.call(http.MethodPost, "/api/gateway/shutdown", opsToken, `{"force":true}`)
	require.Equal(t, http.StatusAccepted, r.code, r.raw)
	assert.Equal(t, true, r.body["ok"])
	assert.NotEmpty(t, r.body["shutdown_id"])
	got := await(t, inflight)
	assert.Equal(t, "interrupted", got.body["error"], got.raw)
	require.Equal(t, 0, p.wait())
	assert.Equal(t, []string{"alice"}, targets(outbox(t, home, notify.KindSessionInterrupted)))
}

// TestE2EAddrInUse: a second gateway on a taken address exits 78 before
// its gateway starts, so it sends no shutdown broadcast.
func TestE2EAddrInUse(t *testing.T) {
	t.Parallel()
	first := startGateway(t, newHome(t), fakeProcRoot(t, "boot-m", 100))
	home := newHome(t)
	second := startProcess(t, home, fakeProcRoot(t, "boot-m", 100), "--addr", strings.TrimPrefix(first.url, "http://"))
	require.Equal(t, 78, second.wait())
	assert.Contains(t, second.stderr.String(), "address already in use")
	assert.Empty(t, outbox(t, home, notify.KindShutdownBroadcast), "the gateway never started, so never shut down")
	assert.Equal(t, "running", first.status()["state"])
}

// TestE2EWatchPollOnly: --watch-poll-only watches the marker by polling
// every --watch-interval alone, without fsnotify: a marker written by a
// local drain between two polls (an hour apart here) is not picked up at
// once, and the drain says so; without the flag fsnotify picks it up.
func TestE2EWatchPollOnly(t *testing.T) {
	t.Parallel()
	for _, pollOnly := range []bool{true, false} {
		t.Run(map[bool]string{true: "PollOnly", false: "Notify"}[pollOnly], func(t *testing.T) {
			t.Parallel()
			home, proc := newHome(t), fakeProcRoot(t, "boot-pollonly", 100)
			args := []string{"--watch-interval", "1h"}
			if pollOnly {
				args = append(args, "--watch-poll-only")
			}
			p := startGateway(t, home, proc, args...)
			out := mustCLI(t, []string{"QUIESCE_PROC_ROOT=" + proc}, "drain", "--home", home)
			if pollOnly {
				assert.Contains(t, out, "the gateway has not picked it up yet (state running)")
				assert.Equal(t, "running", p.status()["state"])
			} else {
				assert.Contains(t, out, "state draining")
				assert.Equal(t, "draining", p.status()["state"])
			}
			p.signal(syscall.SIGTERM)
			require.Equal(t, 0, p.wait())
		})
	}
}
