package notify_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/quiesce-dev/quiesce/notify"
)

// TestSendRacingCloseReportsWhatTheSinksGot: a Send racing Close reports
// its messages sent (nil, or ErrNotRecorded: "queued for the other sinks")
// only when a sink took them: the outbox recorded them, since the other
// sinks are closed before it. A Send that no sink took is reported as not
// sent, so a shutdown's report never claims a broadcast nobody got; and a
// Send reported not sent never reached the other sink. The race is run
// many times; Close and Send meet at random points.
func TestSendRacingCloseReportsWhatTheSinksGot(t *testing.T) {
	const iterations = 400
	outcomes := map[string]int{}
	for i := range iterations {
		path := filepath.Join(t.TempDir(), fmt.Sprintf("outbox-%d.jsonl", i))
		o, err := notify.OpenOutbox(path)
		require.NoError(t, err)
		rec := &notify.Recorder{}
		n := notify.NewNotifier(o, slog.New(slog.DiscardHandler), rec)
		// A batch, as a shutdown's interrupt pings are: Send takes long
		// enough for Close to overtake it at any point.
		msgs := []notify.Message{broadcast("sd1")}
		for s := range 64 {
			msgs = append(msgs, ping("sd1", fmt.Sprintf("s%d", s)))
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		sent := make(chan error, 1)
		go func() { sent <- n.SendAll(ctx, msgs) }()
		closeErr := n.Close(ctx)
		var sendErr error
		select {
		case sendErr = <-sent:
		case <-ctx.Done():
			require.Fail(t, "SendAll did not return")
		}
		cancel()
		require.NoError(t, closeErr)

		recorded, err := notify.ReadOutbox(path)
		require.NoError(t, err)
		reportedSent := sendErr == nil || errors.Is(sendErr, notify.ErrNotRecorded)
		took := len(recorded) > 0 || len(rec.Messages()) > 0
		switch {
		case sendErr == nil:
			outcomes["sent"]++
		case errors.Is(sendErr, notify.ErrNotRecorded):
			outcomes["sent, not recorded"]++
		case len(recorded) > 0:
			outcomes["recorded only, not sent"]++
		default:
			outcomes["not sent"]++
		}
		if reportedSent {
			require.Truef(t, took, "iteration %d: SendAll reported the messages sent (%v), but no sink took them", i, sendErr)
		} else {
			require.ErrorIsf(t, sendErr, notify.ErrClosed, "iteration %d: only Close makes a Send fail here", i)
			require.Zerof(t, rec.Calls(), "iteration %d: reported not sent (%v), but the recorder got them", i, sendErr)
		}
	}
	t.Logf("outcomes over %d races: %v", iterations, outcomes)
}
