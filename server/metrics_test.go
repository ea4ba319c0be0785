package server

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/quiesce-dev/quiesce/api"
	"github.com/quiesce-dev/quiesce/fsm"
)

// gather scrapes m's registry into a map from family name to family.
func gather(t *testing.T, m *Metrics) map[string]*dto.MetricFamily {
	t.Helper()
	mfs, err := m.reg.Gather()
	require.NoError(t, err)
	out := map[string]*dto.MetricFamily{}
	for _, mf := range mfs {
		out[mf.GetName()] = mf
	}
	return out
}

// labels returns a metric's labels as a map.
func labels(m *dto.Metric) map[string]string {
	out := map[string]string{}
	for _, lp := range m.GetLabel() {
		out[lp.GetName()] = lp.GetValue()
	}
	return out
}

// counterValue returns the value of the counter child of family name
// whose labels are want, failing when there is none.
func counterValue(t *testing.T, m *Metrics, name string, want map[string]string) float64 {
	t.Helper()
	mf, ok := gather(t, m)[name]
	require.True(t, ok, "%s is exported", name)
	for _, metric := range mf.GetMetric() {
		if assert.ObjectsAreEqual(want, labels(metric)) {
			return metric.GetCounter().GetValue()
		}
	}
	require.Fail(t, fmt.Sprintf("%s has no series %v", name, want))
	return 0
}

// TestMetricsDrainExpiresIn shows that quiesce_drain_expires_in_seconds
// tells how long the active drain request has left at scrape time, and
// is absent whenever no drain request with a known expiry is active.
func TestMetricsDrainExpiresIn(t *testing.T) {
	now := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	tests := []struct {
		name    string
		drain   *api.DrainInfo
		present bool
		want    float64
	}{
		{name: "NoMarker"},
		{name: "Active", drain: &api.DrainInfo{Status: "active", ExpiresAt: now.Add(90 * time.Second)}, present: true, want: 90},
		{name: "ActivePastExpiry", drain: &api.DrainInfo{Status: "active", ExpiresAt: now.Add(-time.Second)}, present: true, want: 0},
		{name: "ActiveAgedFromMtime", drain: &api.DrainInfo{Status: "active"}},
		{name: "Stale", drain: &api.DrainInfo{Status: "stale", ExpiresAt: now.Add(time.Hour)}},
		{name: "Expired", drain: &api.DrainInfo{Status: "expired", ExpiresAt: now.Add(-time.Hour)}},
		{name: "Contentless", drain: &api.DrainInfo{Status: "contentless"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := NewMetrics()
			m.now = func() time.Time { return now }
			m.observe(func() api.Status { return api.Status{State: fsm.Draining, Drain: tt.drain} })
			mf, ok := gather(t, m)["quiesce_drain_expires_in_seconds"]
			require.Equal(t, tt.present, ok, "series present")
			if tt.present {
				require.Len(t, mf.GetMetric(), 1)
				assert.Equal(t, dto.MetricType_GAUGE, mf.GetType())
				assert.InDelta(t, tt.want, mf.GetMetric()[0].GetGauge().GetValue(), 1e-9)
			}
		})
	}
}

// TestMetricsStateFromStatus shows that the scrape reads state, turns in
// flight and spool depth from the gateway's status.
func TestMetricsStateFromStatus(t *testing.T) {
	m := NewMetrics()
	m.observe(func() api.Status {
		return api.Status{State: fsm.ShuttingDown, ActiveAgents: 3, SpooledEvents: 2, WebhookPending: 7}
	})
	fams := gather(t, m)
	states := map[string]float64{}
	for _, metric := range fams["quiesce_state"].GetMetric() {
		states[labels(metric)["state"]] = metric.GetGauge().GetValue()
	}
	assert.Equal(t, map[string]float64{"running": 0, "draining": 0, "shutting_down": 1, "stopped": 0}, states)
	assert.Equal(t, 3.0, fams["quiesce_turns_in_flight"].GetMetric()[0].GetGauge().GetValue())
	assert.Equal(t, 2.0, fams["quiesce_spooled_events"].GetMetric()[0].GetGauge().GetValue())
	assert.Equal(t, 7.0, fams["quiesce_webhook_pending"].GetMetric()[0].GetGauge().GetValue())
}

