package main_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// cliOut is what one run of the binary as a client printed and returned.
type cliOut struct {
	stdout, stderr string
	code           int
}

// cliAsync runs the binary with args in the background.
func cliAsync(t *testing.T, env []string, args ...string) <-chan cliOut {
	ch := make(chan cliOut, 1)
	go func() {
		out, errOut, code := cli(t, env, args...)
		ch <- cliOut{out, errOut, code}
	}()
	return ch
}

// awaitCLI returns the result on ch, failing after a bound.
func awaitCLI(t *testing.T, ch <-chan cliOut) cliOut {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(exitTimeout + 5*time.Second):
		require.Fail(t, "the command did not return within the bound")
		return cliOut{}
	}
}

// answered reports whether the command on ch has returned (and puts the
// result back).
func answered(ch chan cliOut) bool {
	select {
	case r := <-ch:
		ch <- r
		return true
	default:
		return false
	}
}

// waitAnnouncing waits until the gateway announces a drain: /readyz 503,
// status ready false with announce_until, and returns that status.
func waitAnnouncing(t *testing.T, p *gatewayProc) map[string]any {
	t.Helper()
	eventually(t, 10*time.Second, "/readyz to fail (the announce window)", func() bool {
		return p.call(http.MethodGet, "/readyz", "", "").code == http.StatusServiceUnavailable
	})
	st := p.status()
	assert.Equal(t, "running", st["state"])
	assert.Equal(t, false, st["ready"])
	require.NotNil(t, st["drain"], "status shows the announced drain")
	d := st["drain"].(map[string]any)
	assert.Equal(t, "announcing", d["status"])
	assert.NotEmpty(t, d["announce_until"], "status says when the gate closes")
	return st
}

// TestE2EDrainAnnounce: drain --announce over HTTP on the real binary.
// During the window /readyz is 503 while a turn is still accepted (200);
// the command returns only once the gate has closed, and from then on a
// turn gets 503 draining. With --wait it then waits for idle.
func TestE2EDrainAnnounce(t *testing.T) {
	t.Parallel()
	home, proc := newHome(t), fakeProcRoot(t, "boot-announce", 100)
	p := startGateway(t, home, proc, "--agent-work", "20ms")
	env := []string{"QUIESCE_URL=" + p.url, "QUIESCE_TOKEN=" + opsToken}
	require.Equal(t, http.StatusOK, p.call(http.MethodGet, "/readyz", "", "").code)
	require.Equal(t, true, p.status()["ready"])

	drain := make(chan cliOut, 1)
	go func() { drain <- awaitCLI(t, cliAsync(t, env, "drain", "--announce", "3s", "--wait", "--json")) }()
	waitAnnouncing(t, p)
	require.False(t, answered(drain), "the drain answered before its window ended")
	assert.Contains(t, mustCLI(t, env, "status"), "the gate closes at", "status prints the window")
	local := []string{"QUIESCE_HOME=" + home, "QUIESCE_PROC_ROOT=" + proc}
	eventually(t, 2*time.Second, "the local status to show the window (from the state file)", func() bool {
		st := jsonDocs(t, mustCLI(t, local, "status", "--json"))[0]
		d, _ := st["drain"].(map[string]any)
		return st["ready"] == false && d != nil && d["status"] == "announcing" && d["announce_until"] != nil
	})
	assert.Nil(t, readMarker(t, home), "no marker during the window")
	r := p.turn("alice", "in the window")
	assert.Equal(t, http.StatusOK, r.code, "the gate stays open during the window: %s", r.raw)

	res := awaitCLI(t, drain)
	require.Equal(t, 0, res.code, "stdout %s stderr %s", res.stdout, res.stderr)
	docs := jsonDocs(t, res.stdout)
	require.Len(t, docs, 2, "the drain's answer, then the status once idle")
	assert.Equal(t, "draining", docs[0]["state"], "the gate closed before the drain answered")
	assert.Equal(t, true, docs[1]["idle"])
	assert.NotNil(t, readMarker(t, home))

	r = p.turn("bob", "after the answer")
	assert.Equal(t, http.StatusServiceUnavailable, r.code, r.raw)
	assert.Equal(t, "draining", r.body["error"])
	st := p.status()
	assert.Equal(t, false, st["ready"])
	assert.Equal(t, "active", st["drain"].(map[string]any)["status"])
	assert.NotContains(t, st["drain"], "announce_until", "the window is over")
	eventually(t, 2*time.Second, "the local status to show the window over", func() bool {
		st := jsonDocs(t, mustCLIExit(t, local, 3, "status", "--json"))[0]
		d, _ := st["drain"].(map[string]any)
		return d != nil && d["status"] == "active" && d["announce_until"] == nil
	})
}

// mustCLIExit runs the binary and requires exit code want.
func mustCLIExit(t *testing.T, env []string, want int, args ...string) string {
	t.Helper()
	out, errOut, code := cli(t, env, args...)
	require.Equalf(t, want, code, "%v: stdout %s stderr %s", args, out, errOut)
	return out
}

// TestE2EDrainAnnounceCancel: a cancel during the window ends it: the
// waiting drain fails saying it was cancelled, nothing was written, and
// the gateway is ready again.
func TestE2EDrainAnnounceCancel(t *testing.T) {
	t.Parallel()
	home, proc := newHome(t), fakeProcRoot(t, "boot-announce-cancel", 100)
	p := startGateway(t, home, proc)
	env := []string{"QUIESCE_URL=" + p.url, "QUIESCE_TOKEN=" + opsToken}

	drain := cliAsync(t, env, "drain", "--announce", "1m")
	waitAnnouncing(t, p)
	out := mustCLI(t, env, "cancel")
	assert.Contains(t, out, "was draining: true")
	res := awaitCLI(t, drain)
	assert.Equal(t, 1, res.code, "stdout %s", res.stdout)
	assert.Contains(t, res.stderr, "drain_cancelled")
	assert.Contains(t, res.stderr, "cancelled during its announce window")
	assert.Equal(t, http.StatusOK, p.call(http.MethodGet, "/readyz", "", "").code, "ready again")
	assert.Nil(t, readMarker(t, home), "a cancelled announce writes no marker")
	assert.Equal(t, http.StatusOK, p.turn("alice", "hi").code)
}

// TestE2EDrainAnnounceUsage: --announce needs --url and stays within 0
// to 5m; both are usage errors (exit 2) that say what to do.
func TestE2EDrainAnnounceUsage(t *testing.T) {
	t.Parallel()
	home := newHome(t)
	for _, tc := range []struct {
		name string
		env  []string
		args []string
		want string
	}{
		{"local", []string{"QUIESCE_HOME=" + home}, []string{"drain", "--announce", "5s"}, "--announce needs --url"},
		{"too long", []string{"QUIESCE_URL=http://127.0.0.1:1", "QUIESCE_TOKEN=" + opsToken}, []string{"drain", "--announce", "301s"}, "from 0 to 5m0s"},
		{"negative", []string{"QUIESCE_URL=http://127.0.0.1:1", "QUIESCE_TOKEN=" + opsToken}, []string{"drain", "--announce", "-1s"}, "from 0 to 5m0s"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, errOut, code := cli(t, tc.env, tc.args...)
			assert.Equal(t, 2, code, "stdout %s stderr %s", out, errOut)
			assert.Contains(t, errOut, tc.want)
		})
	}
	assert.Nil(t, readMarker(t, home), "nothing written")
}
