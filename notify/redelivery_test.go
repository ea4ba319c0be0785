package notify_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/quiesce-dev/quiesce/notify"
)

// droppedMsg is the WARN line of a message the pending limit dropped.
const droppedMsg = "webhook message dropped: the pending record is full; it stays in the outbox"

// TestPendingLimitDropsOldestPingsNeverLatestBroadcast: past PendingMax the
// pending file loses the oldest session pings first, then older
// broadcasts, never the latest broadcast; each drop is a WARN line with
// its id and a ResultDropped for the Observer.
func TestPendingLimitDropsOldestPingsNeverLatestBroadcast(t *testing.T) {
	b1, b2 := broadcast("sd1"), broadcast("sd2")
	p1, p2, p3, p4 := ping("sd1", "s1"), ping("sd1", "s2"), ping("sd2", "s3"), ping("sd2", "s4")
	tests := []struct {
		name  string
		limit int
		kept  [][]notify.Message // one Keep call each
		want  []notify.Message
	}{
		{"pings go before the broadcast", 3, [][]notify.Message{{b1, p1, p2}, {p3, p4}}, []notify.Message{b1, p3, p4}},
		{"the broadcast kept last is never dropped", 1, [][]notify.Message{{p1, p2}, {p3, b2}}, []notify.Message{b2}},
		{"an older broadcast goes after every ping", 2, [][]notify.Message{{b1, p1}, {b2, p3}}, []notify.Message{b1, b2}},
		{"only the latest broadcast survives a limit of one", 1, [][]notify.Message{{b1, p1}, {b2, p3}, {p4}}, []notify.Message{b2}},
		{"within the limit nothing goes", 6, [][]notify.Message{{b1, p1, p2}, {b2, p3, p4}}, []notify.Message{b1, p1, p2, b2, p3, p4}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pending := pendingPath(t)
			logger, logs := newLogger()
			var obs observed
			w := notify.NewWebhook("http://unused.invalid", notify.WebhookOptions{
				PendingPath: pending, PendingMax: tt.limit, Observer: obs.observe, Logger: logger})
			var all []notify.Message
			for _, batch := range tt.kept {
				require.NoError(t, w.Keep(batch))
				all = append(all, batch...)
			}
			assert.Equal(t, ids(tt.want), ids(mustReadOutbox(t, pending)), "pending file")
			assert.Equal(t, len(tt.want), w.Pending(), "Pending")
			dropped := len(all) - len(tt.want)
			assert.Equal(t, dropped, obs.count("webhook", notify.ResultDropped), "observer webhook/dropped")
			for _, m := range all {
				want := 1
				if slices.Contains(ids(tt.want), m.ID()) {
					want = 0
				}
				assert.Len(t, logs.find(t, slog.LevelWarn, droppedMsg, m.ID()), want, "WARN drop lines for %s", m.ID())
			}
		})
	}
}

// TestPendingLimitAppliesToAFileAlreadyOverIt: a pending file over the
// limit (a gateway restarted with a lower --webhook-pending-max) is cut by
// the first round, as Keep cuts it, before anything is sent.
func TestPendingLimitAppliesToAFileAlreadyOverIt(t *testing.T) {
	pending := pendingPath(t)
	msgs := []notify.Message{broadcast("sd1")}
	for i := range 5 {
		msgs = append(msgs, ping("sd1", fmt.Sprintf("s%d", i)))
	}
	require.NoError(t, notify.NewWebhook("http://unused.invalid", notify.WebhookOptions{PendingPath: pending}).Keep(msgs))

	srv := newHookServer(t, http.StatusOK)
	var obs observed
	logger, _ := newLogger()
	w := notify.NewWebhook(srv.URL, notify.WebhookOptions{PendingPath: pending, PendingMax: 3, Observer: obs.observe, Logger: logger})
	delivered, left, err := redeliver(t, w)
	require.NoError(t, err)
	assert.Equal(t, 3, delivered)
	assert.Equal(t, 0, left)
	assert.Equal(t, sortedIDs([]notify.Message{msgs[0], msgs[4], msgs[5]}), receivedKeys(t, srv))
	assert.Equal(t, 3, obs.count("webhook", notify.ResultDropped))
}

// flakyReceiver answers 503 to its first down requests, then 200, and
// records the keys it accepted.
func flakyReceiver(t *testing.T, down int64) (*keyServer, *atomic.Int64) {
	t.Helper()
	var hits atomic.Int64
	srv := newKeyServer(t, func(notify.Message) int {
		if hits.Add(1) <= down {
			return http.StatusServiceUnavailable
		}
		return http.StatusOK
	})
	return srv, &hits
}

// runRedelivery runs w.RunRedelivery until the test ends, then checks it
// returns (bounded) once its context is cancelled.
func runRedelivery(t *testing.T, w *notify.Webhook) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		w.RunRedelivery(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		within(t, 5*time.Second, done, "RunRedelivery after cancel")
	})
}

