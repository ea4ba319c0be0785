package notify_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/quiesce-dev/quiesce/internal/homefile"
	"github.com/quiesce-dev/quiesce/notify"
)

const undeliveredMsg = "notification not delivered; kept in outbox"

// newNotifier returns a Notifier over a fresh outbox, with a DEBUG logger.
// The test closes it at the end (after any cleanup registered later).
func newNotifier(tb testing.TB, sinks ...notify.Sink) (*notify.Notifier, string, *logBuffer) {
	tb.Helper()
	o, path := mustOpenOutbox(tb)
	logger, logs := newLogger()
	n := notify.NewNotifier(o, logger, sinks...)
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		assert.NoErrorf(tb, n.Close(ctx), "Close")
	})
	return n, path, logs
}

// flush calls n.Flush with a timeout of d and fails the test unless it
// returns by d plus a second of slack. It returns Flush's error.
func flush(tb testing.TB, n *notify.Notifier, d time.Duration) error {
	tb.Helper()
	return callWithin(tb, n.Flush, d, d+time.Second, "Flush")
}

func TestNotifierOutboxBeforeWebhook(t *testing.T) {
	results := make(chan error, 10)
	var path string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		m, err := decodeMessage(r)
		if err != nil {
			results <- err
			return
		}
		msgs, err := notify.ReadOutbox(path)
		switch {
		case err != nil:
			results <- err
		case !slices.Contains(ids(msgs), m.ID()):
			results <- fmt.Errorf("%s not in outbox %v when the webhook was called", m.ID(), ids(msgs))
		default:
			results <- nil
		}
	}))
	t.Cleanup(srv.Close)
	n, p, _ := newNotifier(t, notify.NewWebhook(srv.URL, fastOptions))
	path = p
	msgs := []notify.Message{broadcast("sd1"), ping("sd1", "s1"), ping("sd1", "s2")}
	for _, m := range msgs {
		require.NoErrorf(t, n.Send(context.Background(), m), "Send")
	}
	require.NoErrorf(t, flush(t, n, 5*time.Second), "Flush")
	for range msgs {
		select {
		case err := <-results:
			assert.NoError(t, err)
		default:
			require.Fail(t, "webhook called fewer times than messages sent")
		}
	}
}

func TestNotifierDeduplicates(t *testing.T) {
	rec := &notify.Recorder{}
	n, path, logs := newNotifier(t, rec)
	again := ping("sd1", "s1")
	again.At = again.At.Add(time.Minute)
	again.Text = "different text, same id"
	sends := []notify.Message{broadcast("sd1"), ping("sd1", "s1"), broadcast("sd1"), again, ping("sd2", "s1"), broadcast("sd1")}
	for _, m := range sends {
		require.NoErrorf(t, n.Send(context.Background(), m), "Send(%s)", m.ID())
	}
	require.NoErrorf(t, flush(t, n, 5*time.Second), "Flush")
	want := ids([]notify.Message{broadcast("sd1"), ping("sd1", "s1"), ping("sd2", "s1")})
	for name, got := range map[string][]string{
		"outbox":   ids(mustReadOutbox(t, path)),
		"recorder": ids(rec.Messages()),
		"Sent":     ids(n.Sent()),
	} {
		assert.Truef(t, slices.Equal(got, want), "%s: got %v, want %v", name, got, want)
	}
	got := rec.Count(notify.KindShutdownBroadcast, notify.HomeTarget)
	assert.Equalf(t, 1, got, "got %d broadcasts, want 1", got)
	assert.Equal(t, ping("sd1", "s1").Text, rec.Messages()[1].Text, "the first message should win")
	got = len(logs.find(t, slog.LevelDebug, "notification already sent; ignored", broadcast("sd1").ID()))
	assert.Equalf(t, 2, got, "got %d DEBUG lines for the repeated broadcast, want 2", got)
}