// TestMetricsStateSinceAndAgentFailures shows quiesce_state_since_seconds
// (the unix time the state began) and quiesce_agent_failures_total (the
// agent's failures from the status), read at scrape time.
func TestMetricsStateSinceAndAgentFailures(t *testing.T) {
	since := time.Date(2026, 12, 7, 3, 0, 0, 500_000_000, time.UTC)
	m := NewMetrics()
	m.observe(func() api.Status {
		return api.Status{State: fsm.Draining, StateSince: since, Agent: &api.AgentStatus{Kind: "http", Failures: 9}}
	})
	fams := gather(t, m)
	require.Contains(t, fams, "quiesce_state_since_seconds")
	assert.Equal(t, float64(since.Unix())+0.5, fams["quiesce_state_since_seconds"].GetMetric()[0].GetGauge().GetValue())
	require.Contains(t, fams, "quiesce_agent_failures_total")
	assert.Equal(t, 9.0, fams["quiesce_agent_failures_total"].GetMetric()[0].GetCounter().GetValue())
}

// TestMetricsTurnDuration shows quiesce_turn_duration_seconds: one
// histogram per result, every result of DurationResults present from the
// start.
func TestMetricsTurnDuration(t *testing.T) {
	m := NewMetrics()
	m.TurnDuration("ok", 30*time.Millisecond)
	m.TurnDuration("ok", 2*time.Second)
	m.TurnDuration("interrupted", time.Minute)
	m.TurnDuration("novel", time.Second) // not in DurationResults: still observed
	got := map[string]*dto.Histogram{}
	for _, metric := range gather(t, m)["quiesce_turn_duration_seconds"].GetMetric() {
		got[labels(metric)["result"]] = metric.GetHistogram()
	}
	for _, r := range DurationResults {
		require.Containsf(t, got, r, "result %s present", r)
	}
	assert.Equal(t, uint64(2), got["ok"].GetSampleCount())
	assert.InDelta(t, 2.03, got["ok"].GetSampleSum(), 1e-9)
	assert.Equal(t, uint64(0), got["error"].GetSampleCount())
	assert.Equal(t, uint64(1), got["interrupted"].GetSampleCount())
	assert.Equal(t, uint64(1), got["novel"].GetSampleCount())
}

// TestMetricsBuildInfo shows quiesce_build_info is 1 and labelled with
// what the build info knows, with "(devel)" and "unknown" for the rest.
func TestMetricsBuildInfo(t *testing.T) {
	tests := []struct {
		name string
		bi   *debug.BuildInfo
		want map[string]string
	}{
		{name: "NoBuildInfo", want: map[string]string{"version": "(devel)", "revision": "unknown", "goversion": runtime.Version()}},
		{name: "LocalBuild", bi: &debug.BuildInfo{GoVersion: "go1.26.0", Main: debug.Module{Version: "(devel)"}},
			want: map[string]string{"version": "(devel)", "revision": "unknown", "goversion": "go1.26.0"}},
		{name: "Release", bi: &debug.BuildInfo{GoVersion: "go1.26.1", Main: debug.Module{Version: "v1.2.3"},
			Settings: []debug.BuildSetting{{Key: "vcs", Value: "git"}, {Key: "vcs.revision", Value: "0123abc"}}},
			want: map[string]string{"version": "v1.2.3", "revision": "0123abc", "goversion": "go1.26.1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reg := prometheus.NewRegistry()
			reg.MustRegister(newBuildInfo(func() (*debug.BuildInfo, bool) { return tt.bi, tt.bi != nil }))
			mfs, err := reg.Gather()
			require.NoError(t, err)
			require.Len(t, mfs, 1)
			require.Equal(t, "quiesce_build_info", mfs[0].GetName())
			require.Len(t, mfs[0].GetMetric(), 1)
			metric := mfs[0].GetMetric()[0]
			assert.Equal(t, tt.want, labels(metric))
			assert.Equal(t, 1.0, metric.GetGauge().GetValue())
		})
	}
	// And the real one is registered.
	fams := gather(t, NewMetrics())
	require.Contains(t, fams, "quiesce_build_info")
	assert.Equal(t, runtime.Version(), labels(fams["quiesce_build_info"].GetMetric()[0])["goversion"])
}

