package notify_test

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"pgregory.net/rapid"

	"github.com/quiesce-dev/quiesce/notify"
)

// TestPropertyExactlyOncePerSink checks invariant I6 from notify's side: for
// any sequence of Sends (sequential or concurrent, with repeated IDs) and
// Flushes, after a Flush every distinct message ID is in the outbox exactly
// once and was delivered to every sink exactly once, and every sink saw the
// messages in outbox order. Configure with RAPID_CHECKS and RAPID_STEPS.
func TestPropertyExactlyOncePerSink(t *testing.T) {
	dir := t.TempDir()
	var run atomic.Int64
	kinds := []notify.Kind{notify.KindShutdownBroadcast, notify.KindSessionInterrupted}
	genMessage := rapid.Custom(func(t *rapid.T) notify.Message {
		kind := rapid.SampledFrom(kinds).Draw(t, "kind")
		target := notify.HomeTarget
		if kind == notify.KindSessionInterrupted {
			target = rapid.SampledFrom([]string{"s1", "s2", "s3", "s/4"}).Draw(t, "session")
		}
		return notify.Message{
			Kind:       kind,
			Target:     target,
			ShutdownID: rapid.SampledFrom([]string{"sd1", "sd2"}).Draw(t, "shutdown"),
		}
	})

	rapid.Check(t, func(t *rapid.T) {
		path := filepath.Join(dir, fmt.Sprintf("outbox-%d.jsonl", run.Add(1)))
		o, err := notify.OpenOutbox(path)
		require.NoErrorf(t, err, "OpenOutbox")
		plain := &notify.Recorder{}
		yielding := &notify.Recorder{Hook: func(context.Context, notify.Message) error {
			runtime.Gosched()
			return nil
		}}
		n := notify.NewNotifier(o, slog.New(slog.DiscardHandler), plain, yielding)
		defer func() {
			assert.NoErrorf(t, n.Close(context.Background()), "Close")
		}()
		ctx := context.Background()
		want := make(map[string]bool) // distinct IDs sent

		// checkDelivered asserts the property; call it only after a Flush
		// with no Send in progress.
		checkDelivered := func(t *rapid.T) {
			sent := ids(n.Sent())
			got := ids(mustReadOutboxRapid(t, path))
			require.Truef(t, slices.Equal(got, sent), "outbox %v, want Sent %v", got, sent)
			require.Lenf(t, sent, len(want), "Sent has %d messages, want %d distinct", len(sent), len(want))
			for _, id := range sent {
				require.Truef(t, want[id], "Sent has %s, never sent", id)
			}
			for name, r := range map[string]*notify.Recorder{"plain": plain, "yielding": yielding} {
				got := ids(r.Messages())
				require.Truef(t, slices.Equal(got, sent), "%s sink got %v, want %v", name, got, sent)
			}
		}
		flush := func(t *rapid.T) {
			fctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			require.NoErrorf(t, n.Flush(fctx), "Flush")
		}

		t.Repeat(map[string]func(*rapid.T){
			"send": func(t *rapid.T) {
				m := genMessage.Draw(t, "message")
				require.NoErrorf(t, n.Send(ctx, m), "Send(%s)", m.ID())
				want[m.ID()] = true
			},
			"concurrent sends": func(t *rapid.T) {
				msgs := rapid.SliceOfN(genMessage, 2, 4).Draw(t, "messages")
				var wg sync.WaitGroup
				errs := make([]error, len(msgs))
				for i, m := range msgs {
					wg.Go(func() { errs[i] = n.Send(ctx, m) })
				}
				wg.Wait()
				for i, m := range msgs {
					require.NoErrorf(t, errs[i], "Send(%s)", m.ID())
					want[m.ID()] = true
				}
			},
			"flush": func(t *rapid.T) {
				flush(t)
				checkDelivered(t)
			},
			"": func(t *rapid.T) {
				// Sent never holds an ID twice, flushed or not.
				sent := ids(n.Sent())
				slices.Sort(sent)
				require.Lenf(t, slices.Compact(sent), len(n.Sent()), "Sent holds a duplicate: %v", ids(n.Sent()))
			},
		})
		flush(t)
		checkDelivered(t)
	})
}

// mustReadOutboxRapid reads the outbox at path or fails the check.
func mustReadOutboxRapid(t *rapid.T, path string) []notify.Message {
	msgs, err := notify.ReadOutbox(path)
	require.NoErrorf(t, err, "ReadOutbox")
	return msgs
}