func TestNotifierFlushWaitsForEverySink(t *testing.T) {
	slow := &notify.Recorder{Delay: 20 * time.Millisecond}
	fast := &notify.Recorder{}
	n, _, logs := newNotifier(t, slow, fast, notify.NewLog(slog.New(slog.DiscardHandler)))
	var want []string
	for i := range 5 {
		m := ping("sd1", fmt.Sprintf("s%d", i))
		want = append(want, m.ID())
		require.NoErrorf(t, n.Send(context.Background(), m), "Send")
	}
	require.NoErrorf(t, flush(t, n, 5*time.Second), "Flush")
	for name, r := range map[string]*notify.Recorder{"slow": slow, "fast": fast} {
		got := ids(r.Messages())
		assert.Truef(t, slices.Equal(got, want), "%s: got %v, want %v", name, got, want)
	}
	for _, id := range want {
		got := logs.find(t, slog.LevelWarn, undeliveredMsg, id)
		assert.Emptyf(t, got, "unexpected WARN for %s: %v", id, got)
	}
	// Nothing queued: Flush returns at once, even with a done ctx.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	assert.NoErrorf(t, n.Flush(ctx), "Flush with nothing queued")
}

func TestNotifierFlushStuckSink(t *testing.T) {
	release := make(chan struct{})
	// stuck ignores its ctx; it only returns at the end of the test.
	stuck := &notify.Recorder{Hook: func(context.Context, notify.Message) error {
		<-release
		return nil
	}}
	// patient honours its ctx and reports the cancellation.
	cancelled := make(chan struct{})
	patient := &notify.Recorder{Hook: func(ctx context.Context, m notify.Message) error {
		select {
		case <-ctx.Done():
			close(cancelled)
			return ctx.Err()
		case <-release:
			return nil
		}
	}}
	n, path, logs := newNotifier(t, stuck, patient)
	t.Cleanup(func() { close(release) }) // runs before Close
	m := ping("sd1", "s1")
	require.NoErrorf(t, n.Send(context.Background(), m), "Send")
	err := flush(t, n, 200*time.Millisecond)
	require.ErrorIsf(t, err, context.DeadlineExceeded, "Flush: got %v, want context.DeadlineExceeded", err)
	within(t, 2*time.Second, cancelled, "cancelling the sink's ctx")
	got := ids(mustReadOutbox(t, path))
	assert.Truef(t, slices.Equal(got, []string{m.ID()}), "outbox: got %v, want [%s]", got, m.ID())
	warns := logs.find(t, slog.LevelWarn, undeliveredMsg, m.ID())
	var sinks []string
	for _, w := range warns {
		sinks = append(sinks, fmt.Sprint(w["sink"]))
	}
	slices.Sort(sinks)
	want := []string{"recorder", "recorder #2"}
	assert.Truef(t, slices.Equal(sinks, want), "WARN lines for %s name sinks %v, want %v", m.ID(), sinks, want)
	// Given up on: a later Flush does not wait for it again.
	assert.NoErrorf(t, flush(t, n, time.Second), "second Flush")
}

func TestNotifierSinkFailuresAreLogged(t *testing.T) {
	failing := &notify.Recorder{Hook: func(context.Context, notify.Message) error { return errors.New("boom") }}
	panicking := &notify.Recorder{Hook: func(_ context.Context, m notify.Message) error {
		if m.Target == "s1" {
			panic("sink bug")
		}
		return nil
	}}
	good := &notify.Recorder{}
	n, _, logs := newNotifier(t, failing, panicking, good)
	msgs := []notify.Message{ping("sd1", "s1"), ping("sd1", "s2")}
	for _, m := range msgs {
		require.NoErrorf(t, n.Send(context.Background(), m), "Send")
	}
	require.NoErrorf(t, flush(t, n, 5*time.Second), "Flush")
	got := ids(good.Messages())
	assert.Truef(t, slices.Equal(got, ids(msgs)), "good sink: got %v, want %v", got, ids(msgs))
	got = ids(panicking.Messages())
	assert.Truef(t, slices.Equal(got, ids(msgs[1:])), "panicking sink: got %v, want %v (its worker must survive)", got, ids(msgs[1:]))
	for _, c := range []struct {
		id, sink, err string
	}{
		{msgs[0].ID(), "recorder", "boom"},
		{msgs[1].ID(), "recorder", "boom"},
		{msgs[0].ID(), "recorder #2", "sink bug"},
	} {
		found := false
		for _, w := range logs.find(t, slog.LevelWarn, undeliveredMsg, c.id) {
			if w["sink"] == c.sink && strings.Contains(fmt.Sprint(w["error"]), c.err) {
				found = true
			}
		}
		assert.Truef(t, found, "no WARN for %s on %s with %q", c.id, c.sink, c.err)
	}
}

