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
		if err != nil {
			t.Fatalf("OpenOutbox: %v", err)
		}
		plain := &notify.Recorder{}
		yielding := &notify.Recorder{Hook: func(context.Context, notify.Message) error {
			runtime.Gosched()
			return nil
		}}
		n := notify.NewNotifier(o, slog.New(slog.DiscardHandler), plain, yielding)
		defer func() {
			if err := n.Close(context.Background()); err != nil {
				t.Errorf("Close: %v", err)
			}
		}()
		ctx := context.Background()
		want := make(map[string]bool) // distinct IDs sent

		// checkDelivered asserts the property; call it only after a Flush
		// with no Send in progress.
		checkDelivered := func(t *rapid.T) {
			sent := ids(n.Sent())
			got := ids(mustReadOutboxRapid(t, path))
			if !slices.Equal(got, sent) {
				t.Fatalf("outbox %v, want Sent %v", got, sent)
			}
			if len(sent) != len(want) {
				t.Fatalf("Sent has %d messages, want %d distinct", len(sent), len(want))
			}
			for _, id := range sent {
				if !want[id] {
					t.Fatalf("Sent has %s, never sent", id)
				}
			}
			for name, r := range map[string]*notify.Recorder{"plain": plain, "yielding": yielding} {
				if got := ids(r.Messages()); !slices.Equal(got, sent) {
					t.Fatalf("%s sink got %v, want %v", name, got, sent)
				}
			}
		}
		flush := func(t *rapid.T) {
			fctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			if err := n.Flush(fctx); err != nil {
				t.Fatalf("Flush: %v", err)
			}
		}

		t.Repeat(map[string]func(*rapid.T){
			"send": func(t *rapid.T) {
				m := genMessage.Draw(t, "message")
				if err := n.Send(ctx, m); err != nil {
					t.Fatalf("Send(%s): %v", m.ID(), err)
				}
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
					if errs[i] != nil {
						t.Fatalf("Send(%s): %v", m.ID(), errs[i])
					}
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
				if len(slices.Compact(sent)) != len(n.Sent()) {
					t.Fatalf("Sent holds a duplicate: %v", ids(n.Sent()))
				}
			},
		})
		flush(t)
		checkDelivered(t)
	})
}

// mustReadOutboxRapid reads the outbox at path or fails the check.
func mustReadOutboxRapid(t *rapid.T, path string) []notify.Message {
	msgs, err := notify.ReadOutbox(path)
	if err != nil {
		t.Fatalf("ReadOutbox: %v", err)
	}
	return msgs
}
