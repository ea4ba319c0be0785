package server_test

import (
	"bufio"
	"context"
	"errors"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/quiesce-dev/quiesce/agent"
	"github.com/quiesce-dev/quiesce/fsm"
	"github.com/quiesce-dev/quiesce/gateway"
	"github.com/quiesce-dev/quiesce/marker"
	"github.com/quiesce-dev/quiesce/server"
)

// scrape reads /metrics from h as a map from series, written as the text
// format prints it (name{labels}), to value.
func scrape(t *testing.T, h http.Handler) map[string]float64 {
	t.Helper()
	rec := do(t, h, http.MethodGet, "/metrics", "", "")
	require.Equal(t, http.StatusOK, rec.Code)
	out := map[string]float64{}
	sc := bufio.NewScanner(rec.Body)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		require.Positive(t, i, "a sample line: %q", line)
		v, err := strconv.ParseFloat(line[i+1:], 64)
		require.NoError(t, err, line)
		out[line[:i]] = v
	}
	require.NoError(t, sc.Err())
	return out
}

// TestMetricsTurnResultsFromARealGateway drives a real gateway through
// every way a turn ends and reads /metrics after each:
// quiesce_turns_total counts each under its own result (an internal
// event's system turn too),
// quiesce_turn_duration_seconds observes only the turns that ran (ok,
// error, interrupted; never refused or busy),
// quiesce_agent_failures_total counts only the agent's own failures (not
// a client that went away, not a forced shutdown's interrupt), and
// quiesce_turns_in_flight and quiesce_state follow the turns and the
// state.
func TestMetricsTurnResultsFromARealGateway(t *testing.T) {
	ag := agent.Func(func(ctx context.Context, turn agent.Turn) (string, error) {
		switch turn.Text {
		case "fail":
			return "", errors.New("upstream answered 502")
		case "block":
			<-ctx.Done()
			return "", ctx.Err()
		}
		return "hi " + turn.Text, nil
	})
	h, gw := realServerWith(t, gateway.Config{Home: t.TempDir(), Agent: ag, DrainTimeout: 50 * time.Millisecond, NotifyTimeout: time.Second})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	turnsTotal := func(r string) string { return `quiesce_turns_total{result="` + r + `"}` }
	observed := func(r string) string { return `quiesce_turn_duration_seconds_count{result="` + r + `"}` }
	requireCounts := func(step string, want map[string]float64, failures float64) {
		t.Helper()
		got := scrape(t, h)
		for _, r := range server.TurnResults {
			assert.Equalf(t, want[r], got[turnsTotal(r)], "%s: quiesce_turns_total{result=%q}", step, r)
		}
		for _, r := range server.DurationResults {
			assert.Equalf(t, want[r], got[observed(r)], "%s: turns observed with result %q", step, r)
		}
		for _, r := range []string{"refused", "busy"} {
			assert.NotContainsf(t, got, observed(r), "%s: a %s turn never ran and is not observed", step, r)
		}
		var sum float64
		for series, v := range got {
			if strings.HasPrefix(series, "quiesce_turn_duration_seconds_count") {
				sum += v
			}
		}
		assert.Equalf(t, want["ok"]+want["error"]+want["interrupted"], sum, "%s: every observation is an accepted turn", step)
		assert.Equalf(t, failures, got["quiesce_agent_failures_total"], "%s: quiesce_agent_failures_total", step)
	}
	stream := func(ctx context.Context, session, text string, started chan<- struct{}) error {
		_, err := gw.Stream(ctx, gateway.TurnRequest{Session: session, Text: text, Started: func() {
			if started != nil {
				close(started)
			}
		}})
		return err
	}

	got := scrape(t, h)
	require.Contains(t, got, "quiesce_state_since_seconds", "from the first scrape: the gateway's start")
	assert.Equal(t, float64(gw.Status().StateSince.UnixNano())/1e9, got["quiesce_state_since_seconds"])
	assert.Equal(t, 1.0, got["quiesce_ready"])

	require.NoError(t, stream(ctx, "alice", "hello", nil))
	requireCounts("a reply", map[string]float64{"ok": 1}, 0)

	_, err := gw.Event(ctx, "sys", "cron tick")
	require.NoError(t, err)
	require.Eventually(t, func() bool { return scrape(t, h)[turnsTotal("ok")] == 2 }, 10*time.Second, 5*time.Millisecond,
		"an internal event's system turn is counted")
	requireCounts("an internal event", map[string]float64{"ok": 2}, 0)

	require.ErrorIs(t, stream(ctx, "bob", "fail", nil), gateway.ErrAgent)
	requireCounts("the agent failed", map[string]float64{"ok": 2, "error": 1}, 1)

	clientCtx, clientGone := context.WithCancel(ctx)
	started, gone := make(chan struct{}), make(chan error, 1)
	go func() { gone <- stream(clientCtx, "carol", "block", started) }()
	<-started
	clientGone()
	require.Error(t, <-gone)
	requireCounts("the client went away", map[string]float64{"ok": 2, "error": 2}, 1)

	started, blocked := make(chan struct{}), make(chan error, 1)
	go func() { blocked <- stream(ctx, "dave", "block", started) }()
	<-started
	require.ErrorIs(t, stream(ctx, "dave", "hello", nil), gateway.ErrSessionBusy)
	requireCounts("the session was busy", map[string]float64{"ok": 2, "error": 2, "busy": 1}, 1)
	assert.Equal(t, 1.0, scrape(t, h)["quiesce_turns_in_flight"], "the blocked turn is in flight")

	before := scrape(t, h)["quiesce_state_since_seconds"]
	_, err = gw.BeginDrain(ctx, gateway.DrainRequest{Principal: "ops"})
	require.NoError(t, err)
	require.ErrorIs(t, stream(ctx, "erin", "hello", nil), gateway.ErrRefused)
	requireCounts("draining", map[string]float64{"ok": 2, "error": 2, "busy": 1, "refused": 1}, 1)
	got = scrape(t, h)
	assert.Equal(t, 1.0, got[`quiesce_state{state="draining"}`])
	assert.Equal(t, 0.0, got[`quiesce_state{state="running"}`])
	assert.Equal(t, 0.0, got["quiesce_ready"])
	assert.Equal(t, 1.0, got["quiesce_turns_in_flight"], "a refused turn never rises it")
	assert.GreaterOrEqual(t, got["quiesce_state_since_seconds"], before, "the drain began the state")
	assert.Equal(t, float64(gw.Status().StateSince.UnixNano())/1e9, got["quiesce_state_since_seconds"])

	_, err = gw.Shutdown(ctx, true)
	require.NoError(t, err)
	require.ErrorIs(t, <-blocked, gateway.ErrInterrupted)
	requireCounts("a forced shutdown", map[string]float64{"ok": 2, "error": 2, "busy": 1, "refused": 1, "interrupted": 1}, 1)
	got = scrape(t, h)
	assert.Equal(t, 1.0, got[`quiesce_state{state="stopped"}`])
	assert.Equal(t, 0.0, got["quiesce_turns_in_flight"])
}