// TestFailingOutboxDoesNotHoldBackOtherSinks: when the outbox cannot be
// written (closed, or every write failing as on a full disk), Send returns
// the outbox's error, but the log sink and every other sink still get each
// message once, and a repeat is still deduplicated.
func TestFailingOutboxDoesNotHoldBackOtherSinks(t *testing.T) {
	tests := []struct {
		name   string
		break_ func(*notify.Outbox) error
		wantIs error
	}{
		{"closed outbox", (*notify.Outbox).Close, os.ErrClosed},
		{"writes fail", notify.BreakOutboxWrites, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, path := mustOpenOutbox(t)
			rec := &notify.Recorder{}
			sinkLogger, sinkLogs := newLogger()
			logger, logs := newLogger()
			var obs observed
			n := notify.NewNotifierWith(o, notify.NotifierOptions{Logger: logger, Observer: obs.observe}, notify.NewLog(sinkLogger), rec)
			t.Cleanup(func() { _ = n.Close(context.Background()) })
			require.NoError(t, tt.break_(o))
			msgs := []notify.Message{broadcast("sd1"), ping("sd1", "s1"), ping("sd1", "s2")}
			for _, m := range msgs {
				err := n.Send(context.Background(), m)
				assert.ErrorIsf(t, err, notify.ErrNotRecorded, "Send(%s): got %v, want an error wrapping ErrNotRecorded", m.ID(), err)
				if tt.wantIs != nil {
					assert.ErrorIsf(t, err, tt.wantIs, "Send(%s): want the outbox's error", m.ID())
				}
			}
			err := n.Send(context.Background(), ping("sd1", "s1"))
			assert.NoErrorf(t, err, "repeated Send: got %v, want nil (deduplicated)", err)
			require.NoErrorf(t, flush(t, n, 5*time.Second), "Flush")
			got := ids(rec.Messages())
			assert.Truef(t, slices.Equal(got, ids(msgs)), "recorder: got %v, want %v", got, ids(msgs))
			for _, m := range msgs {
				got := sinkLogs.find(t, slog.LevelInfo, "notification", m.ID())
				assert.Lenf(t, got, 1, "log sink: got %d lines for %s, want 1", len(got), m.ID())
				got = logs.find(t, slog.LevelWarn, undeliveredMsg, m.ID())
				assert.Emptyf(t, got, "unexpected WARN for %s: %v", m.ID(), got)
			}
			got = ids(n.Sent())
			assert.Truef(t, slices.Equal(got, ids(msgs)), "Sent: got %v, want %v", got, ids(msgs))
			assert.Empty(t, ids(mustReadOutbox(t, path)), "outbox: want nothing written")
			for _, c := range []struct {
				sink, result string
				want         int
			}{
				{"outbox", notify.ResultFailed, 3}, {"outbox", notify.ResultDelivered, 0},
				{"log", notify.ResultDelivered, 3}, {"recorder", notify.ResultDelivered, 3},
			} {
				got := obs.count(c.sink, c.result)
				assert.Equalf(t, c.want, got, "observer %s/%s: got %d, want %d", c.sink, c.result, got, c.want)
			}
		})
	}
}

func TestNotifierValidates(t *testing.T) {
	rec := &notify.Recorder{}
	n, path, _ := newNotifier(t, rec)
	tests := []struct {
		name   string
		modify func(*notify.Message)
	}{
		{"unknown kind", func(m *notify.Message) { m.Kind = "other" }},
		{"empty kind", func(m *notify.Message) { m.Kind = "" }},
		{"empty target", func(m *notify.Message) { m.Target = "" }},
		{"empty shutdown id", func(m *notify.Message) { m.ShutdownID = "" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := ping("sd1", "s1")
			tt.modify(&m)
			err := n.Send(context.Background(), m)
			if assert.Error(t, err, "want a notify error") {
				assert.Truef(t, strings.HasPrefix(err.Error(), "notify: "), "got %v, want a notify error", err)
			}
		})
	}
	got := mustReadOutbox(t, path)
	assert.Emptyf(t, got, "outbox: got %v, want nothing", got)
}

