package main_test

import (
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
)

// TestDrainWaitTimeoutInPreStop runs the Kubernetes preStop command
// (deploy/k8s) against a gateway with a turn that outlasts the wait:
// with --exit-zero-on-timeout the timeout is reported but exits 0, so the
// hook does not fail (SIGTERM follows anyway); without it, exit 3. The
// flag without --wait is a usage error.
func TestDrainWaitTimeoutInPreStop(t *testing.T) {
	t.Parallel()
	home := newHome(t)
	p := startGateway(t, home, fakeProcRoot(t, "boot-prestop", 100), "--agent-work", "4s")
	turn := p.turnAsync("alice", "slow")
	p.waitInFlight(1)

	_, stderr, code := cli(t, nil, "drain", "--wait", "--timeout", "300ms", "--exit-zero-on-timeout", "--home", home)
	assert.Equal(t, 0, code, stderr)
	assert.Contains(t, stderr, "timed out after 300ms")
	assert.Contains(t, stderr, "1 turn still in flight")
	assert.Contains(t, stderr, "--exit-zero-on-timeout")

	_, stderr, code = cli(t, nil, "drain", "--wait", "--timeout", "300ms", "--home", home)
	assert.Equal(t, 3, code, "without the flag a timeout exits 3: %s", stderr)

	_, stderr, code = cli(t, nil, "drain", "--exit-zero-on-timeout", "--home", home)
	assert.Equal(t, 2, code, stderr)
	assert.Contains(t, stderr, "--exit-zero-on-timeout needs --wait")

	p.signal(syscall.SIGTERM)
	p.signal(syscall.SIGINT) // force: the turn is cut off now
	await(t, turn)
	assert.Equal(t, 0, p.wait())
}
