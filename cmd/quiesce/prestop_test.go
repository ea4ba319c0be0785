package main_test

import (
	"path/filepath"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestDrainWaitTimeoutInPreStop runs the Kubernetes preStop command
// (deploy/k8s: drain --url <loopback> --tokens-file <the gateway's tokens
// file> --announce D --wait --timeout T --exit-zero-on-timeout) against a
// gateway with a turn that outlasts the wait: the gateway's own tokens
// file authenticates it, the announce fails /readyz while a turn is still
// accepted (one an endpoint that has not caught up sends), then the gate closes (marker written, by the file's first
// principal), and with --exit-zero-on-timeout the timeout is reported but
// exits 0, so the hook does not fail (SIGTERM follows anyway); without it,
// exit 3. The flag without --wait is a usage error.
func TestDrainWaitTimeoutInPreStop(t *testing.T) {
	t.Parallel()
	home := newHome(t)
	p := startGateway(t, home, fakeProcRoot(t, "boot-prestop", 100), "--agent-work", "6s")
	turn := p.turnAsync("alice", "slow")
	p.waitInFlight(1)
	tokens := filepath.Join(home, "tokens")

	preStop := cliAsync(t, nil, "drain", "--url", p.url, "--tokens-file", tokens, "--announce", "2s",
		"--wait", "--timeout", "300ms", "--exit-zero-on-timeout")
	waitAnnouncing(t, p)
	late := p.turnAsync("bob", "sent by an endpoint that has not caught up")
	p.waitInFlight(2) // the gate stays open during the announce
	res := awaitCLI(t, preStop)
	assert.Equal(t, 0, res.code, res.stderr)
	assert.Contains(t, res.stderr, "timed out after 300ms")
	assert.Contains(t, res.stderr, "2 turns still in flight")
	assert.Contains(t, res.stderr, "--exit-zero-on-timeout")
	m := readMarker(t, home)
	require.NotNil(t, m, "the gate closed after the announce: the marker is written")
	assert.Equal(t, "ops", m["principal"], "the first token of the gateway's tokens file")

	_, stderr, code := cli(t, nil, "drain", "--url", p.url, "--tokens-file", tokens, "--wait", "--timeout", "300ms")
	assert.Equal(t, 3, code, "without the flag a timeout exits 3: %s", stderr)

	_, stderr, code = cli(t, nil, "drain", "--url", p.url, "--tokens-file", tokens, "--exit-zero-on-timeout")
	assert.Equal(t, 2, code, stderr)
	assert.Contains(t, stderr, "--exit-zero-on-timeout needs --wait")

	p.signal(syscall.SIGTERM)
	p.signal(syscall.SIGINT) // force: the turn is cut off now
	await(t, turn)
	await(t, late)
	assert.Equal(t, 0, p.wait())
}