func TestNotifierFillsDefaults(t *testing.T) {
	rec := &notify.Recorder{}
	n, path, _ := newNotifier(t, rec)
	local := time.FixedZone("UTC-5", -5*3600)
	at := time.Date(2026, 3, 1, 8, 0, 0, 0, local)
	before := time.Now()
	sends := []notify.Message{
		{Kind: notify.KindShutdownBroadcast, Target: notify.HomeTarget, ShutdownID: "sd1"},
		{Kind: notify.KindSessionInterrupted, Target: "s1", ShutdownID: "sd1", At: at},
	}
	for _, m := range sends {
		require.NoErrorf(t, n.Send(context.Background(), m), "Send")
	}
	require.NoErrorf(t, flush(t, n, 5*time.Second), "Flush")
	got := mustReadOutbox(t, path)
	require.Lenf(t, got, 2, "got %d messages, want 2", len(got))
	assert.Equal(t, notify.BroadcastText(), got[0].Text, "default broadcast text not filled")
	assert.Equal(t, notify.InterruptText("s1"), got[1].Text, "default interrupt text not filled")
	assert.Falsef(t, got[0].At.Before(before.Add(-time.Second)), "zero At not filled with the current time: %v", got[0].At)
	assert.Samef(t, time.UTC, got[0].At.Location(), "zero At not filled in UTC: %v", got[0].At)
	assert.Truef(t, got[1].At.Equal(at), "At changed: got %v, want %v", got[1].At, at)
	sent := n.Sent()
	if assert.Lenf(t, sent, 2, "Sent: got %v", sent) {
		assert.Samef(t, time.UTC, sent[1].At.Location(), "Sent: At not in UTC: %v", sent)
	}
	assert.Truef(t, slices.Equal(ids(sent), ids(got)), "Sent: got %v, want %v", ids(sent), ids(got))
	r := rec.Messages()
	if assert.Lenf(t, r, 2, "recorder: got %v", r) {
		assert.Equalf(t, notify.BroadcastText(), r[0].Text, "recorder: got %v", r)
	}
}