// TestMetricsSeriesPresentFromStart shows every documented family is
// exported by a fresh gateway (counters with their fixed label values at
// 0), plus the go_* and process_* collectors.
func TestMetricsSeriesPresentFromStart(t *testing.T) {
	m := NewMetrics()
	m.observe(func() api.Status { return api.Status{State: fsm.Running} })
	fams := gather(t, m)
	for _, name := range []string{
		"quiesce_build_info", "quiesce_state", "quiesce_ready", "quiesce_turns_in_flight", "quiesce_turns_total",
		"quiesce_drain_reaction_seconds", "quiesce_events_rejected_total", "quiesce_spooled_events",
		"quiesce_events_retried_total", "quiesce_webhook_pending",
		"quiesce_marker_reads_total", "go_goroutines", "process_start_time_seconds",
		"quiesce_turn_duration_seconds", "quiesce_agent_failures_total",
	} {
		assert.Contains(t, fams, name)
	}
	for _, r := range TurnResults {
		assert.Equal(t, 0.0, counterValue(t, m, "quiesce_turns_total", map[string]string{"result": r}))
	}
	for _, o := range MarkerOutcomes {
		assert.Equal(t, 0.0, counterValue(t, m, "quiesce_marker_reads_total", map[string]string{"outcome": o}))
	}
}

// TestMetricsCounting shows each counting method lands on its series.
func TestMetricsCounting(t *testing.T) {
	m := NewMetrics()
	m.TurnEnded("ok")
	m.TurnEnded("ok")
	m.TurnEnded("refused")
	m.TurnEnded("novel") // not in TurnResults: still counted
	m.MarkerRead("stale")
	m.Notified("webhook", "delivered")
	m.Notified("webhook", "retried")
	m.Notified("webhook", "delivered")
	m.EventRejected()
	m.EventRetried()
	m.EventRetried()
	m.Notified("webhook", "dropped")
	m.countRequest("/readyz", 503)
	m.countRequest("/readyz", 503)
	m.countRequest("/readyz", 200)
	m.DrainReaction(20 * time.Millisecond)

	for _, c := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"quiesce_turns_total", map[string]string{"result": "ok"}, 2},
		{"quiesce_turns_total", map[string]string{"result": "refused"}, 1},
		{"quiesce_turns_total", map[string]string{"result": "novel"}, 1},
		{"quiesce_turns_total", map[string]string{"result": "busy"}, 0},
		{"quiesce_marker_reads_total", map[string]string{"outcome": "stale"}, 1},
		{"quiesce_notifications_total", map[string]string{"sink": "webhook", "result": "delivered"}, 2},
		{"quiesce_notifications_total", map[string]string{"sink": "webhook", "result": "retried"}, 1},
		{"quiesce_events_rejected_total", map[string]string{}, 1},
		{"quiesce_events_retried_total", map[string]string{}, 2},
		{"quiesce_notifications_total", map[string]string{"sink": "webhook", "result": "dropped"}, 1},
		{"quiesce_http_requests_total", map[string]string{"route": "/readyz", "code": "503"}, 2},
		{"quiesce_http_requests_total", map[string]string{"route": "/readyz", "code": "200"}, 1},
	} {
		assert.Equal(t, c.want, counterValue(t, m, c.name, c.labels), "%s%v", c.name, c.labels)
	}
	h := gather(t, m)["quiesce_drain_reaction_seconds"].GetMetric()[0].GetHistogram()
	assert.Equal(t, uint64(1), h.GetSampleCount())
}

// TestMetricsHotPathAllocatesNothing shows that counting a turn's end, and
// an HTTP request once its route and code have been seen, allocates
// nothing (an allocation count, not a duration).
func TestMetricsHotPathAllocatesNothing(t *testing.T) {
	m := NewMetrics()
	for _, r := range TurnResults {
		t.Run("TurnEnded/"+r, func(t *testing.T) {
			assert.Zero(t, testing.AllocsPerRun(100, func() { m.TurnEnded(r) }))
		})
	}
	m.countRequest("/v1/sessions/{id}/messages", 200)
	t.Run("countRequest", func(t *testing.T) {
		assert.Zero(t, testing.AllocsPerRun(100, func() { m.countRequest("/v1/sessions/{id}/messages", 200) }))
	})
	for _, r := range DurationResults {
		t.Run("TurnDuration/"+r, func(t *testing.T) {
			assert.Zero(t, testing.AllocsPerRun(100, func() { m.TurnDuration(r, time.Millisecond) }))
		})
	}
	m.MarkerRead("absent")
	t.Run("MarkerRead", func(t *testing.T) {
		assert.Zero(t, testing.AllocsPerRun(100, func() { m.MarkerRead("absent") }))
	})
}

