package notify_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/quiesce-dev/quiesce/notify"
)

// pendingPath returns where a fresh home's webhook pending file goes.
func pendingPath(t *testing.T) string {
	t.Helper()
	return filepath.Join(t.TempDir(), "webhook.pending.jsonl")
}

// redeliver calls w.Redeliver with a 10s timeout and fails the test unless
// it returns by then plus a second.
func redeliver(t *testing.T, w *notify.Webhook) (delivered, left int, err error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	done := make(chan struct{})
	go func() {
		defer close(done)
		delivered, left, err = w.Redeliver(ctx)
	}()
	within(t, 11*time.Second, done, "Redeliver")
	return delivered, left, err
}

// receivedKeys returns the Idempotency-Keys srv received, sorted, and fails
// the test if one does not match its body.
func receivedKeys(t *testing.T, srv *hookServer) []string {
	t.Helper()
	srv.mu.Lock()
	defer srv.mu.Unlock()
	var keys []string
	for i, h := range srv.headers {
		key := h.Get("Idempotency-Key")
		assert.Equalf(t, srv.bodies[i].ID(), key, "request %d: Idempotency-Key %q for message %s", i+1, key, srv.bodies[i].ID())
		keys = append(keys, key)
	}
	slices.Sort(keys)
	return keys
}

// TestUndeliveredWebhookMessagesDeliveredAtNextStart: what the webhook could
// not deliver during a shutdown (given up on a dead receiver, or still in
// flight or queued when Close's deadline passed) is in the pending file
// when Close returns; at the next start a new Webhook on the same file
// redelivers it with the same Idempotency-Keys and empties the file.
func TestUndeliveredWebhookMessagesDeliveredAtNextStart(t *testing.T) {
	hanging, _ := newSlowServer(t)
	tests := []struct {
		name string
		url  string
		opt  notify.WebhookOptions
	}{
		{"down", newDownURL(t), notify.WebhookOptions{MaxTries: 2, BaseBackoff: time.Millisecond}},
		{"hanging", hanging.URL, notify.WebhookOptions{TryTimeout: time.Minute, Concurrency: 2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pending := pendingPath(t)
			opt := tt.opt
			opt.PendingPath = pending
			o, _ := mustOpenOutbox(t)
			logger, logs := newLogger()
			n := notify.NewNotifier(o, logger, notify.NewWebhook(tt.url, opt))
			msgs := []notify.Message{broadcast("sd1"), ping("sd1", "s1"), ping("sd1", "s2"), ping("sd1", "s3")}
			for _, m := range msgs {
				require.NoErrorf(t, n.Send(context.Background(), m), "Send")
			}
			ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
			defer cancel()
			done := make(chan struct{})
			go func() {
				defer close(done)
				_ = n.Close(ctx)
			}()
			within(t, 5*time.Second, done, "Close")
			for _, m := range msgs {
				got := logs.find(t, slog.LevelWarn, undeliveredMsg, m.ID())
				assert.Lenf(t, got, 1, "got %d WARN lines for %s, want 1", len(got), m.ID())
			}
			got := sortedIDs(mustReadOutbox(t, pending))
			require.Truef(t, slices.Equal(got, sortedIDs(msgs)), "pending file after Close: got %v, want %v", got, sortedIDs(msgs))

			// The next start: the receiver is up.
			srv := newHookServer(t, 200)
			var obs observed
			next := notify.NewWebhook(srv.URL, notify.WebhookOptions{PendingPath: pending, Observer: obs.observe})
			delivered, left, err := redeliver(t, next)
			require.NoError(t, err, "Redeliver")
			require.Equal(t, len(msgs), delivered, "Redeliver: delivered")
			require.Equal(t, 0, left, "Redeliver: left")
			got = receivedKeys(t, srv)
			assert.Truef(t, slices.Equal(got, sortedIDs(msgs)), "redelivered keys: got %v, want %v", got, sortedIDs(msgs))
			assert.Empty(t, ids(mustReadOutbox(t, pending)), "pending file after Redeliver")
			assert.Equal(t, len(msgs), obs.count("webhook", notify.ResultDelivered), "observer webhook/delivered")
			// Nothing left: a second Redeliver sends nothing.
			delivered, left, err = redeliver(t, next)
			assert.NoError(t, err, "second Redeliver")
			assert.Zero(t, delivered, "second Redeliver: delivered")
			assert.Zero(t, left, "second Redeliver: left")
			assert.Equal(t, int64(len(msgs)), srv.hits.Load(), "requests the receiver got")
		})
	}
}