// TestMetricsDrainExpiryFromARealGateway shows, on a real gateway,
// quiesce_drain_expires_in_seconds: the time left of a drain request
// (requested_at plus --drain-max-age), raised again by a refresh, absent
// once cancelled; and absent, with no drain reaction observed, for a
// marker whose age is measured from the file's modification time
// (future-dated, legacy without requested_at, corrupt), a stale one and an expired one. Each read is
// counted under its outcome in quiesce_marker_reads_total.
func TestMetricsDrainExpiryFromARealGateway(t *testing.T) {
	const maxAge = 10 * time.Minute
	var clock atomic.Pointer[time.Time] // the gateway's clock, moved by the test
	setClock := func(at time.Time) { clock.Store(&at) }
	setClock(time.Now().Add(-5 * time.Minute))
	home := t.TempDir()
	h, gw := realServerWith(t, gateway.Config{Home: home, MaxAge: maxAge, Now: func() time.Time { return *clock.Load() }})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	const expiry, reactions = "quiesce_drain_expires_in_seconds", "quiesce_drain_reaction_seconds_count"

	_, err := gw.BeginDrain(ctx, gateway.DrainRequest{Principal: "ops", RequestID: "maint-1"})
	require.NoError(t, err)
	got := scrape(t, h)
	require.Contains(t, got, expiry, "an active drain request")
	assert.InDelta(t, 5*60, got[expiry], 60, "requested 5 minutes ago with a 10-minute max age")
	assert.Equal(t, 1.0, got[reactions], "the drain closed the gate")
	assert.Equal(t, 1.0, got["quiesce_drain_persisted"])

	setClock(time.Now())
	res, err := gw.BeginDrain(ctx, gateway.DrainRequest{Principal: "ops", RequestID: "maint-1"})
	require.NoError(t, err)
	require.True(t, res.Refreshed)
	got = scrape(t, h)
	require.Contains(t, got, expiry)
	assert.InDelta(t, 10*60, got[expiry], 60, "the refresh starts the max age again")
	assert.Equal(t, 1.0, got[reactions], "a refresh changes no state: no reaction observed")

	_, err = gw.CancelDrain(ctx, "")
	require.NoError(t, err)
	got = scrape(t, h)
	assert.NotContains(t, got, expiry, "cancelled")
	assert.NotContains(t, got, "quiesce_drain_persisted", "cancelled")
	require.Equal(t, fsm.Running, gw.State())

	now := time.Now()
	write := func(r marker.Request) func(t *testing.T) {
		return func(t *testing.T) {
			_, err := marker.Write(home, r)
			require.NoError(t, err)
		}
	}
	for _, tc := range []struct {
		name    string
		write   func(t *testing.T)
		outcome string
		state   fsm.State
	}{
		{"FutureDated", write(marker.Request{Action: marker.ActionDrain, RequestID: "f", RequestedAt: now.Add(time.Hour), Epoch: gw.Epoch()}),
			"active", fsm.Draining},
		{"LegacyWithoutRequestedAt", write(marker.Request{Action: marker.ActionDrain, RequestID: "l", Epoch: gw.Epoch()}),
			"active", fsm.Draining},
		{"Contentless", func(t *testing.T) { require.NoError(t, os.WriteFile(marker.Path(home), []byte("{not json"), 0o600)) },
			"contentless", fsm.Draining},
		{"Stale", write(marker.Request{Action: marker.ActionDrain, RequestID: "s", RequestedAt: now, Epoch: "another-boot:1"}),
			"stale", fsm.Running},
		{"Expired", write(marker.Request{Action: marker.ActionDrain, RequestID: "e", RequestedAt: now.Add(-2 * maxAge), Epoch: gw.Epoch()}),
			"expired", fsm.Running},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Cleanup(func() {
				require.NoError(t, os.Remove(marker.Path(home)))
				gw.Reconcile(ctx)
				require.Equal(t, fsm.Running, gw.State())
			})
			reads := `quiesce_marker_reads_total{outcome="` + tc.outcome + `"}`
			before := scrape(t, h)
			tc.write(t)
			gw.Reconcile(ctx)
			require.Equal(t, tc.state, gw.State())
			got := scrape(t, h)
			assert.NotContains(t, got, expiry, "no known expiry")
			assert.Equal(t, before[reactions], got[reactions], "no requested_at to measure a reaction from")
			assert.Equal(t, before[reads]+1, got[reads], "the read is counted as %s", tc.outcome)
		})
	}
}

