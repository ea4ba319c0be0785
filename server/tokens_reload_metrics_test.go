package server

import (
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

// gaugeValue returns the value of the unlabelled gauge name.
func gaugeValue(t *testing.T, m *Metrics, name string) float64 {
	t.Helper()
	mf, ok := gather(t, m)[name]
	if !assert.True(t, ok, "%s is exported", name) || !assert.Len(t, mf.GetMetric(), 1) {
		return -1
	}
	return mf.GetMetric()[0].GetGauge().GetValue()
}

// TestMetricsTokensReload shows the tokens file's reload outcome on
// /metrics: both result series from the start at 0; the load at start
// sets the success gauge and time without counting a reload; a failed
// reload counts an error, drops the success gauge to 0 (the next restart
// would exit 78) and keeps the time of the last good load; a good reload
// counts ok and moves the time on.
func TestMetricsTokensReload(t *testing.T) {
	m := NewMetrics()
	for _, r := range TokensReloadResults {
		assert.Equal(t, 0.0, counterValue(t, m, "quiesce_tokens_reload_total", map[string]string{"result": r}))
	}
	assert.Equal(t, 0.0, gaugeValue(t, m, "quiesce_tokens_last_reload_success_timestamp_seconds"), "no load yet")

	start := time.Date(2026, 12, 7, 4, 0, 0, 500_000_000, time.UTC)
	m.TokensLoaded(start)
	assert.Equal(t, 1.0, gaugeValue(t, m, "quiesce_tokens_last_reload_successful"))
	assert.Equal(t, float64(start.Unix())+0.5, gaugeValue(t, m, "quiesce_tokens_last_reload_success_timestamp_seconds"))
	assert.Equal(t, 0.0, counterValue(t, m, "quiesce_tokens_reload_total", map[string]string{"result": "ok"}), "the load at start is not a reload")

	m.TokensReloaded(start.Add(time.Minute), errors.New("tokens file has mode 0644"))
	assert.Equal(t, 1.0, counterValue(t, m, "quiesce_tokens_reload_total", map[string]string{"result": "error"}))
	assert.Equal(t, 0.0, gaugeValue(t, m, "quiesce_tokens_last_reload_successful"))
	assert.Equal(t, float64(start.Unix())+0.5, gaugeValue(t, m, "quiesce_tokens_last_reload_success_timestamp_seconds"), "still the last good load")

	later := start.Add(2 * time.Minute)
	m.TokensReloaded(later, nil)
	assert.Equal(t, 1.0, counterValue(t, m, "quiesce_tokens_reload_total", map[string]string{"result": "ok"}))
	assert.Equal(t, 1.0, counterValue(t, m, "quiesce_tokens_reload_total", map[string]string{"result": "error"}))
	assert.Equal(t, 1.0, gaugeValue(t, m, "quiesce_tokens_last_reload_successful"))
	assert.Equal(t, float64(later.Unix())+0.5, gaugeValue(t, m, "quiesce_tokens_last_reload_success_timestamp_seconds"))
}
