package gateway

import (
	"context"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/quiesce-dev/quiesce/agent"
	"github.com/quiesce-dev/quiesce/fsm"
)

// a surviving same-epoch marker holds spooled events at start: none
// runs before the first reconcile has drained the gateway.
func TestSpooledEventsWaitForTheFirstReconcile(t *testing.T) {
	f := newFixture(t, nil)
	_, err := f.g.BeginDrain(context.Background(), DrainRequest{Principal: "ops"})
	require.NoError(t, err)
	r, err := f.g.Event(context.Background(), "s", "queued")
	require.NoError(t, err)
	require.True(t, r.Spooled)
	_, _ = f.shutdown(t, false)
	require.NoError(t, f.g.Close())

	agent := newGatedAgent()
	f2 := newFixture(t, func(c *Config) { c.Home, c.ProcRoot, c.Agent = f.home, f.procRoot, agent })
	time.Sleep(100 * time.Millisecond)
	assert.Empty(t, agent.startedTexts(), "no event starts while the surviving marker drains")
	assert.Equal(t, "draining", string(f2.g.State()))
	assert.Equal(t, 1, f2.g.spool.len())
}

// ignoringAgent returns a reply after it is cancelled (an agent that
// finishes its work despite the interrupt).
type ignoringAgent struct{ runs atomic.Int32 }

func (a *ignoringAgent) Run(ctx context.Context, t agent.Turn) (string, error) {
	a.runs.Add(1)
	<-ctx.Done()
	time.Sleep(20 * time.Millisecond)
	return "done anyway", nil
}

// a system turn whose agent returned a reply after a forced interrupt
// is treated as interrupted: the event stays spooled and runs again at
// the next start, though it completed.
func TestCompletedSystemTurnNeverRunsAgainAfterForce(t *testing.T) {
	home, proc := t.TempDir(), t.TempDir()
	writeProcRoot(t, proc, "boot-a", 100)
	a := &ignoringAgent{}
	cfg := Config{Home: home, ProcRoot: proc, Agent: a, WatchInterval: -1, Logger: quietLogger(),
		NotifyTimeout: 2 * time.Second}
	g, err := New(cfg)
	require.NoError(t, err)
	require.NoError(t, g.Start(context.Background()))
	_, err = g.Event(context.Background(), "a", "job")
	require.NoError(t, err)
	eventually(t, "system turn running", func() bool { return g.m.InFlight() == 1 })
	sctx, scancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer scancel()
	_, err = g.Shutdown(sctx, true)
	require.NoError(t, err)
	require.Equal(t, fsm.Stopped, g.State())
	require.NoError(t, g.Close())
	require.Equal(t, int32(1), a.runs.Load())
	require.Equal(t, 0, g.spool.len(), "the agent returned a reply, but the event is still spooled and will run again")
}

// TestInterruptedEventRunsFirstAtNextStart: two events for one session;
// the first is cut off by a forced shutdown. At the next start it runs
// before the second, not behind it.
func TestInterruptedEventRunsFirstAtNextStart(t *testing.T) {
	f := newFixture(t, nil)
	_, err := f.g.Event(context.Background(), "s", "first")
	require.NoError(t, err)
	f.agent.waitStarted(t, "s")
	r, err := f.g.Event(context.Background(), "s", "second")
	require.NoError(t, err)
	require.True(t, r.Spooled)
	_, _ = f.shutdown(t, true)
	require.NoError(t, f.g.Close())

	agent := newGatedAgent()
	f2 := newFixture(t, func(c *Config) { c.Home, c.ProcRoot, c.Agent = f.home, f.procRoot, agent })
	agent.waitStarted(t, "s")
	require.Equal(t, []string{"s:first"}, agent.startedTexts(), "the interrupted event runs first")
	agent.finish("s")
	agent.waitStarted(t, "s")
	require.Equal(t, []string{"s:first", "s:second"}, agent.startedTexts())
	agent.finish("s")
	eventually(t, "both events completed", func() bool { return f2.g.spool.len() == 0 })
}

// TestEventForBusySessionNotDroppedWhenAnotherStarts: an event for a
// session busy with a user turn waits; an event for another session
// starts meanwhile; the first is not lost and starts once its session is
// free.
func TestEventForBusySessionNotDroppedWhenAnotherStarts(t *testing.T) {
	f := newFixture(t, nil)
	out := f.startTurn(t, "a", "user turn")
	ra, err := f.g.Event(context.Background(), "a", "for a")
	require.NoError(t, err)
	require.True(t, ra.Spooled, "a is busy")
	rb, err := f.g.Event(context.Background(), "b", "for b")
	require.NoError(t, err)
	require.False(t, rb.Spooled, "b is free: it starts at once")
	f.agent.waitStarted(t, "b")
	require.Equal(t, []string{"a", "b"}, sessions(f.g.spool.entries()), "a's event still pending")
	f.agent.finish("a")
	require.NoError(t, recv(t, out).err)
	f.agent.waitStarted(t, "a")
	assert.Contains(t, f.agent.startedTexts(), "a:for a")
}

func sessions(entries []spoolEntry) []string {
	var out []string
	for _, e := range entries {
		out = append(out, e.Session)
	}
	return out
}

// TestEventAcceptedWhileShuttingDown: events are never refused for the
// gateway's state (docs/API.md, events): while shutting down, an event is
// spooled (not started, "spooled": true) and is there for the next start.
func TestEventAcceptedWhileShuttingDown(t *testing.T) {
	f := newFixture(t, nil)
	turn := f.startTurn(t, "alice", "long") // holds the shutdown in shutting_down
	start := f.g.BeginShutdown(false)
	require.False(t, start.AlreadyShuttingDown)
	require.Equal(t, fsm.ShuttingDown, f.g.State())

	r, err := f.g.Event(context.Background(), "bg", "job done")
	require.NoError(t, err, "an event is accepted while shutting down")
	assert.True(t, r.Spooled, "it waits for the next start")
	st := f.g.Status()
	assert.Equal(t, 1, st.SpooledEvents)
	assert.Equal(t, 1, st.ActiveAgents, "it did not start")

	f.agent.finish("alice")
	require.NoError(t, recv(t, turn).err)
	f.waitDone(t)
	require.NoError(t, f.g.Close())
	spooled, err := os.ReadFile(filepath.Join(f.home, SpoolFileName))
	require.NoError(t, err)
	assert.Contains(t, string(spooled), r.ID, "the event is in the spool for the next start")
}
