package server

import (
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/quiesce-dev/quiesce/api"
	"github.com/quiesce-dev/quiesce/fsm"
)

// lintAllowed lists the promlint problems accepted, by metric and text,
// each with the reason. It is empty: every series passes as it is.
var lintAllowed = map[[2]string]string{}

// TestMetricsLint runs promlint over every family /metrics serves, with
// every series present (a drain active, each counter counted once), and
// fails on any problem not in lintAllowed.
func TestMetricsLint(t *testing.T) {
	m := NewMetrics()
	m.observe(func() api.Status {
		return api.Status{State: fsm.Draining, ActiveAgents: 1, StateSince: time.Now(),
			Agent: &api.AgentStatus{Kind: "echo", Failures: 1},
			Drain: &api.DrainInfo{Status: "active", ExpiresAt: time.Now().Add(time.Hour)}}
	})
	m.TurnEnded("ok")
	m.TurnDuration("ok", time.Millisecond)
	m.MarkerRead("active")
	m.Notified("webhook", "delivered")
	m.EventRejected()
	m.countRequest("/readyz", 200)
	m.DrainReaction(time.Millisecond)
	m.TokensReloaded(time.Now(), nil)

	mfs, err := m.reg.Gather()
	require.NoError(t, err)
	names := map[string]bool{}
	for _, mf := range mfs {
		names[mf.GetName()] = true
	}
	for _, want := range []string{"quiesce_turn_duration_seconds", "quiesce_state_since_seconds", "quiesce_agent_failures_total",
		"quiesce_drain_expires_in_seconds", "quiesce_drain_persisted", "quiesce_notifications_total", "quiesce_http_requests_total", "go_goroutines"} {
		require.True(t, names[want], "%s is linted", want)
	}
	problems, err := promlint.NewWithMetricFamilies(mfs).Lint()
	require.NoError(t, err)
	for _, p := range problems {
		if reason, ok := lintAllowed[[2]string{p.Metric, p.Text}]; ok {
			t.Logf("allowed: %s: %s (%s)", p.Metric, p.Text, reason)
			continue
		}
		assert.Fail(t, fmt.Sprintf("promlint: %s: %s", p.Metric, p.Text))
	}
}