func TestNotifierSendCancelled(t *testing.T) {
	n, path, _ := newNotifier(t, &notify.Recorder{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := n.Send(ctx, ping("sd1", "s1"))
	assert.ErrorIsf(t, err, context.Canceled, "got %v, want context.Canceled", err)
	got := mustReadOutbox(t, path)
	assert.Emptyf(t, got, "outbox: got %v, want nothing", got)
	// Not marked as sent: a retry goes through.
	assert.NoErrorf(t, n.Send(context.Background(), ping("sd1", "s1")), "retry")
	got = mustReadOutbox(t, path)
	assert.Lenf(t, got, 1, "outbox after retry: got %d messages, want 1", len(got))
}

func TestNotifierClose(t *testing.T) {
	// Registered first, so it runs after every other cleanup.
	t.Cleanup(func() { goleak.VerifyNone(t) })
	srv := newHookServer(t, 200)
	rec := &notify.Recorder{Delay: 10 * time.Millisecond}
	o, path := mustOpenOutbox(t)
	n := notify.NewNotifier(o, slog.New(slog.DiscardHandler), rec, notify.NewWebhook(srv.URL, fastOptions), notify.NewLog(slog.New(slog.DiscardHandler)))
	msgs := []notify.Message{broadcast("sd1"), ping("sd1", "s1"), ping("sd1", "s2")}
	for _, m := range msgs {
		require.NoErrorf(t, n.Send(context.Background(), m), "Send")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	require.NoErrorf(t, n.Close(ctx), "Close")
	// Close flushed first.
	got := ids(rec.Messages())
	assert.Truef(t, slices.Equal(got, ids(msgs)), "recorder: got %v, want %v", got, ids(msgs))
	assert.Equal(t, int64(len(msgs)), srv.hits.Load(), "webhook: requests")
	err := n.Send(context.Background(), ping("sd1", "s3"))
	assert.ErrorIsf(t, err, notify.ErrClosed, "Send after Close: got %v, want ErrClosed", err)
	assert.NoErrorf(t, n.Close(ctx), "second Close")
	assert.ErrorIsf(t, o.Send(context.Background(), ping("sd1", "s4")), os.ErrClosed, "outbox not closed: Send got")
	got = ids(mustReadOutbox(t, path))
	assert.Truef(t, slices.Equal(got, ids(msgs)), "outbox: got %v, want %v", got, ids(msgs))
	srv.Close()
	goleak.VerifyNone(t)
}

func TestNotifierCloseIdle(t *testing.T) {
	t.Cleanup(func() { goleak.VerifyNone(t) })
	o, _ := mustOpenOutbox(t)
	n := notify.NewNotifier(o, nil, &notify.Recorder{}, &notify.Recorder{})
	require.NoErrorf(t, n.Close(context.Background()), "Close")
	o2, _ := mustOpenOutbox(t)
	require.NoErrorf(t, notify.NewNotifier(o2, nil).Close(context.Background()), "Close without sinks")
}

// TestCloseReturnsByDeadlineWhenSinkIgnoresCtx: a sink whose Send never
// returns, whatever its ctx, cannot keep Close past its deadline; what it
// held is logged once and is in the outbox.
func TestCloseReturnsByDeadlineWhenSinkIgnoresCtx(t *testing.T) {
	t.Cleanup(func() { goleak.VerifyNone(t) })
	release := make(chan struct{})
	t.Cleanup(func() { close(release) }) // runs before goleak
	stuck := &notify.Recorder{Hook: func(context.Context, notify.Message) error {
		<-release // ignores ctx
		return nil
	}}
	o, path := mustOpenOutbox(t)
	logger, logs := newLogger()
	n := notify.NewNotifier(o, logger, stuck)
	msgs := []notify.Message{ping("sd1", "s1"), ping("sd1", "s2")}
	for _, m := range msgs {
		require.NoErrorf(t, n.Send(context.Background(), m), "Send")
	}
	err := closeWithin(t, n, 200*time.Millisecond)
	assert.ErrorIsf(t, err, context.DeadlineExceeded, "Close: got %v, want context.DeadlineExceeded", err)
	requireUndeliveredLoggedAndKept(t, logs, path, msgs)
	err = n.Send(context.Background(), ping("sd1", "s3"))
	assert.ErrorIsf(t, err, notify.ErrClosed, "Send after Close: got %v, want ErrClosed", err)
}

// TestNotifierWebhookDeadline checks that a webhook that is down, slow or
// failing cannot hold Flush past its deadline, and that nothing is lost
// silently: every message is in the outbox and has a WARN line.
func TestNotifierWebhookDeadline(t *testing.T) {
	slow, _ := newSlowServer(t)
	failing := newHookServer(t, 500)
	tests := []struct {
		name string
		url  string
	}{
		{"down", newDownURL(t)},
		{"slow", slow.URL},
		{"failing", failing.URL},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			// Default options: 1s per try, 100ms base backoff, 5 tries.
			n, path, logs := newNotifier(t, notify.NewWebhook(tt.url, notify.WebhookOptions{}))
			msgs := []notify.Message{broadcast("sd1"), ping("sd1", "s1"), ping("sd1", "s2"), ping("sd1", "s3")}
			for _, m := range msgs {
				require.NoErrorf(t, n.Send(context.Background(), m), "Send")
			}
			err := flush(t, n, 1500*time.Millisecond)
			if err != nil {
				assert.ErrorIs(t, err, context.DeadlineExceeded, "Flush: want nil or context.DeadlineExceeded")
			}
			got := ids(mustReadOutbox(t, path))
			assert.Truef(t, slices.Equal(got, ids(msgs)), "outbox: got %v, want %v", got, ids(msgs))
			for _, m := range msgs {
				got := logs.find(t, slog.LevelWarn, undeliveredMsg, m.ID())
				assert.Lenf(t, got, 1, "got %d WARN lines for %s, want 1", len(got), m.ID())
			}
		})
	}
}

func TestNewNotifierPanicsOnNil(t *testing.T) {
	o, _ := mustOpenOutbox(t)
	tests := []struct {
		name   string
		outbox *notify.Outbox
		sinks  []notify.Sink
	}{
		{"nil outbox", nil, nil},
		{"nil sink", o, []notify.Sink{&notify.Recorder{}, nil}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			defer func() {
				assert.NotNil(t, recover(), "no panic")
			}()
			notify.NewNotifier(tt.outbox, nil, tt.sinks...)
		})
	}
}

