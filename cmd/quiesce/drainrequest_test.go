package main_test

import (
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// drainAnswerFields are the fields of the API's drain answer.
var drainAnswerFields = []string{"action", "active_agents", "draining", "expires_at", "ok", "persisted", "principal",
	"reason", "refreshed", "request_id", "requested_at", "state", "suppress_notification", "was_draining"}

func keys(m map[string]any) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// TestE2EDrainRefreshKeepsTheRequest: after drain --suppress-notification
// --request-id maint-42 --reason ..., a drain naming maint-42 refreshes it
// and keeps the flag and the reason (the status page's refresh and a
// repeated drain --wait do this); a drain without the id replaces it. Over
// HTTP and locally, --json prints exactly the API's fields.
func TestE2EDrainRefreshKeepsTheRequest(t *testing.T) {
	t.Parallel()
	for _, mode := range cliModes {
		t.Run(mode.name, func(t *testing.T) {
			t.Parallel()
			home, proc := newHome(t), fakeProcRoot(t, "boot-refresh-"+mode.name, 100)
			p := startGateway(t, home, proc)
			env := mode.env(p, proc)

			first := jsonDocs(t, mustCLI(t, env, "drain", "--json", "--suppress-notification", "--request-id", "maint-42",
				"--reason", "disk swap on node-7"))[0]
			assert.Equal(t, drainAnswerFields, keys(first), "--json prints the API's drain answer")
			assert.Equal(t, false, first["refreshed"])
			assert.Equal(t, "disk swap on node-7", first["reason"])
			assert.Equal(t, "draining", first["state"])

			again := jsonDocs(t, mustCLI(t, env, "drain", "--json", "--request-id", "maint-42"))[0]
			assert.Equal(t, drainAnswerFields, keys(again))
			assert.Equal(t, true, again["refreshed"])
			assert.Equal(t, true, again["was_draining"])
			assert.Equal(t, true, again["suppress_notification"], "the flag stays")
			assert.Equal(t, "disk swap on node-7", again["reason"], "the reason stays")
			assert.NotEqual(t, first["requested_at"], again["requested_at"], "requested_at renews")
			mk := readMarker(t, home)
			assert.Equal(t, true, mk["suppress_notification"])
			assert.Equal(t, "disk swap on node-7", mk["reason"])
			assert.Equal(t, "maint-42", mk["request_id"])

			out := mustCLI(t, env, "drain", "--request-id", "maint-42", "--reason", "kernel")
			assert.Contains(t, out, "drain refreshed")
			assert.Contains(t, out, `reason "kernel"`)
			assert.Contains(t, out, "suppress_notification true")

			st, errOut, code := cli(t, env, "status")
			assert.Equal(t, 3, code, "status exits 3 while draining: %s", errOut)
			assert.Contains(t, st, `reason "kernel"`)
			d := p.status()["drain"].(map[string]any)
			assert.Equal(t, "kernel", d["reason"])
			assert.Equal(t, true, d["persisted"])

			out = mustCLI(t, env, "drain")
			assert.Contains(t, out, "replaced the drain request that was already active")
			mk = readMarker(t, home)
			assert.Equal(t, false, mk["suppress_notification"], "a new request starts from scratch")
			assert.NotContains(t, mk, "reason")
			assert.NotEqual(t, "maint-42", mk["request_id"])
		})
	}
}

// TestE2EDrainFlagMistakes: --timeout without --wait, and a reason that is
// not a line of at most 200 printable characters, are usage errors (exit
// 2) that change nothing.
func TestE2EDrainFlagMistakes(t *testing.T) {
	t.Parallel()
	home := newHome(t)
	env := []string{"QUIESCE_HOME=" + home, "QUIESCE_PROC_ROOT=" + fakeProcRoot(t, "boot-mistakes", 100)}
	for _, args := range [][]string{
		{"drain", "--timeout", "5s"},
		{"drain", "--reason", strings.Repeat("x", 201)},
		{"drain", "--reason", "two\nlines"},
	} {
		out, errOut, code := cli(t, env, args...)
		assert.Equalf(t, 2, code, "%q: stdout %s stderr %s", args, out, errOut)
		assert.Contains(t, errOut, "Run 'quiesce help drain' for usage.")
		assert.Nil(t, readMarker(t, home), "nothing drained")
	}
	_, errOut, _ := cli(t, env, "drain", "--timeout", "5s")
	assert.Contains(t, errOut, "--wait")
	_, errOut, _ = cli(t, env, "drain", "--reason", strings.Repeat("x", 201))
	assert.Contains(t, errOut, "at most 200")
}

// TestE2EWaitAfterADrainThatTimedOut: drain --wait that timed out (exit 3)
// says how to wait again without draining again; 'wait' does that (exit 3
// on its own timeout, 0 once idle, --json the status with idle) and
// touches nothing: the marker is the drain's, byte for byte.
func TestE2EWaitAfterADrainThatTimedOut(t *testing.T) {
	t.Parallel()
	for _, mode := range cliModes {
		t.Run(mode.name, func(t *testing.T) {
			t.Parallel()
			home, proc := newHome(t), fakeProcRoot(t, "boot-waitcmd-"+mode.name, 100)
			p := startGateway(t, home, proc, "--agent-work", "3s")
			env := mode.env(p, proc)
			inflight := p.turnAsync("alice", "slow")
			p.waitInFlight(1)

			out, errOut, code := cli(t, env, "drain", "--wait", "--timeout", "100ms", "--request-id", "maint-42")
			require.Equalf(t, 3, code, "stdout %s stderr %s", out, errOut)
			assert.Contains(t, errOut, "1 turn still in flight")
			assert.Contains(t, errOut, "quiesce wait")
			if mode.name == "Local" {
				assert.Contains(t, errOut, "--home "+home, "the hint acts on the same home")
			} else {
				assert.Contains(t, errOut, "--url "+p.url, "the hint acts on the same gateway")
			}
			marker, err := os.ReadFile(filepath.Join(home, ".drain_request.json"))
			require.NoError(t, err)

			out, errOut, code = cli(t, env, "wait", "--timeout", "100ms")
			require.Equalf(t, 3, code, "stdout %s stderr %s", out, errOut)
			assert.Contains(t, errOut, "nothing was changed")

			docs := jsonDocs(t, mustCLI(t, env, "wait", "--json", "--timeout", "30s"))
			last := docs[len(docs)-1]
			assert.Equal(t, true, last["idle"])
			assert.Equal(t, float64(0), last["active_agents"])
			assert.Equal(t, "draining", last["state"])
			r := await(t, inflight)
			assert.Equal(t, http.StatusOK, r.code, r.raw)

			after, err := os.ReadFile(filepath.Join(home, ".drain_request.json"))
			require.NoError(t, err)
			assert.Equal(t, string(marker), string(after), "wait touched nothing")
			assert.Contains(t, mustCLI(t, env, "wait"), "idle: no turn in flight")
		})
	}
}

// TestE2EDrainOnAFullDisk: with the home on a full disk, a drain through
// the API answers 503 marker_unwritable naming the cause, with state
// draining and persisted false, and the gate is closed all the same (a
// turn gets 503 draining; status and /metrics say draining, status says
// not persisted); the CLI says so and exits 1; a local drain says nothing
// was drained. A cancel reopens the gate while the disk is still full.
// Once space is back, a refresh of the same request persists it.
func TestE2EDrainOnAFullDisk(t *testing.T) {
	t.Parallel()
	needBinary(t)
	disk := smallDisk(t)
	home := filepath.Join(disk, "home")
	require.NoError(t, os.Mkdir(home, 0o700))
	require.NoError(t, os.WriteFile(filepath.Join(home, "tokens"), []byte("ops "+opsToken+"\n"), 0o600))
	proc := fakeProcRoot(t, "boot-full-drain", 100)
	p := startGateway(t, home, proc)
	require.Equal(t, http.StatusOK, p.turn("alice", "before").code)

	free := fill(t, disk)
	r := p.call(http.MethodPost, "/api/gateway/drain", opsToken,
		`{"request_id":"maint-42","suppress_notification":true,"reason":"disk swap"}`)
	require.Equal(t, http.StatusServiceUnavailable, r.code, r.raw)
	assert.Equal(t, "marker_unwritable", r.body["error"])
	assert.Equal(t, "draining", r.body["state"])
	assert.Equal(t, false, r.body["persisted"])
	assert.Equal(t, "maint-42", r.body["request_id"])
	assert.Contains(t, r.body["message"], "no space left on device")
	assert.Contains(t, r.body["message"], filepath.Join(home, ".drain_request.json"))

	r = p.turn("alice", "during")
	assert.Equal(t, http.StatusServiceUnavailable, r.code, r.raw)
	assert.Equal(t, "draining", r.body["error"], "the gate is closed")
	st := p.status()
	assert.Equal(t, "draining", st["state"])
	d := st["drain"].(map[string]any)
	assert.Equal(t, false, d["persisted"])
	assert.Equal(t, "disk swap", d["reason"])
	assert.Equal(t, true, d["suppress_notification"])
	m := p.call(http.MethodGet, "/metrics", "", "")
	assert.Contains(t, m.raw, `quiesce_state{state="draining"} 1`)
	assert.Contains(t, m.raw, "\nquiesce_drain_persisted 0\n", "an alert can tell a drain held in memory only")
	left := drainExpiryRe.FindStringSubmatch(m.raw)
	require.NotNil(t, left, "a drain held in memory expires like a marker: quiesce_drain_expires_in_seconds is exported")
	secs, err := strconv.ParseFloat(left[1], 64)
	require.NoError(t, err)
	assert.InDelta(t, 3600, secs, 60, "about an hour left (--drain-max-age 1h)")
	assert.NotEmpty(t, d["expires_at"], "the status says when it expires")

	httpEnv := []string{"QUIESCE_URL=" + p.url, "QUIESCE_TOKEN=" + opsToken}
	out, errOut, code := cli(t, httpEnv, "drain", "--request-id", "maint-42")
	assert.Equalf(t, 1, code, "stdout %s stderr %s", out, errOut)
	assert.Contains(t, errOut, "no space left on device")
	assert.Contains(t, errOut, "restart")
	noPackagePrefixes(t, errOut)

	localEnv := []string{"QUIESCE_HOME=" + home, "QUIESCE_PROC_ROOT=" + proc}
	out, errOut, code = cli(t, localEnv, "drain", "--request-id", "local-1")
	assert.Equalf(t, 1, code, "stdout %s stderr %s", out, errOut)
	assert.Contains(t, errOut, "no space left on device")
	assert.Contains(t, errOut, "Nothing was drained")
	noPackagePrefixes(t, errOut)

	// A local cancel cannot reach a drain held in memory: it says so and
	// fails, rather than answering ok while the gateway goes on draining.
	out, errOut, code = cli(t, localEnv, "cancel")
	assert.Equalf(t, 1, code, "stdout %s stderr %s", out, errOut)
	assert.Contains(t, errOut, "held in memory")
	assert.Contains(t, errOut, "--url")
	assert.Equal(t, "draining", p.status()["state"], "a local cancel changed nothing")

	r = p.call(http.MethodPost, "/api/gateway/drain", opsToken, `{"action":"cancel","request_id":"maint-42"}`)
	require.Equal(t, http.StatusOK, r.code, r.raw)
	assert.Equal(t, true, r.body["was_draining"])
	assert.Equal(t, "running", r.body["state"])
	assert.Equal(t, http.StatusOK, p.turn("alice", "after cancel").code, "cancel reopened the gate")

	free()
	r = p.call(http.MethodPost, "/api/gateway/drain", opsToken, `{"request_id":"maint-43","reason":"retry"}`)
	require.Equal(t, http.StatusOK, r.code, r.raw)
	assert.Equal(t, true, r.body["persisted"])
	assert.Equal(t, "maint-43", readMarker(t, home)["request_id"])
	assert.Equal(t, true, p.status()["drain"].(map[string]any)["persisted"])
	assert.Contains(t, p.call(http.MethodGet, "/metrics", "", "").raw, "\nquiesce_drain_persisted 1\n")
}
