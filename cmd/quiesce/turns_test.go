package main_test

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestE2ETurns runs "quiesce turns" against the real binary: with a turn
// parked in the agent, --json lists it (session, turn id, age, not
// streaming, a user turn) and the text form names it; without --url it
// says it needs a live gateway's URL (exit 2). The history and the status's
// version and agent come from the same gateway.
func TestE2ETurns(t *testing.T) {
	t.Parallel()
	home := newHome(t)
	p := startGateway(t, home, fakeProcRoot(t, "boot-turns", 100), "--agent-work", "1m", "--drain-timeout", "1m")
	env := []string{"QUIESCE_URL=" + p.url, "QUIESCE_TOKEN=" + opsToken}

	out := mustCLI(t, env, "turns", "--json")
	assert.JSONEq(t, `{"turns":[]}`, out, "no turn in flight yet")
	assert.Equal(t, "no turns in flight\n", mustCLI(t, env, "turns"))

	parked := p.turnAsync("parked-1", "hold on")
	p.waitInFlight(1)
	doc := jsonDocs(t, mustCLI(t, env, "turns", "--json"))[0]
	turns, ok := doc["turns"].([]any)
	require.True(t, ok, "turns is a list: %v", doc)
	require.Len(t, turns, 1)
	turn := turns[0].(map[string]any)
	assert.Equal(t, "parked-1", turn["session"])
	assert.Len(t, turn["turn_id"], 16)
	assert.GreaterOrEqual(t, turn["age_seconds"], 0.0)
	assert.NotEmpty(t, turn["started_at"])
	assert.Equal(t, false, turn["streaming"])
	assert.Equal(t, false, turn["system"])
	text := mustCLI(t, env, "turns")
	assert.Contains(t, text, "SESSION")
	assert.Contains(t, text, "parked-1")
	assert.Contains(t, text, turn["turn_id"])

	statusText, _, code := cli(t, env, "status")
	require.Equal(t, 0, code, statusText)
	assert.Regexp(t, `(?m)^agent +echo, 0 failed turns since start$`, statusText)
	assert.Regexp(t, `(?m)^version +\S+`, statusText)

	st := p.status()
	assert.NotEmpty(t, st["version"], "status names the version")
	assert.Equal(t, map[string]any{"kind": "echo", "failures": float64(0)}, st["agent"])
	h := p.call(http.MethodGet, "/api/gateway/history", opsToken, "")
	require.Equal(t, http.StatusOK, h.code, h.raw)
	events, _ := h.body["events"].([]any)
	require.NotEmpty(t, events)
	assert.Equal(t, "start", events[0].(map[string]any)["kind"])

	stdout, stderr, code := cli(t, []string{"QUIESCE_HOME=" + home}, "turns")
	assert.Equal(t, 2, code, "stdout %s stderr %s", stdout, stderr)
	assert.Contains(t, stderr, "needs a live gateway's URL: set --url (QUIESCE_URL)")

	// Let the parked turn go: a forced shutdown interrupts it.
	r := p.call(http.MethodPost, "/api/gateway/shutdown", opsToken, `{"force":true}`)
	require.Equal(t, http.StatusAccepted, r.code, r.raw)
	assert.Equal(t, http.StatusServiceUnavailable, await(t, parked).code)
}
