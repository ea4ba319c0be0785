package main_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

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
		require.Fail(t, fmt.Sprintf("still running %v after SIGTERM", bound))
	}
	t.Logf("exited %v after SIGTERM", time.Since(begin).Round(time.Millisecond))
	await(t, inflight)
}
