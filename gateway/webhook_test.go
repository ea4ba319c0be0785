package gateway

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/quiesce-dev/quiesce/internal/refused"

	"github.com/quiesce-dev/quiesce/notify"
)

// TestShutdownWithBadWebhook: a webhook that is down, slow or failing
// cannot hold the shutdown past drain + notify timeout, and the outbox
// holds every message.
func TestShutdownWithBadWebhook(t *testing.T) {
	release := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(slow.Close)
	t.Cleanup(func() { close(release) }) // runs before slow.Close
	failing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusInternalServerError)
	}))
	t.Cleanup(failing.Close)
	down := "http://" + refused.Addr(t)

	for _, tc := range []struct{ name, url string }{{"down", down}, {"slow", slow.URL}, {"failing", failing.URL}} {
		t.Run(tc.name, func(t *testing.T) {
			const drain, notifyTimeout = 200 * time.Millisecond, 500 * time.Millisecond
			hook := notify.NewWebhook(tc.url, notify.WebhookOptions{TryTimeout: 100 * time.Millisecond})
			f := newFixture(t, func(c *Config) {
				c.Sinks = []notify.Sink{hook}
				c.DrainTimeout, c.NotifyTimeout = drain, notifyTimeout
			})
			f.startTurn(t, "alice", "stuck")
			ctx, cancel := context.WithTimeout(context.Background(), drain+notifyTimeout+5*time.Second)
			defer cancel()
			rep, err := f.g.Shutdown(ctx, false)
			require.NoError(t, err, "shutdown bounded by drain + notify timeout")
			require.Equal(t, []string{"alice"}, rep.Interrupted)
			msgs := f.outbox(t)
			require.Equal(t, 1, count(msgs, notify.KindShutdownBroadcast, ""))
			require.Equal(t, 1, count(msgs, notify.KindSessionInterrupted, "alice"))
		})
	}
}
