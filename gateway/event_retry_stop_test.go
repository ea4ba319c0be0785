package gateway

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

// TestEventRetryTimerEndsWithTheGateway: an event waiting out a long
// retry backoff when the gateway stops leaves no goroutine behind: the
// retry timer ends with the gateway, it does not outlive it.
func TestEventRetryTimerEndsWithTheGateway(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	home, proc := t.TempDir(), t.TempDir()
	writeProcRoot(t, proc, "boot-a", 100)
	agent := newEventAgent(map[string]int{"failing": -1})
	g, err := New(Config{Home: home, ProcRoot: proc, Agent: agent, EventRetryFor: time.Hour,
		DrainTimeout: time.Hour, NotifyTimeout: time.Second, WatchInterval: -1, Logger: quietLogger()})
	require.NoError(t, err)
	g.eventBackoffBase = time.Hour // the retry waits far beyond the test
	require.NoError(t, g.Start(context.Background()))

	r, err := g.Event(context.Background(), "s", "failing")
	require.NoError(t, err)
	require.Equal(t, "failing", recv(t, agent.ran))
	eventually(t, "retry scheduled", func() bool {
		g.evMu.Lock()
		defer g.evMu.Unlock()
		st := g.events[r.ID]
		return st != nil && !st.retryAt.IsZero()
	})

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, err = g.Shutdown(ctx, false)
	require.NoError(t, err)
	require.NoError(t, g.Close())
}