// keyServer is a loopback receiver whose status for each message is
// decided by status; it records the Idempotency-Key of every message it
// accepts (2xx) and flags a key that does not match the body.
type keyServer struct {
	*httptest.Server
	mu   sync.Mutex
	keys []string
}

// newKeyServer starts a keyServer; the test closes it.
func newKeyServer(t *testing.T, status func(m notify.Message) int) *keyServer {
	t.Helper()
	s := &keyServer{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		m, err := decodeMessage(r)
		if err != nil || r.Header.Get("Idempotency-Key") != m.ID() {
			assert.Fail(t, fmt.Sprintf("request with body %s, Idempotency-Key %q (%v)", m.ID(), r.Header.Get("Idempotency-Key"), err))
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		code := status(m)
		if code >= 200 && code <= 299 {
			s.mu.Lock()
			s.keys = append(s.keys, m.ID())
			s.mu.Unlock()
		}
		w.WriteHeader(code)
	}))
	t.Cleanup(s.Close)
	return s
}

// accepted returns the keys of the messages accepted so far, sorted.
func (s *keyServer) accepted() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := slices.Clone(s.keys)
	slices.Sort(out)
	return out
}

// TestRedeliverLeavesWhatFailsAgain: Redeliver rewrites the pending file with
// exactly what it could not deliver; a later Redeliver sends only that.
// (The failing message is the last one: a round starts no message after
// a failure that may pass.)
func TestRedeliverLeavesWhatFailsAgain(t *testing.T) {
	pending := pendingPath(t)
	msgs := []notify.Message{broadcast("sd1"), ping("sd1", "s2"), ping("sd1", "s1")}
	var refuse atomic.Bool
	refuse.Store(true)
	srv := newKeyServer(t, func(m notify.Message) int {
		if m.Target == "s1" && refuse.Load() {
			return http.StatusInternalServerError
		}
		return http.StatusOK
	})
	var naps sleeps
	w := notify.NewWebhook(srv.URL, notify.WebhookOptions{PendingPath: pending, MaxTries: 2, Sleep: naps.sleep})
	require.NoErrorf(t, w.Keep(msgs), "Keep")
	delivered, left, err := redeliver(t, w)
	require.NoError(t, err, "Redeliver")
	require.Equal(t, 2, delivered, "Redeliver: delivered")
	require.Equal(t, 1, left, "Redeliver: left")
	got := ids(mustReadOutbox(t, pending))
	assert.Truef(t, slices.Equal(got, []string{msgs[2].ID()}), "pending file: got %v, want [%s]", got, msgs[2].ID())
	refuse.Store(false)
	delivered, left, err = redeliver(t, w)
	require.NoError(t, err, "second Redeliver")
	require.Equal(t, 1, delivered, "second Redeliver: delivered")
	require.Equal(t, 0, left, "second Redeliver: left")
	got, want := srv.accepted(), sortedIDs(msgs)
	assert.Truef(t, slices.Equal(got, want), "delivered keys: got %v, want %v", got, want)
}