// TestSinkOnlyReturningOnCancelIsBoundedByNotifyTimeout: a sink that never
// delivers but returns once its ctx is cancelled (a hanging webhook) is
// cancelled when the notify timeout given to Close passes; Close returns,
// each message is logged once, and the sink's goroutines exit.
func TestSinkOnlyReturningOnCancelIsBoundedByNotifyTimeout(t *testing.T) {
	hanging, hits := newSlowServer(t)
	tests := []struct {
		name string
		sink func(cancelled chan<- struct{}) notify.Sink
	}{
		{"recorder", func(cancelled chan<- struct{}) notify.Sink {
			var once sync.Once
			return &notify.Recorder{Hook: func(ctx context.Context, _ notify.Message) error {
				<-ctx.Done()
				once.Do(func() { close(cancelled) })
				return ctx.Err()
			}}
		}},
		{"hanging webhook", func(cancelled chan<- struct{}) notify.Sink {
			close(cancelled) // observed through the second Close below
			return notify.NewWebhook(hanging.URL, notify.WebhookOptions{TryTimeout: time.Minute})
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			const notifyTimeout = 300 * time.Millisecond
			cancelled := make(chan struct{})
			o, path := mustOpenOutbox(t)
			logger, logs := newLogger()
			n := notify.NewNotifier(o, logger, tt.sink(cancelled))
			msgs := []notify.Message{broadcast("sd1"), ping("sd1", "s1"), ping("sd1", "s2")}
			for _, m := range msgs {
				require.NoErrorf(t, n.Send(context.Background(), m), "Send")
			}
			err := closeWithin(t, n, notifyTimeout)
			assert.ErrorIsf(t, err, context.DeadlineExceeded, "Close: got %v, want context.DeadlineExceeded", err)
			within(t, 5*time.Second, cancelled, "cancelling the sink's ctx")
			// The goroutines exit once their Send returned.
			ctx2, cancel2 := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel2()
			assert.NoErrorf(t, n.Close(ctx2), "second Close (waits for the sink's goroutines)")
			requireUndeliveredLoggedAndKept(t, logs, path, msgs)
		})
	}
	assert.NotZero(t, hits.Load(), "the hanging webhook was never called")
}

