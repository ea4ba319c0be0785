package main_test

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/quiesce-dev/quiesce/internal/fakeproc"
	"github.com/quiesce-dev/quiesce/notify"
)

// The restart matrix's instance: the fake proc root every row starts from.
const (
	restartBoot  = "boot-restart"
	restartStart = 100
	restartEpoch = "boot-restart:100"
)

// TestE2ERestartMatrix: the state a gateway starts in after a restart,
// per the epoch rules (docs/MARKER.md), decided by the
// startup reconcile alone (--watch-interval is an hour). Each row leaves a
// marker in the home (a real gateway drained and was killed, or a file
// written as another tool would), maybe changes the instance (a new boot
// id or PID 1 start time is a machine or container restart; the same
// values, a supervisor respawn), starts the gateway and checks its state,
// the marker's status, /readyz (503 draining, 200 running), the first
// turn (refused or run), and, through a shutdown, whether the home
// broadcast was suppressed: only a fresh marker of this instance with
// suppress_notification true suppresses it (I5: a stale, expired,
// legacy or contentless marker never does, nor does any marker when the
// epoch is unavailable).
func TestE2ERestartMatrix(t *testing.T) {
	t.Parallel()
	now := time.Now().UTC()
	for _, tt := range []struct {
		name string
		// setup leaves the home and the proc root as the restart finds them.
		setup func(t *testing.T, home, proc string)
		// noProc starts the gateway on an empty proc root: no epoch.
		noProc        bool
		args          []string
		wantState     string // "draining" or "running"
		wantDrain     string // drain.status in the API status
		wantBroadcast bool   // the shutdown's home broadcast is in the outbox
		check         func(t *testing.T, drain map[string]any)
	}{
		{
			name: "SameEpochRespawnDrains",
			setup: func(t *testing.T, home, proc string) {
				drainThenKill(t, home, proc, `{"action":"drain"}`)
				require.NoError(t, fakeproc.Write(proc, restartBoot, restartStart)) // a supervisor respawn
			},
			wantState: "draining", wantDrain: "active", wantBroadcast: true,
		},
		{
			name: "NewBootIDIsStale",
			setup: func(t *testing.T, home, proc string) {
				drainThenKill(t, home, proc, `{"action":"drain","suppress_notification":true}`)
				require.NoError(t, fakeproc.Write(proc, "boot-rebooted", restartStart)) // the machine rebooted
			},
			wantState: "running", wantDrain: "stale", wantBroadcast: true,
		},
		{
			name: "NewPID1StartIsStale",
			setup: func(t *testing.T, home, proc string) {
				drainThenKill(t, home, proc, `{"action":"drain","suppress_notification":true}`)
				require.NoError(t, fakeproc.SetStartTime(proc, restartStart+100)) // the container restarted
			},
			wantState: "running", wantDrain: "stale", wantBroadcast: true,
		},
		{
			name: "LegacyWithoutEpochDrains",
			setup: func(t *testing.T, home, _ string) {
				writeRestartMarker(t, home, map[string]any{"action": "drain", "requested_at": now.Format(time.RFC3339),
					"principal": "legacy-tool", "suppress_notification": true})
			},
			wantState: "draining", wantDrain: "active", wantBroadcast: true,
		},
		{
			name: "CorruptDrainsContentless",
			setup: func(t *testing.T, home, _ string) {
				require.NoError(t, os.WriteFile(filepath.Join(home, ".drain_request.json"), []byte(`{"action":"drain","suppress_notification":tr`), 0o600))
			},
			wantState: "draining", wantDrain: "contentless", wantBroadcast: true,
		},
		{
			// requested_at in the future (clock skew): aged from the file's
			// modification time, which is now, so it drains.
			name: "FutureDatedDrains",
			setup: func(t *testing.T, home, _ string) {
				writeRestartMarker(t, home, map[string]any{"action": "drain", "requested_at": now.Add(24 * time.Hour).Format(time.RFC3339),
					"principal": "ops", "epoch": restartEpoch, "suppress_notification": false})
			},
			wantState: "draining", wantDrain: "active", wantBroadcast: true,
			check: func(t *testing.T, drain map[string]any) {
				assert.Nil(t, drain["expires_at"], "aged from the mtime: no expiry from requested_at")
			},
		},
		{
			// The same marker, but the file is older than the max age: the
			// future date cannot keep it draining past the max age.
			name: "FutureDatedBoundedByMtime",
			setup: func(t *testing.T, home, _ string) {
				writeRestartMarker(t, home, map[string]any{"action": "drain", "requested_at": now.Add(24 * time.Hour).Format(time.RFC3339),
					"principal": "ops", "epoch": restartEpoch, "suppress_notification": false})
				old := now.Add(-2 * time.Hour)
				require.NoError(t, os.Chtimes(filepath.Join(home, ".drain_request.json"), old, old))
			},
			wantState: "running", wantDrain: "expired", wantBroadcast: true,
		},
		{
			// Python's isoformat(timespec="minutes"): no seconds. The file
			// is new, so only a parsed requested_at can make it expired.
			name: "ExpiredPythonMinutesForm",
			setup: func(t *testing.T, home, _ string) {
				writeRestartMarker(t, home, map[string]any{"action": "drain", "requested_at": now.Add(-2 * time.Hour).Format("2006-01-02T15:04+00:00"),
					"principal": "ops", "epoch": restartEpoch, "suppress_notification": true})
			},
			args:      []string{"--drain-max-age", "1m"},
			wantState: "running", wantDrain: "expired", wantBroadcast: true,
			check: func(t *testing.T, drain map[string]any) {
				at, err := time.Parse(time.RFC3339Nano, drain["requested_at"].(string))
				require.NoError(t, err, drain["requested_at"])
				assert.True(t, at.Equal(now.Add(-2*time.Hour).Truncate(time.Minute)), "requested_at %v", at)
			},
		},
		{
			// No /proc: the epoch is unavailable, so a marker drains by its
			// presence only and never suppresses, whatever it says.
			name: "NoProcDrainsByPresenceNeverSuppresses",
			setup: func(t *testing.T, home, _ string) {
				writeRestartMarker(t, home, map[string]any{"action": "drain", "requested_at": now.Format(time.RFC3339),
					"principal": "ops", "epoch": restartEpoch, "suppress_notification": true})
			},
			noProc:    true,
			wantState: "draining", wantDrain: "active", wantBroadcast: true,
		},
		{
			name: "SuppressOfOurEpoch",
			setup: func(t *testing.T, home, _ string) {
				writeRestartMarker(t, home, map[string]any{"action": "drain", "requested_at": now.Format(time.RFC3339),
					"principal": "ops", "epoch": restartEpoch, "suppress_notification": true})
			},
			wantState: "draining", wantDrain: "active", wantBroadcast: false,
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			home, proc := newHome(t), fakeProcRoot(t, restartBoot, restartStart)
			tt.setup(t, home, proc)
			require.NotNil(t, markerBytes(t, home), "the row leaves a marker")
			if tt.noProc {
				proc = t.TempDir()
			}
			p := startGateway(t, home, proc, append([]string{"--watch-interval", "1h", "--agent-work", "10ms"}, tt.args...)...)

			st := p.status()
			assert.Equal(t, tt.wantState, st["state"])
			drain, ok := st["drain"].(map[string]any)
			require.Truef(t, ok, "status drain: %v", st)
			assert.Equal(t, tt.wantDrain, drain["status"])
			if tt.noProc {
				assert.NotEmpty(t, st["epoch_error"], "epoch unavailable")
			} else {
				assert.Empty(t, st["epoch_error"])
			}
			if tt.check != nil {
				tt.check(t, drain)
			}
			ready := p.call(http.MethodGet, "/readyz", "", "")
			turn := p.turn("alice", "first turn after the restart")
			if tt.wantState == "draining" {
				assert.Equal(t, http.StatusServiceUnavailable, ready.code, ready.raw)
				assert.Equal(t, http.StatusServiceUnavailable, turn.code, turn.raw)
				assert.Equal(t, "draining", turn.body["error"], turn.raw)
			} else {
				assert.Equal(t, http.StatusOK, ready.code, ready.raw)
				assert.Equal(t, http.StatusOK, turn.code, turn.raw)
			}

			p.signal(syscall.SIGTERM)
			require.Equal(t, 0, p.wait())
			want := 0
			if tt.wantBroadcast {
				want = 1
			}
			assert.Len(t, outbox(t, home, notify.KindShutdownBroadcast), want, "home broadcasts of the shutdown")
			assert.Empty(t, outbox(t, home, notify.KindSessionInterrupted))
		})
	}
}