// TestMetricsConcurrentCounting counts new and known label combinations
// from many goroutines (under -race: no data race) and loses no count.
func TestMetricsConcurrentCounting(t *testing.T) {
	m := NewMetrics()
	const workers, each = 8, 200
	var wg sync.WaitGroup // the counting goroutines
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				m.TurnEnded(TurnResults[i%len(TurnResults)])
				m.countRequest(fmt.Sprintf("/route/%d", i%7), 200+w%3)
			}
		})
	}
	wg.Wait()
	var turns, requests float64
	fams := gather(t, m)
	for _, metric := range fams["quiesce_turns_total"].GetMetric() {
		turns += metric.GetCounter().GetValue()
	}
	for _, metric := range fams["quiesce_http_requests_total"].GetMetric() {
		requests += metric.GetCounter().GetValue()
	}
	assert.Equal(t, float64(workers*each), turns)
	assert.Equal(t, float64(workers*each), requests)
	assert.Len(t, fams["quiesce_http_requests_total"].GetMetric(), 7*3)
}

// TestMetricsDrainPersisted shows that quiesce_drain_persisted is 1 for an
// active drain in the marker, 0 for one held in memory because the marker
// could not be written, and absent without an active drain.
func TestMetricsDrainPersisted(t *testing.T) {
	tests := []struct {
		name    string
		drain   *api.DrainInfo
		present bool
		want    float64
	}{
		{name: "NoDrain"},
		{name: "Persisted", drain: &api.DrainInfo{Status: "active", Persisted: true}, present: true, want: 1},
		{name: "InMemoryOnly", drain: &api.DrainInfo{Status: "active", Persisted: false}, present: true, want: 0},
		{name: "Stale", drain: &api.DrainInfo{Status: "stale", Persisted: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := NewMetrics()
			m.observe(func() api.Status { return api.Status{State: fsm.Draining, Drain: tt.drain} })
			mf, ok := gather(t, m)["quiesce_drain_persisted"]
			require.Equal(t, tt.present, ok, "series present")
			if tt.present {
				require.Len(t, mf.GetMetric(), 1)
				assert.Equal(t, tt.want, mf.GetMetric()[0].GetGauge().GetValue())
			}
		})
	}
}

// TestMetricsHistogramBuckets shows the buckets METRICS.md documents:
// quiesce_turn_duration_seconds 5 ms · 4ᵏ up to 5.5 min, and
// quiesce_drain_reaction_seconds 1 ms · 4ᵏ up to 65 s; an observation
// lands in the first bucket at or above it.
func TestMetricsHistogramBuckets(t *testing.T) {
	m := NewMetrics()
	m.TurnDuration("ok", 30*time.Millisecond)
	m.DrainReaction(3 * time.Millisecond)
	fams := gather(t, m)
	bounds := func(h *dto.Histogram) (les []float64, counts []uint64) {
		for _, b := range h.GetBucket() {
			les = append(les, b.GetUpperBound())
			counts = append(counts, b.GetCumulativeCount())
		}
		return les, counts
	}
	var turn *dto.Histogram
	for _, metric := range fams["quiesce_turn_duration_seconds"].GetMetric() {
		if labels(metric)["result"] == "ok" {
			turn = metric.GetHistogram()
		}
	}
	require.NotNil(t, turn)
	les, counts := bounds(turn)
	assert.InDeltaSlice(t, []float64{0.005, 0.02, 0.08, 0.32, 1.28, 5.12, 20.48, 81.92, 327.68}, les, 1e-9, "turn duration buckets")
	assert.Equal(t, []uint64{0, 0, 1, 1, 1, 1, 1, 1, 1}, counts, "30 ms lands in le=0.08")

	les, counts = bounds(fams["quiesce_drain_reaction_seconds"].GetMetric()[0].GetHistogram())
	assert.InDeltaSlice(t, []float64{0.001, 0.004, 0.016, 0.064, 0.256, 1.024, 4.096, 16.384, 65.536}, les, 1e-9, "drain reaction buckets")
	assert.Equal(t, []uint64{0, 1, 1, 1, 1, 1, 1, 1, 1}, counts, "3 ms lands in le=0.004")
}
