package notify_test

import (
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/quiesce-dev/quiesce/internal/homefile"
	"github.com/quiesce-dev/quiesce/notify"
)

// TestPendingKeepFsyncsTheMessages: a message Keep records for
// redelivery is fsynced with the pending file before Keep returns (a
// crash right after must not lose what the webhook could not deliver).
// Each fsync of the pending file is checked for what it made durable.
func TestPendingKeepFsyncsTheMessages(t *testing.T) {
	pending := pendingPath(t)
	w := notify.NewWebhook("http://unused.invalid", notify.WebhookOptions{PendingPath: pending})
	var mu sync.Mutex
	var durable []string // the pending file's content at each of its fsyncs
	homefile.SetSyncHook(func(p string) {
		if p != pending {
			return
		}
		data, err := os.ReadFile(p)
		require.NoError(t, err)
		mu.Lock()
		durable = append(durable, string(data))
		mu.Unlock()
	})
	t.Cleanup(func() { homefile.SetSyncHook(nil) })

	for _, m := range []notify.Message{ping("sd1", "s1"), broadcast("sd2")} {
		require.NoError(t, w.Keep([]notify.Message{m}))
		mu.Lock()
		last := ""
		if len(durable) > 0 {
			last = durable[len(durable)-1]
		}
		mu.Unlock()
		assert.True(t, strings.Contains(last, m.ID()), "%s kept but not fsynced with the pending file", m.ID())
	}
}