// drainThenKill runs a gateway on home and proc, drains it through the API
// with body (the marker it writes carries proc's epoch), and kills it with
// SIGKILL: no shutdown ran, so nothing was broadcast.
func drainThenKill(t *testing.T, home, proc, body string) {
	t.Helper()
	p := startGateway(t, home, proc, "--watch-interval", "1h")
	r := p.call(http.MethodPost, "/api/gateway/drain", opsToken, body)
	require.Equal(t, http.StatusOK, r.code, r.raw)
	require.Equal(t, "draining", r.body["state"], r.raw)
	require.Equal(t, restartEpoch, readMarker(t, home)["epoch"])
	require.NoError(t, p.cmd.Process.Kill())
	p.wait()
	require.Empty(t, outbox(t, home, notify.KindShutdownBroadcast))
}

// writeRestartMarker writes the marker m as an outside tool would.
func writeRestartMarker(t *testing.T, home string, m map[string]any) {
	t.Helper()
	data, err := json.Marshal(m)
	require.NoError(t, err)
	require.NoError(t, writeMarkerFile(home, data))
}

// markerBytes returns the marker file's content, nil when there is none.
func markerBytes(t *testing.T, home string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(home, ".drain_request.json"))
	if os.IsNotExist(err) {
		return nil
	}
	require.NoError(t, err)
	return data
}
