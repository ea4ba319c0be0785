package notify_test

import (
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/quiesce-dev/quiesce/notify"
)

// TestCountPendingReadsTheFile: CountPending makes Pending the number of
// messages the pending file holds before any redelivery round; without a
// file it is 0, without a PendingPath it does nothing.
func TestCountPendingReadsTheFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "webhook.pending.jsonl")
	opts := notify.WebhookOptions{PendingPath: path}
	fresh := notify.NewWebhook("http://127.0.0.1:1", opts)
	require.NoError(t, fresh.CountPending())
	require.Zero(t, fresh.Pending(), "no file: nothing pending")

	msgs := []notify.Message{broadcast("sd1"), ping("sd1", "a"), ping("sd1", "b")}
	require.NoError(t, notify.NewWebhook("http://127.0.0.1:1", opts).Keep(msgs))
	next := notify.NewWebhook("http://127.0.0.1:1", opts)
	require.Zero(t, next.Pending(), "not read yet")
	require.NoError(t, next.CountPending())
	require.Equal(t, len(msgs), next.Pending())

	require.NoError(t, notify.NewWebhook("http://127.0.0.1:1", notify.WebhookOptions{}).CountPending())
}