// TestRedeliverKeepsWhatIsKeptMeanwhile: a message kept while Redeliver is
// sending (a shutdown during start-up) survives Redeliver's rewrite.
func TestRedeliverKeepsWhatIsKeptMeanwhile(t *testing.T) {
	pending := pendingPath(t)
	old, late := ping("sd0", "s1"), ping("sd1", "s9")
	var w *notify.Webhook
	var kept atomic.Bool
	srv := newKeyServer(t, func(notify.Message) int {
		if kept.CompareAndSwap(false, true) {
			assert.NoErrorf(t, w.Keep([]notify.Message{late}), "Keep during Redeliver")
		}
		return http.StatusOK
	})
	w = notify.NewWebhook(srv.URL, notify.WebhookOptions{PendingPath: pending})
	require.NoErrorf(t, w.Keep([]notify.Message{old}), "Keep")
	delivered, left, err := redeliver(t, w)
	require.NoError(t, err, "Redeliver")
	require.Equal(t, 1, delivered, "Redeliver: delivered")
	require.Equal(t, 1, left, "Redeliver: left")
	got := ids(mustReadOutbox(t, pending))
	assert.Truef(t, slices.Equal(got, []string{late.ID()}), "pending file: got %v, want [%s]", got, late.ID())
}

// TestPendingFileToleratesTornTailAndRepeats: a torn last line (a crash
// during Keep) is cut before the next append and never sent; a message
// kept twice is sent once.
func TestPendingFileToleratesTornTailAndRepeats(t *testing.T) {
	pending := pendingPath(t)
	a, b := ping("sd1", "a"), ping("sd1", "b")
	line, err := json.Marshal(a)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(pending, append(append(line, '\n'), line[:len(line)/2]...), 0o600))
	srv := newHookServer(t, 200)
	w := notify.NewWebhook(srv.URL, notify.WebhookOptions{PendingPath: pending})
	require.NoErrorf(t, w.Keep([]notify.Message{b, a}), "Keep")
	// The first Keep counts the file, and rewrites it without the repeat.
	got := ids(mustReadOutbox(t, pending))
	require.Truef(t, slices.Equal(got, []string{a.ID(), b.ID()}), "pending file: got %v", got)
	delivered, left, err := redeliver(t, w)
	require.NoError(t, err, "Redeliver")
	require.Equal(t, 2, delivered, "Redeliver: delivered")
	require.Equal(t, 0, left, "Redeliver: left")
	got = receivedKeys(t, srv)
	assert.Truef(t, slices.Equal(got, []string{a.ID(), b.ID()}), "delivered keys: got %v", got)
}

// TestRedeliverWithoutPendingFile: no PendingPath, or no file yet, is
// nothing to do and no error; Keep without a PendingPath is a no-op.
func TestRedeliverWithoutPendingFile(t *testing.T) {
	for name, path := range map[string]string{"no path": "", "no file": pendingPath(t)} {
		t.Run(name, func(t *testing.T) {
			w := notify.NewWebhook("http://unused.invalid", notify.WebhookOptions{PendingPath: path})
			if path == "" {
				assert.NoErrorf(t, w.Keep([]notify.Message{ping("sd1", "s1")}), "Keep")
			}
			delivered, left, err := redeliver(t, w)
			assert.NoError(t, err, "Redeliver")
			assert.Zero(t, delivered, "Redeliver: delivered")
			assert.Zero(t, left, "Redeliver: left")
			if path != "" {
				_, err := os.Stat(path)
				assert.ErrorIsf(t, err, os.ErrNotExist, "Redeliver created %s", path)
			}
		})
	}
}

// TestPendingFileFIFORefusedWithoutBlocking: a FIFO (or directory, or
// symlink) at the pending path makes Keep and Redeliver fail at once with
// an error naming it.
func TestPendingFileFIFORefusedWithoutBlocking(t *testing.T) {
	checkRefused(t, hostilePaths(t, "webhook.pending.jsonl"), map[string]func(string) error{
		"Keep": func(p string) error {
			return notify.NewWebhook("http://unused.invalid", notify.WebhookOptions{PendingPath: p}).Keep([]notify.Message{ping("sd1", "s1")})
		},
		"Redeliver": func(p string) error {
			_, _, err := notify.NewWebhook("http://unused.invalid", notify.WebhookOptions{PendingPath: p}).Redeliver(context.Background())
			return err
		},
	})
}
