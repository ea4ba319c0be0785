package gateway

import (
	"context"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

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

// TestGatewayRedeliversWebhookPendingWhileRunning: messages the webhook
// could not deliver before the last stop are retried while the gateway
// runs: a receiver that comes back after failing the first rounds gets
// them without a restart; Status counts them until then; the retries stop
// with the gateway and leave no goroutine behind.
func TestGatewayRedeliversWebhookPendingWhileRunning(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	var hits atomic.Int64
	var accepted sync.Map
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if hits.Add(1) <= 4 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		accepted.Store(r.Header.Get("Idempotency-Key"), true)
	}))
	defer srv.Close()

	home := t.TempDir()
	opts := notify.WebhookOptions{PendingPath: filepath.Join(home, WebhookPendingFileName), MaxTries: 1,
		RedeliverBackoff: 5 * time.Millisecond, RedeliverBackoffMax: 20 * time.Millisecond, Logger: quietLogger()}
	msgs := []notify.Message{
		{Kind: notify.KindShutdownBroadcast, Target: notify.HomeTarget, Text: "bye", ShutdownID: "sd0"},
		{Kind: notify.KindSessionInterrupted, Target: "alice", Text: "cut", ShutdownID: "sd0"},
	}
	require.NoError(t, notify.NewWebhook(srv.URL, opts).Keep(msgs))

	hook := notify.NewWebhook(srv.URL, opts)
	procRoot := t.TempDir()
	writeProcRoot(t, procRoot, "boot-a", 100)
	g, err := New(Config{Home: home, ProcRoot: procRoot, Sinks: []notify.Sink{hook}, WatchInterval: -1,
		NotifyTimeout: time.Second, Logger: quietLogger()})
	require.NoError(t, err)
	require.NoError(t, g.Start(context.Background()))
	eventually(t, "the pending messages delivered", func() bool {
		n := 0
		accepted.Range(func(any, any) bool { n++; return true })
		return n == len(msgs)
	})
	for _, m := range msgs {
		_, ok := accepted.Load(m.ID())
		require.True(t, ok, "delivered with its Idempotency-Key: %s", m.ID())
	}
	require.Greater(t, hits.Load(), int64(4), "the first rounds failed")
	eventually(t, "status webhook_pending 0", func() bool { return g.Status().WebhookPending == 0 })

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, err = g.Shutdown(ctx, false)
	require.NoError(t, err)
	require.NoError(t, g.Close())
}

// TestStatusCountsWebhookPending: Status.WebhookPending is the number of
// messages the webhook keeps for a receiver that is down.
func TestStatusCountsWebhookPending(t *testing.T) {
	home := t.TempDir()
	opts := notify.WebhookOptions{PendingPath: filepath.Join(home, WebhookPendingFileName),
		RedeliverBackoff: time.Hour, Logger: quietLogger(), MaxTries: 1}
	down := "http://" + refused.Addr(t)
	require.NoError(t, notify.NewWebhook(down, opts).Keep([]notify.Message{
		{Kind: notify.KindSessionInterrupted, Target: "a", ShutdownID: "sd0"},
		{Kind: notify.KindSessionInterrupted, Target: "b", ShutdownID: "sd0"},
		{Kind: notify.KindSessionInterrupted, Target: "c", ShutdownID: "sd0"},
	}))
	f := newFixture(t, func(c *Config) {
		c.Home = home
		c.Sinks = []notify.Sink{notify.NewWebhook(down, opts)}
	})
	eventually(t, "status webhook_pending 3", func() bool { return f.g.Status().WebhookPending == 3 })
}

// plainRedeliverer is a sink with only what Config.Sinks documents for a
// retried sink (RunRedelivery and Pending), no OnPendingChange.
type plainRedeliverer struct {
	ran chan struct{}
}

func (plainRedeliverer) Name() string                               { return "plain" }
func (plainRedeliverer) Send(context.Context, notify.Message) error { return nil }
func (plainRedeliverer) Close(context.Context) error                { return nil }
func (plainRedeliverer) Pending() int                               { return 7 }
func (p plainRedeliverer) RunRedelivery(ctx context.Context)        { close(p.ran); <-ctx.Done() }

// TestSinkWithRunRedeliveryAndPendingIsRetried: a sink written against
// Config.Sinks' contract (RunRedelivery and Pending, nothing more) is run
// in the background and counted in webhook_pending.
func TestSinkWithRunRedeliveryAndPendingIsRetried(t *testing.T) {
	sink := plainRedeliverer{ran: make(chan struct{})}
	f := newFixture(t, func(c *Config) { c.Sinks = []notify.Sink{sink} })
	select {
	case <-sink.ran:
	case <-time.After(10 * time.Second):
		require.Fail(t, "RunRedelivery never ran")
	}
	require.Equal(t, 7, f.g.Status().WebhookPending)
}

// countingRedeliverer is a pendingWatcher whose count is known only once
// CountPending ran, and whose redelivery never runs a round.
type countingRedeliverer struct {
	plainRedeliverer
	n *atomic.Int64
}

func (c countingRedeliverer) Pending() int           { return int(c.n.Load()) }
func (c countingRedeliverer) OnPendingChange(func()) {}
func (c countingRedeliverer) CountPending() error    { c.n.Store(15); return nil }

// TestStatusCountsPendingFromTheStart: what a redelivering sink keeps
// from the last run is in status as soon as Start returns, not 0 until
// its first redelivery round (a status saying nothing is pending while
// 15 pings wait for a receiver).
func TestStatusCountsPendingFromTheStart(t *testing.T) {
	sink := countingRedeliverer{plainRedeliverer{ran: make(chan struct{})}, &atomic.Int64{}}
	f := newFixture(t, func(c *Config) { c.Sinks = []notify.Sink{sink} })
	require.Equal(t, 15, f.g.Status().WebhookPending)
}