// TestMetricsReadyInAnnounceWindow shows, on a real gateway, quiesce_ready
// 0 during a drain --announce window while quiesce_state still says
// running (the gate is open), no expiry yet (no marker is written before
// the gate closes), and 1 again once a cancel ends the window.
func TestMetricsReadyInAnnounceWindow(t *testing.T) {
	h, gw := realServerWith(t, gateway.Config{Home: t.TempDir()})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	assert.Equal(t, 1.0, scrape(t, h)["quiesce_ready"])

	done := make(chan error, 1)
	go func() {
		_, err := gw.BeginDrain(ctx, gateway.DrainRequest{Principal: "ops", Announce: time.Minute})
		done <- err
	}()
	require.Eventually(t, func() bool {
		d := gw.Status().Drain
		return d != nil && d.Status == gateway.DrainStatusAnnouncing
	}, 10*time.Second, time.Millisecond, "the announce window opens")
	got := scrape(t, h)
	assert.Equal(t, 0.0, got["quiesce_ready"], "announcing: not ready")
	assert.Equal(t, 1.0, got[`quiesce_state{state="running"}`], "the gate is still open")
	assert.NotContains(t, got, "quiesce_drain_expires_in_seconds", "no drain request in effect yet")

	_, err := gw.CancelDrain(ctx, "")
	require.NoError(t, err)
	require.ErrorIs(t, <-done, gateway.ErrDrainCancelled)
	assert.Equal(t, 1.0, scrape(t, h)["quiesce_ready"], "the cancel ended the window")
}