// TestNotifierObserverCountsEachOutcomeOnce: the Observer hears the outcome
// of every (message, sink) pair exactly once, the outbox included, and the
// webhook's own Observer adds only its retries.
func TestNotifierObserverCountsEachOutcomeOnce(t *testing.T) {
	var obs observed
	srv := newHookServer(t, 500, 200) // the first try of the first message fails
	var naps sleeps
	hook := notify.NewWebhook(srv.URL, notify.WebhookOptions{Observer: obs.observe, Sleep: naps.sleep, Concurrency: 1})
	failing := &notify.Recorder{Hook: func(context.Context, notify.Message) error { return errors.New("boom") }}
	stuck := &notify.Recorder{Hook: func(ctx context.Context, _ notify.Message) error {
		<-ctx.Done()
		return ctx.Err()
	}}
	o, _ := mustOpenOutbox(t)
	n := notify.NewNotifierWith(o, notify.NotifierOptions{Logger: slog.New(slog.DiscardHandler), Observer: obs.observe},
		hook, failing, stuck, notify.NewLog(slog.New(slog.DiscardHandler)))
	t.Cleanup(func() { _ = n.Close(context.Background()) })
	msgs := []notify.Message{broadcast("sd1"), ping("sd1", "s1")}
	for _, m := range msgs {
		require.NoErrorf(t, n.Send(context.Background(), m), "Send")
	}
	err := flush(t, n, 300*time.Millisecond)
	require.ErrorIsf(t, err, context.DeadlineExceeded, "Flush: got %v, want context.DeadlineExceeded (the stuck sink)", err)
	for _, c := range []struct {
		sink, result string
		want         int
	}{
		{"outbox", notify.ResultDelivered, 2},
		{"webhook", notify.ResultDelivered, 2},
		{"webhook", notify.ResultRetried, 1},
		{"webhook", notify.ResultFailed, 0},
		{"log", notify.ResultDelivered, 2},
		{"recorder", notify.ResultFailed, 2},      // failing
		{"recorder", notify.ResultUndelivered, 2}, // stuck
		{"recorder", notify.ResultDelivered, 0},
	} {
		got := obs.count(c.sink, c.result)
		assert.Equalf(t, c.want, got, "observer %s/%s: got %d, want %d", c.sink, c.result, got, c.want)
	}
}

// closeWithin runs n.Close with a timeout of d and fails the test when
// Close does not return within 5s (a sink ignoring its ctx must not hold it).
func closeWithin(t *testing.T, n *notify.Notifier, d time.Duration) error {
	t.Helper()
	return callWithin(t, n.Close, d, 5*time.Second, "Close")
}

// requireUndeliveredLoggedAndKept checks what a Close past its deadline
// promises: each undelivered message logged once at WARN, and all of them
// in the outbox.
func requireUndeliveredLoggedAndKept(t *testing.T, logs *logBuffer, path string, msgs []notify.Message) {
	t.Helper()
	for _, m := range msgs {
		got := logs.find(t, slog.LevelWarn, undeliveredMsg, m.ID())
		assert.Lenf(t, got, 1, "got %d WARN lines for %s, want 1", len(got), m.ID())
	}
	got := ids(mustReadOutbox(t, path))
	assert.Truef(t, slices.Equal(got, ids(msgs)), "outbox: got %v, want %v", got, ids(msgs))
}

// TestGivenUpMessageIsNotSentLater: a message a Flush gave up on while it
// was still queued (its sink was stuck on an earlier one) is logged once as
// not delivered and never handed to the sink afterwards, even once the sink
// is free again; a message sent later goes through.
func TestGivenUpMessageIsNotSentLater(t *testing.T) {
	release := make(chan struct{})
	stuck := &notify.Recorder{Hook: func(_ context.Context, m notify.Message) error {
		if m.Target == "s1" {
			<-release // ignores ctx
		}
		return nil
	}}
	n, _, logs := newNotifier(t, stuck)
	first, queued, later := ping("sd1", "s1"), ping("sd1", "s2"), ping("sd1", "s3")
	require.NoError(t, n.SendAll(context.Background(), []notify.Message{first, queued}))
	require.ErrorIs(t, flush(t, n, 200*time.Millisecond), context.DeadlineExceeded)
	close(release)

	// The sink's goroutine passes the given-up message before it reaches
	// the later one.
	require.NoError(t, n.Send(context.Background(), later))
	require.NoError(t, flush(t, n, 5*time.Second))

	assert.Equal(t, ids([]notify.Message{first, later}), ids(stuck.Messages()), "the given-up message reached the sink")
	assert.Equal(t, 2, stuck.Calls())
	for _, m := range []notify.Message{first, queued} {
		assert.Len(t, logs.find(t, slog.LevelWarn, undeliveredMsg, m.ID()), 1, "WARN lines for %s", m.ID())
	}
	assert.Empty(t, logs.find(t, slog.LevelWarn, undeliveredMsg, later.ID()))
}

