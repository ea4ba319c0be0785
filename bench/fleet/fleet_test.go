package main

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const checkedInConfig = "../../deploy/haproxy/haproxy.cfg"

// TestFleetConfigRewritesOnlyAddresses: the drill runs the checked-in
// configuration with only its binds, stats socket and server lines
// changed, and refuses a file whose lines it cannot find rather than run
// something else.
func TestFleetConfigRewritesOnlyAddresses(t *testing.T) {
	data, err := os.ReadFile(checkedInConfig)
	require.NoError(t, err)
	in := string(data)
	out, err := fleetConfig(in, "127.0.0.1:1000", "127.0.0.1:1001", "/tmp/x.sock", []string{"127.0.0.1:2001", "127.0.0.1:2002"})
	require.NoError(t, err)
	assert.Contains(t, out, "    bind 127.0.0.1:1000\n")
	assert.Contains(t, out, "    bind 127.0.0.1:1001\n")
	assert.Contains(t, out, "    stats socket /tmp/x.sock mode 600 level admin\n")
	assert.Contains(t, out, "    server gw1 127.0.0.1:2001\n    server gw2 127.0.0.1:2002\n")
	assert.NotContains(t, out, "server gw3")
	assert.NotContains(t, out, ":8480")
	assert.NotContains(t, out, "stats socket /run/haproxy")
	// Every other line is as checked in.
	changed := func(l string) bool {
		return strings.Contains(l, "bind ") || strings.Contains(l, "stats socket") || strings.HasPrefix(strings.TrimSpace(l), "server gw")
	}
	var keptIn, keptOut []string
	for l := range strings.Lines(in) {
		if !changed(l) {
			keptIn = append(keptIn, l)
		}
	}
	for l := range strings.Lines(out) {
		if !changed(l) {
			keptOut = append(keptOut, l)
		}
	}
	assert.Equal(t, keptIn, keptOut)

	for _, c := range []struct{ name, from, to string }{
		{"no turns bind", "bind 127.0.0.1:8480", "bind 127.0.0.1:9999"},
		{"no events bind", "bind 127.0.0.1:8481", "bind *:8481"},
		{"no stats socket", "stats socket /run/haproxy/admin.sock", "stats socket /var/run/x.sock"},
		{"no server lines", "server gw", "server web"},
		{"server lines apart", "    server gw2 127.0.0.1:8472\n", "    server gw2 127.0.0.1:8472\n    timeout server 1m\n"},
	} {
		t.Run(c.name, func(t *testing.T) {
			broken := strings.ReplaceAll(in, c.from, c.to)
			require.NotEqual(t, in, broken)
			_, err := fleetConfig(broken, "a", "b", "c", []string{"d"})
			assert.Error(t, err)
		})
	}
}

// TestFleetDrillShort is make fleet's drill at small scale (1 rolling
// restart of 3 gateways behind the checked-in HAProxy configuration, 12
// clients): with drain --announce, clients see no refusal and no failure,
// no acknowledged event is lost and no turn starts twice; without it (the
// baseline) clients do see refusals (the window the announce covers),
// and nothing fails, is lost or starts twice either.
func TestFleetDrillShort(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: the fleet drill builds quiesce and runs HAProxy and 3 gateways")
	}
	hap, err := lookHAProxy("")
	if err != nil {
		if os.Getenv("QUIESCE_NO_HAPROXY") == "1" {
			t.Skip("haproxy is not installed and QUIESCE_NO_HAPROXY=1: skipping the fleet drill")
		}
		require.NoError(t, err, "the fleet drill needs HAProxy; or skip it with QUIESCE_NO_HAPROXY=1")
	}
	opt := shortOptions()
	opt.haproxy, opt.config = hap, checkedInConfig
	ctx, cancel := context.WithTimeout(context.Background(), opt.timeout+time.Minute)
	defer cancel()
	results, version, err := run(ctx, opt)
	require.NoError(t, err)
	t.Logf("make fleet -short:\n%s", markdown(opt, results, version))
	require.Len(t, results, 2)
	for _, r := range results {
		assert.Empty(t, r.problems(), "%s run", r.mode)
	}
}

// TestDrillGoal: the announce run must show no refusal and no failure of
// any kind; the baseline must show refusals, may show connection errors
// (a request meeting the listener as the gateway closes it, which the
// announce avoids), and nothing else failed, lost or started twice.
func TestDrillGoal(t *testing.T) {
	for _, tc := range []struct {
		name    string
		r       result
		problem string // "" when the run meets its goal
	}{
		{"announce clean", result{mode: modeAnnounce}, ""},
		{"announce refusal", result{mode: modeAnnounce, refused: map[string]int{"draining": 1}}, "1 turns refused"},
		{"announce connection error", result{mode: modeAnnounce, failed: map[string]int{connectionError: 1}}, "1 turns failed"},
		{"baseline refusals", result{mode: modeBaseline, refused: map[string]int{"draining": 3}}, ""},
		{"baseline without refusal", result{mode: modeBaseline}, "the baseline saw no refusal"},
		{"baseline connection error", result{mode: modeBaseline, refused: map[string]int{"draining": 3}, failed: map[string]int{connectionError: 1}}, ""},
		{"baseline 502", result{mode: modeBaseline, refused: map[string]int{"draining": 3}, failed: map[string]int{"502 bad_gateway": 1, connectionError: 1}}, "1 turns failed map[502 bad_gateway:1]"},
		{"baseline lost event", result{mode: modeBaseline, refused: map[string]int{"draining": 3}, eventsLost: 1}, "1 events acknowledged but never run"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.r.sent, tc.r.answered = 10, 10
			p := strings.Join(tc.r.problems(), "; ")
			if tc.problem == "" {
				assert.Empty(t, p)
				return
			}
			assert.Contains(t, p, tc.problem)
		})
	}
}
