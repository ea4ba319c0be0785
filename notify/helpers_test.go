package notify_test

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/quiesce-dev/quiesce/internal/logbuf"
	"github.com/quiesce-dev/quiesce/notify"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// logBuffer collects JSON log lines; safe for concurrent use.
type logBuffer struct{ logbuf.Buffer }

// records returns the log lines decoded.
func (l *logBuffer) records(tb testing.TB) []map[string]any {
	tb.Helper()
	recs, err := l.Records()
	require.NoError(tb, err)
	return recs
}

// find returns the records at level with message msg and the given id.
func (l *logBuffer) find(tb testing.TB, level slog.Level, msg, id string) []map[string]any {
	tb.Helper()
	var out []map[string]any
	for _, rec := range l.records(tb) {
		if rec["level"] == level.String() && rec["msg"] == msg && rec["id"] == id {
			out = append(out, rec)
		}
	}
	return out
}

// newLogger returns a DEBUG-level JSON logger writing into the returned buffer.
func newLogger() (*slog.Logger, *logBuffer) {
	buf := &logBuffer{}
	return slog.New(slog.NewJSONHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug})), buf
}

// mustOpenOutbox opens an outbox in a fresh temporary directory; the test
// closes it at the end.
func mustOpenOutbox(tb testing.TB) (*notify.Outbox, string) {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), "outbox.jsonl")
	o, err := notify.OpenOutbox(path)
	require.NoErrorf(tb, err, "OpenOutbox")
	tb.Cleanup(func() { _ = o.Close() })
	return o, path
}

// mustReadOutbox reads the outbox at path or fails the test.
func mustReadOutbox(tb testing.TB, path string) []notify.Message {
	tb.Helper()
	msgs, err := notify.ReadOutbox(path)
	require.NoErrorf(tb, err, "ReadOutbox")
	return msgs
}

// ping returns an interrupt message for session in shutdown shutdownID.
func ping(shutdownID, session string) notify.Message {
	return notify.Message{
		At:         time.Date(2026, 11, 23, 10, 0, 0, 123456789, time.UTC),
		Kind:       notify.KindSessionInterrupted,
		Target:     session,
		Text:       notify.InterruptText(session),
		ShutdownID: shutdownID,
	}
}

// broadcast returns the home broadcast of shutdown shutdownID.
func broadcast(shutdownID string) notify.Message {
	return notify.Message{
		At:         time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC),
		Kind:       notify.KindShutdownBroadcast,
		Target:     notify.HomeTarget,
		Text:       notify.BroadcastText(),
		ShutdownID: shutdownID,
	}
}

// ids returns the IDs of msgs.
func ids(msgs []notify.Message) []string {
	out := make([]string, len(msgs))
	for i, m := range msgs {
		out[i] = m.ID()
	}
	return out
}

// within fails the test unless done is closed before d passes.
func within(tb testing.TB, d time.Duration, done <-chan struct{}, what string) {
	tb.Helper()
	select {
	case <-done:
	case <-time.After(d):
		require.Fail(tb, fmt.Sprintf("%s: not done after %v", what, d))
	}
}

// callWithin calls fn with a context whose timeout is d and fails the test
// unless fn returns within bound. It returns fn's error.
func callWithin(tb testing.TB, fn func(context.Context) error, d, bound time.Duration, what string) error {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	done := make(chan struct{})
	var err error
	go func() {
		defer close(done)
		err = fn(ctx)
	}()
	within(tb, bound, done, what)
	return err
}

// observed counts Observer calls by sink and result; safe for concurrent
// use.
type observed struct {
	mu     sync.Mutex
	counts map[[2]string]int
}

// observe is a notify.Observer.
func (o *observed) observe(sink, result string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.counts == nil {
		o.counts = make(map[[2]string]int)
	}
	o.counts[[2]string{sink, result}]++
}

// count returns how many times sink was observed with result.
func (o *observed) count(sink, result string) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.counts[[2]string{sink, result}]
}

// sleeps records the waits a Webhook asks for, without waiting; safe for
// concurrent use.
type sleeps struct {
	mu sync.Mutex
	d  []time.Duration
}

// sleep is a WebhookOptions.Sleep that records d and returns at once.
func (s *sleeps) sleep(ctx context.Context, d time.Duration) error {
	s.mu.Lock()
	s.d = append(s.d, d)
	s.mu.Unlock()
	return ctx.Err()
}

// got returns the waits asked for so far.
func (s *sleeps) got() []time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.d)
}

// sortedIDs returns the IDs of msgs, sorted.
func sortedIDs(msgs []notify.Message) []string {
	out := ids(msgs)
	slices.Sort(out)
	return out
}