// TestCloseDeadlineBoundsAttemptsStartedAfterIt: an attempt that starts
// after Close was called carries Close's deadline, so a webhook whose
// receiver asks for a Retry-After past it gives up at once (the message is
// kept in the pending file) and Close returns without waiting out its
// timeout.
func TestCloseDeadlineBoundsAttemptsStartedAfterIt(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Idempotency-Key") == ping("sd1", "s1").ID() {
			select {
			case <-release:
			case <-r.Context().Done():
			}
			return
		}
		w.Header().Set("Retry-After", "50")
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	t.Cleanup(srv.Close)
	pending := pendingPath(t)
	hook := notify.NewWebhook(srv.URL, notify.WebhookOptions{TryTimeout: time.Minute, Concurrency: 1, PendingPath: pending})
	o, _ := mustOpenOutbox(t)
	logger, logs := newLogger()
	n := notify.NewNotifier(o, logger, hook)
	busy, next := ping("sd1", "s1"), ping("sd1", "s2")
	require.NoError(t, n.SendAll(context.Background(), []notify.Message{busy, next}))

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	closed := make(chan error, 1)
	go func() { closed <- n.Close(ctx) }()
	// Close has begun once a repeat is refused rather than ignored.
	for n.Send(context.Background(), busy) == nil {
		select {
		case <-ctx.Done():
			require.Fail(t, "Close did not begin")
		case <-time.After(time.Millisecond):
		}
	}
	close(release) // the webhook's goroutine now starts on next

	var err error
	select {
	case err = <-closed:
	case <-time.After(10 * time.Second):
		require.Fail(t, "Close did not return")
	}
	require.NoError(t, err, "Close waited out its deadline: the attempt on %s did not carry it", next.ID())
	assert.Equal(t, []string{next.ID()}, ids(mustReadOutbox(t, pending)), "pending file")
	assert.Len(t, logs.find(t, slog.LevelWarn, undeliveredMsg, next.ID()), 1)
}

// TestSendRacingCloseIsLoggedOnce: a Send still recording its message in
// the outbox when Close began (after Close's flush looked at the queues)
// is given up on by Close like the rest: logged once at WARN, counted as
// undelivered, never left unresolved.
func TestSendRacingCloseIsLoggedOnce(t *testing.T) {
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	stuck := &notify.Recorder{Hook: func(_ context.Context, m notify.Message) error {
		if m.Target == "s0" {
			<-release // ignores ctx
		}
		return nil
	}}
	o, path := mustOpenOutbox(t)
	logger, logs := newLogger()
	var obs observed
	n := notify.NewNotifierWith(o, notify.NotifierOptions{Logger: logger, Observer: obs.observe}, stuck)
	busy, racing := ping("sd1", "s0"), ping("sd1", "s1")
	require.NoError(t, n.Send(context.Background(), busy))

	// The racing Send's outbox fsync waits for the test.
	inSync, resume := make(chan struct{}), make(chan struct{})
	var once sync.Once
	homefile.SetSyncHook(func(p string) {
		if p == path {
			once.Do(func() {
				close(inSync)
				<-resume
			})
		}
	})
	t.Cleanup(func() { homefile.SetSyncHook(nil) })
	sent := make(chan error, 1)
	go func() { sent <- n.Send(context.Background(), racing) }()
	within(t, 5*time.Second, inSync, "the racing Send's fsync")

	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	closed := make(chan error, 1)
	go func() { closed <- n.Close(ctx) }()
	time.Sleep(200 * time.Millisecond) // let Close's flush start waiting for busy
	close(resume)

	for _, ch := range []chan error{sent, closed} {
		select {
		case err := <-ch:
			if err != nil {
				assert.Truef(t, errors.Is(err, notify.ErrClosed) || errors.Is(err, context.DeadlineExceeded), "got %v, want nil, ErrClosed or context.DeadlineExceeded", err)
			}
		case <-time.After(10 * time.Second):
			require.Fail(t, "Send or Close did not return")
		}
	}
	for _, m := range []notify.Message{busy, racing} {
		assert.Len(t, logs.find(t, slog.LevelWarn, undeliveredMsg, m.ID()), 1, "WARN lines for %s", m.ID())
	}
	assert.Equal(t, 2, obs.count("recorder", notify.ResultUndelivered))
	assert.Equal(t, ids([]notify.Message{busy, racing}), ids(mustReadOutbox(t, path)))
}
