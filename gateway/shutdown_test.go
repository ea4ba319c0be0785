package gateway

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/quiesce-dev/quiesce/agent"
	"github.com/quiesce-dev/quiesce/fsm"
	"github.com/quiesce-dev/quiesce/internal/homefile"
	"github.com/quiesce-dev/quiesce/notify"
)

// an agent that answers cancellation with ctx.Err() (context.Canceled,
// as net/http and most libraries do) is still reported as interrupted.
func TestInterruptReportedWhateverTheAgentReturns(t *testing.T) {
	started := make(chan struct{}, 1)
	f := newFixture(t, func(c *Config) {
		c.Agent = agent.Func(func(ctx context.Context, _ agent.Turn) (string, error) {
			started <- struct{}{}
			<-ctx.Done()
			return "", ctx.Err()
		})
	})
	out := make(chan error, 1)
	go func() { _, err := f.g.Turn(context.Background(), "alice", "hi"); out <- err }()
	<-started
	_, _ = f.shutdown(t, true)
	err := recv(t, out)
	assert.ErrorIs(t, err, ErrInterrupted)
	assert.NotErrorIs(t, err, ErrAgent, "a forced interrupt is not an agent failure (502)")
}

// BeginShutdown returns only once the broadcast is recorded.
func TestBroadcastRecordedWhenBeginShutdownReturns(t *testing.T) {
	f := newFixture(t, nil)
	homefile.SetSyncHook(func(p string) {
		if strings.HasSuffix(p, OutboxFileName) {
			time.Sleep(300 * time.Millisecond) // a slow disk
		}
	})
	defer homefile.SetSyncHook(nil)
	st := f.g.BeginShutdown(false)
	require.False(t, st.AlreadyShuttingDown)
	assert.Equal(t, 1, count(f.outbox(t), notify.KindShutdownBroadcast, notify.HomeTarget),
		"the broadcast is in the outbox when BeginShutdown (and the 202) returns")
}

// the interrupt pings are sent one by one (one outbox fsync each)
// after the drain timeout and before the notify-timeout window opens, so
// with many interrupted sessions on a slow disk the sequence outlives
// drain + notify + 1s.
func TestShutdownBoundHoldsWithManyPingsOnASlowDisk(t *testing.T) {
	const sessions = 100
	// A disk where an fsync of the outbox takes 20ms (hook installed before
	// any goroutine runs; armed later).
	var slow atomic.Bool
	homefile.SetSyncHook(func(p string) {
		if slow.Load() && filepath.Base(p) == OutboxFileName {
			time.Sleep(20 * time.Millisecond)
		}
	})
	t.Cleanup(func() { homefile.SetSyncHook(nil) })
	f := newFixture(t, func(c *Config) {
		c.DrainTimeout = 100 * time.Millisecond
		c.NotifyTimeout = 100 * time.Millisecond
	})
	for i := range sessions {
		f.startTurn(t, fmt.Sprintf("s%03d", i), "hi")
	}
	slow.Store(true)
	ctx, cancel := context.WithTimeout(context.Background(), f.g.cfg.DrainTimeout+f.g.cfg.NotifyTimeout+time.Second)
	defer cancel()
	rep, err := f.g.Shutdown(ctx, false)
	require.NoError(t, err, "shutdown outlived drain + notify + 1s")
	require.Len(t, rep.Interrupted, sessions)
	require.Equal(t, sessions, count(f.outbox(t), notify.KindSessionInterrupted, ""), "every ping recorded")
}

// ctxOnlySink returns only when its context is done, like a webhook that
// never answers and never gives up by itself.
type ctxOnlySink struct{}

func (ctxOnlySink) Send(ctx context.Context, _ notify.Message) error {
	<-ctx.Done()
	return ctx.Err()
}

// stubbornAgent ignores cancellation until released.
type stubbornAgent struct{ release chan struct{} }

func (a stubbornAgent) Run(_ context.Context, t agent.Turn) (string, error) {
	<-a.release
	return t.Text, nil
}

// TestShutdownBoundHoldsWithStuckSinkAndAgent: the sequence ends within
// drain + notify timeout (+ the 1s the process has to close connections)
// even with a sink that only returns on ctx cancel and an agent that
// ignores cancellation — with one notify budget, not one per step (a
// notify timeout over 1s shows it).
func TestShutdownBoundHoldsWithStuckSinkAndAgent(t *testing.T) {
	for _, tc := range []struct{ drain, notify time.Duration }{
		{200 * time.Millisecond, 300 * time.Millisecond},
		{200 * time.Millisecond, 1500 * time.Millisecond},
	} {
		t.Run(fmt.Sprintf("drain=%v,notify=%v", tc.drain, tc.notify), func(t *testing.T) {
			agent := stubbornAgent{release: make(chan struct{})}
			defer close(agent.release)
			f := newFixture(t, func(c *Config) {
				c.Sinks = []notify.Sink{ctxOnlySink{}}
				c.Agent = agent
				c.DrainTimeout, c.NotifyTimeout = tc.drain, tc.notify
			})
			go func() { _, _ = f.g.Turn(context.Background(), "alice", "stuck") }()
			eventually(t, "the turn is in flight", func() bool { return f.g.m.InFlight() == 1 })
			ctx, cancel := context.WithTimeout(context.Background(), tc.drain+tc.notify+time.Second)
			defer cancel()
			rep, err := f.g.Shutdown(ctx, false)
			require.NoError(t, err, "the shutdown must end within drain + notify + 1s")
			assert.Equal(t, []string{"alice"}, rep.Interrupted)
			assert.Equal(t, 1, count(f.outbox(t), notify.KindSessionInterrupted, "alice"), "the outbox has the ping")
		})
	}
}

// TestOneStateWriteAfterTheLastTurnOfAShutdown: between the last reply of
// a shutdown and the stop, only the final state write (stopped) is
// fsynced: the exit does not wait for a coalesced write of the count.
func TestOneStateWriteAfterTheLastTurnOfAShutdown(t *testing.T) {
	f := newFixture(t, nil)
	out := f.startTurn(t, "alice", "work")
	f.g.BeginShutdown(false)
	var mu sync.Mutex
	var writes int
	prefix := filepath.Join(f.home, StateFileName) + homefile.TempInfix
	homefile.SetSyncHook(func(p string) {
		if strings.HasPrefix(p, prefix) {
			mu.Lock()
			writes++
			mu.Unlock()
		}
	})
	t.Cleanup(func() { homefile.SetSyncHook(nil) })
	// The shutting_down transition's own write has landed before counting.
	eventually(t, "the state file says shutting_down", func() bool {
		doc, err := readStateFile(f.home)
		return err == nil && doc.GatewayState == fsm.ShuttingDown && doc.ActiveAgents == 1
	})
	// Wait out the coalescing gap, so the writer would write the last
	// release's count at once (not a timing assertion: a settling wait).
	time.Sleep(2 * stateWriteGap)
	mu.Lock()
	writes = 0
	mu.Unlock()
	f.agent.finish("alice")
	require.NoError(t, recv(t, out).err)
	f.waitDone(t)
	mu.Lock()
	defer mu.Unlock()
	assert.Equal(t, 1, writes, "only the stopped state is written after the last turn")
	doc, err := readStateFile(f.home)
	require.NoError(t, err)
	assert.Equal(t, fsm.Stopped, doc.GatewayState)
}
