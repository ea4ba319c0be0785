package main_test

import (
	"net/http"
	"net/http/httptest"
	"os"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestE2EHomeFileModes: after a life that wrote every file of the home
// (a rejected internal event, a drain, a shutdown whose broadcast the
// webhook could not take), each file the gateway created is mode 0600,
// except gateway.lock and the marker's lock file, 0644, as the files
// table of OPERATIONS.md says.
func TestE2EHomeFileModes(t *testing.T) {
	t.Parallel()
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	defer hook.Close()
	agent := newFlakyAgent(t)
	agent.down.Store(true)
	home := newHome(t)
	p := startGateway(t, home, fakeProcRoot(t, "boot-modes", 100), "--agent", "http", "--agent-url", agent.URL,
		"--event-retry-for", "300ms", "--notify-webhook", hook.URL, "--notify-timeout", "1s")
	id := postEvent(t, p, "s1", "job finished")
	eventually(t, deliveryBound, "the event rejected", func() bool { return rejectedHas(t, home, id) })
	require.Equal(t, http.StatusOK, p.call(http.MethodPost, "/api/gateway/drain", opsToken, "").code)
	p.signal(syscall.SIGTERM)
	require.Equal(t, 0, p.wait())

	want := map[string]os.FileMode{
		"gateway.lock": 0o644, ".drain_request.lock": 0o644,
		".drain_request.json": 0o600, "gateway_state.json": 0o600, "outbox.jsonl": 0o600, "events.spool.jsonl": 0o600,
		"events.spool.rejected.jsonl": 0o600, "webhook.pending.jsonl": 0o600, "tokens": 0o600,
	}
	entries, err := os.ReadDir(home)
	require.NoError(t, err)
	got := map[string]os.FileMode{}
	for _, e := range entries {
		fi, err := e.Info()
		require.NoError(t, err)
		assert.Truef(t, fi.Mode().IsRegular(), "%s is a regular file", e.Name())
		got[e.Name()] = fi.Mode().Perm()
	}
	assert.Equal(t, want, got)
}