// TestRunRedeliveryReachesAReceiverThatComesBack: a receiver that is down
// when the gateway starts, and stays down for several rounds, gets every
// pending message once it is back, without a restart, each with its
// Idempotency-Key; what is kept later (a receiver down again during a
// shutdown's flush) goes out too, woken by Keep, not by polling.
func TestRunRedeliveryReachesAReceiverThatComesBack(t *testing.T) {
	pending := pendingPath(t)
	first := []notify.Message{broadcast("sd1"), ping("sd1", "s1"), ping("sd1", "s2")}
	srv, hits := flakyReceiver(t, 6)
	logger, logs := newLogger()
	w := notify.NewWebhook(srv.URL, notify.WebhookOptions{
		PendingPath: pending, MaxTries: 1, Concurrency: 1,
		RedeliverBackoff: 5 * time.Millisecond, RedeliverBackoffMax: 20 * time.Millisecond, Logger: logger})
	require.NoError(t, w.Keep(first))
	runRedelivery(t, w)

	require.Eventually(t, func() bool { return len(srv.accepted()) == len(first) }, 10*time.Second, 5*time.Millisecond,
		"every pending message delivered once the receiver is back")
	assert.Greater(t, hits.Load(), int64(6), "the receiver refused the first rounds")
	assert.Equal(t, sortedIDs(first), srv.accepted())
	require.Eventually(t, func() bool { return w.Pending() == 0 }, 10*time.Second, 5*time.Millisecond, "Pending back to 0")
	assert.Empty(t, mustReadOutbox(t, pending), "pending file after delivery")
	failed := 0
	for _, rec := range logs.records(t) {
		if rec["msg"] == "webhook redelivery failed; retrying with backoff" {
			failed++
		}
	}
	assert.Equal(t, 1, failed, "one WARN for a receiver that stays down, not one per round")

	later := []notify.Message{broadcast("sd2"), ping("sd2", "s3")}
	require.NoError(t, w.Keep(later))
	all := append(slices.Clone(first), later...)
	require.Eventually(t, func() bool { return len(srv.accepted()) == len(all) }, 10*time.Second, 5*time.Millisecond,
		"messages kept after the file emptied are delivered too")
	assert.Equal(t, sortedIDs(all), srv.accepted())
}

// TestRedeliveryRoundStopsAtADownReceiver: a round against a receiver
// that is down tries a few messages, not every pending one, and keeps
// them all.
func TestRedeliveryRoundStopsAtADownReceiver(t *testing.T) {
	pending := pendingPath(t)
	var msgs []notify.Message
	for i := range 50 {
		msgs = append(msgs, ping("sd1", fmt.Sprintf("s%02d", i)))
	}
	srv, hits := flakyReceiver(t, 1<<30)
	w := notify.NewWebhook(srv.URL, notify.WebhookOptions{PendingPath: pending, MaxTries: 1, Concurrency: 2})
	require.NoError(t, w.Keep(msgs))
	delivered, left, err := redeliver(t, w)
	require.NoError(t, err)
	assert.Equal(t, 0, delivered)
	assert.Equal(t, len(msgs), left)
	assert.LessOrEqual(t, hits.Load(), int64(4), "requests of a round at a down receiver")
	assert.Equal(t, ids(msgs), ids(mustReadOutbox(t, pending)))
}

// TestRedeliveryCutOffKeepsWhatWasNotAcknowledged: a round cancelled in
// the middle (the gateway stopping, or killed while the receiver hangs)
// leaves every message the receiver did not acknowledge in the pending
// file; the file is only ever replaced whole (atomically), so a kill -9 at
// any point leaves the old file or the new one.
func TestRedeliveryCutOffKeepsWhatWasNotAcknowledged(t *testing.T) {
	pending := pendingPath(t)
	var msgs []notify.Message
	for i := range 6 {
		msgs = append(msgs, ping("sd1", fmt.Sprintf("s%d", i)))
	}
	release := make(chan struct{})
	var served atomic.Int64
	srv := newKeyServer(t, func(notify.Message) int {
		if served.Add(1) <= 2 {
			return http.StatusOK
		}
		<-release // hang: the round is cut off here
		return http.StatusOK
	})
	t.Cleanup(func() { close(release) })
	w := notify.NewWebhook(srv.URL, notify.WebhookOptions{PendingPath: pending, Concurrency: 1, TryTimeout: time.Minute})
	require.NoError(t, w.Keep(msgs))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _, _ = w.Redeliver(ctx)
	}()
	require.Eventually(t, func() bool { return served.Load() >= 3 }, 10*time.Second, 5*time.Millisecond, "round reached the hang")
	cancel()
	within(t, 5*time.Second, done, "Redeliver after cancel")
	got := ids(mustReadOutbox(t, pending))
	assert.Equal(t, ids(msgs[2:]), got, "the unacknowledged messages stay pending")
	_, err := os.Stat(pending)
	require.NoError(t, err)
}
