package main_test

import (
	"net/http"
	"regexp"
	"strconv"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var (
	buildInfoRe   = regexp.MustCompile(`(?m)^quiesce_build_info\{goversion="go[^"]+",revision="[^"]+",version="[^"]+"\} 1$`)
	drainExpiryRe = regexp.MustCompile(`(?m)^quiesce_drain_expires_in_seconds ([0-9.e+]+)$`)
)

// TestMetricsDrainExpiry scrapes the real binary's /metrics (no token):
// quiesce_build_info is 1; quiesce_drain_expires_in_seconds is absent
// while running, tells the time left of a drain request (at most
// --drain-max-age), and is gone again once the drain is cancelled.
func TestMetricsDrainExpiry(t *testing.T) {
	t.Parallel()
	p := startGateway(t, newHome(t), fakeProcRoot(t, "boot-metrics", 100), "--drain-max-age", "10m")
	scrape := func() string {
		t.Helper()
		r := p.call(http.MethodGet, "/metrics", "", "")
		require.Equal(t, http.StatusOK, r.code)
		return r.raw
	}
	body := scrape()
	assert.Regexp(t, buildInfoRe, body)
	assert.NotRegexp(t, drainExpiryRe, body, "no drain request: absent")

	r := p.call(http.MethodPost, "/api/gateway/drain", opsToken, "")
	require.Equal(t, http.StatusOK, r.code, r.raw)
	m := drainExpiryRe.FindStringSubmatch(scrape())
	require.NotNil(t, m, "draining: quiesce_drain_expires_in_seconds is exported")
	left, err := strconv.ParseFloat(m[1], 64)
	require.NoError(t, err)
	assert.Greater(t, left, 0.0)
	assert.LessOrEqual(t, left, 600.0, "within --drain-max-age")

	r = p.call(http.MethodPost, "/api/gateway/drain", opsToken, `{"action":"cancel"}`)
	require.Equal(t, http.StatusOK, r.code, r.raw)
	assert.NotRegexp(t, drainExpiryRe, scrape(), "cancelled: absent again")
}
