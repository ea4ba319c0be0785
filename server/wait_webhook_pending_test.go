package server_test

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/quiesce-dev/quiesce/gateway"
	"github.com/quiesce-dev/quiesce/notify"
	"github.com/quiesce-dev/quiesce/server"
)

// TestStatusWaitChangeSeesWebhookPending: a change of webhook_pending
// alone, up (a message kept for a receiver that is down) or down (the
// receiver back, the pending messages redelivered), is a status change:
// a status?wait=change long-poll (what the status page and scripts wait
// on) answers it at once with the new count, instead of at its timeout.
func TestStatusWaitChangeSeesWebhookPending(t *testing.T) {
	var up atomic.Bool // the receiver accepts
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if !up.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	t.Cleanup(receiver.Close)
	home := t.TempDir()
	hook := notify.NewWebhook(receiver.URL, notify.WebhookOptions{
		PendingPath: filepath.Join(home, gateway.WebhookPendingFileName), MaxTries: 1,
		RedeliverBackoff: 5 * time.Millisecond, RedeliverBackoffMax: 20 * time.Millisecond,
		Logger: slog.New(slog.DiscardHandler)})
	h, _ := realServerWith(t, gateway.Config{Home: home, Sinks: []notify.Sink{hook}, NotifyTimeout: time.Second})

	status := do(t, h, http.MethodGet, "/api/gateway/status", opsToken, "")
	require.Equal(t, http.StatusOK, status.Code, status.Body.String())
	var st server.ChangeResponse
	require.NoError(t, json.Unmarshal(status.Body.Bytes(), &st))
	require.Zero(t, st.WebhookPending)

	// waitChange long-polls after st and returns the answer. Its timeout
	// is far beyond the coalesced state write that ends a change (250 ms).
	waitChange := func(what string) server.ChangeResponse {
		rec := do(t, h, http.MethodGet, fmt.Sprintf("/api/gateway/status?wait=change&after=%d&timeout=10s", st.Seq), opsToken, "")
		require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
		var next server.ChangeResponse
		require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &next))
		require.Truef(t, next.Changed, "the long-poll answered at its timeout, unchanged, after %s (webhook_pending %d)", what, next.WebhookPending)
		return next
	}

	// Up: the notifier keeps three messages the receiver refused.
	require.NoError(t, hook.Keep([]notify.Message{
		{Kind: notify.KindSessionInterrupted, Target: "a", ShutdownID: "sd0"},
		{Kind: notify.KindSessionInterrupted, Target: "b", ShutdownID: "sd0"},
		{Kind: notify.KindSessionInterrupted, Target: "c", ShutdownID: "sd0"},
	}))
	st = waitChange("three messages were kept")
	assert.Equal(t, 3, st.WebhookPending)

	// Down: the receiver is back and the redelivery empties the file.
	up.Store(true)
	st = waitChange("the receiver came back")
	assert.Equal(t, 0, st.WebhookPending)
}
