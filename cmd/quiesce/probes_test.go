package main_test

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/quiesce-dev/quiesce/notify"
)

// on a taken address run exits 78 having changed nothing: the gateway
// never started, so it never wrote its state file.
func TestE2EAddrInUseChangesNothing(t *testing.T) {
	t.Parallel()
	first := startGateway(t, newHome(t), fakeProcRoot(t, "boot-m", 100))
	home := newHome(t)
	second := startProcess(t, home, fakeProcRoot(t, "boot-m", 100), "--addr", strings.TrimPrefix(first.url, "http://"))
	require.Equal(t, 78, second.wait())
	_, err := os.Stat(filepath.Join(home, "gateway_state.json"))
	assert.True(t, os.IsNotExist(err), "no state file: the gateway must not start before the address is claimed")
	assert.NotContains(t, second.stderr.String(), `"msg":"gateway started"`)
}

// the process exits within drain + notify + 1s even when the notify
// phase uses its whole budget (a hung webhook) and a client trickles a body.
func TestE2EExitBoundWithHungWebhookAndSlowUpload(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer hook.Close()
	defer close(release)
	home := newHome(t)
	p := startGateway(t, home, fakeProcRoot(t, "boot-r6", 100),
		"--agent-work", "1m", "--drain-timeout", "1s", "--notify-timeout", "1s", "--notify-webhook", hook.URL)
	inflight := p.turnAsync("alice", "long")
	p.waitInFlight(1)
	slowUpload(t, p)
	begin := time.Now()
	p.signal(syscall.SIGTERM)
	const bound = 3*time.Second + 1*time.Second // drain + notify + 1s, plus 1s for scheduling
	select {
	case <-p.done:
	case <-time.After(bound):
		t.Fatalf("still running %v after SIGTERM", bound)
	}
	t.Logf("exited %v after SIGTERM", time.Since(begin).Round(time.Millisecond))
	await(t, inflight)
}

// what the webhook could not deliver is kept in the home and delivered
// at the next start, with the same Idempotency-Key.
func TestE2EWebhookPendingRedeliveredAtNextStart(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	up := false
	var keys []string
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		if !up {
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		keys = append(keys, r.Header.Get("Idempotency-Key"))
	}))
	defer hook.Close()
	home := newHome(t)
	proc := fakeProcRoot(t, "boot-r4", 100)
	p := startGateway(t, home, proc, "--notify-timeout", "1s", "--notify-webhook", hook.URL)
	p.signal(syscall.SIGTERM)
	require.Equal(t, 0, p.wait())
	b := outbox(t, home, notify.KindShutdownBroadcast)
	require.Len(t, b, 1)
	_, err := os.Stat(filepath.Join(home, "webhook.pending.jsonl"))
	require.NoError(t, err, "the undelivered broadcast is kept in the home")

	mu.Lock()
	up = true
	mu.Unlock()
	p2 := startGateway(t, home, proc, "--notify-webhook", hook.URL)
	eventually(t, 10*time.Second, "the kept broadcast is redelivered", func() bool {
		mu.Lock()
		defer mu.Unlock()
		for _, k := range keys {
			if k == b[0].ID() {
				return true
			}
		}
		return false
	})
	p2.signal(syscall.SIGTERM)
	require.Equal(t, 0, p2.wait())
}
