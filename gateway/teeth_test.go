package gateway

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/quiesce-dev/quiesce/fsm"
	"github.com/quiesce-dev/quiesce/internal/homefile"
	"github.com/quiesce-dev/quiesce/marker"
	"github.com/quiesce-dev/quiesce/notify"
)

// ctxOnlySink returns only when its context is done, like a webhook that
// never answers and never gives up by itself.
type ctxOnlySink struct{}

func (ctxOnlySink) Send(ctx context.Context, _ notify.Message) error {
	<-ctx.Done()
	return ctx.Err()
}

// stubbornAgent ignores cancellation until released.
type stubbornAgent struct{ release chan struct{} }

func (a stubbornAgent) Run(_ context.Context, t Turn) (string, error) {
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

// TestEventRetriesThenRejected: an agent error retries with backoff, with
// the same event id, until EventRetryFor has passed since the first
// failure; then the event moves to the rejected file, so the session's
// next event runs.
func TestEventRetriesThenRejected(t *testing.T) {
	tries := make(chan string, 64)
	f := newFixture(t, func(c *Config) {
		c.EventRetryFor = 300 * time.Millisecond
		c.Agent = AgentFunc(func(_ context.Context, t Turn) (string, error) {
			tries <- t.EventID + " " + t.Text
			if t.Text == "poison" {
				return "", os.ErrInvalid
			}
			return "ok", nil
		})
	})
	bad, err := f.g.Event(context.Background(), "s", "poison")
	require.NoError(t, err)
	_, err = f.g.Event(context.Background(), "s", "next")
	require.NoError(t, err)
	n := 0
	for try := recv(t, tries); !strings.HasSuffix(try, " next"); try = recv(t, tries) {
		n++
		require.Equal(t, bad.ID+" poison", try, "try %d has the same event id", n)
	}
	require.GreaterOrEqual(t, n, 2, "retried before the rejection")
	eventually(t, "spool empty", func() bool { return f.g.spool.len() == 0 })
	data, err := os.ReadFile(filepath.Join(f.home, RejectedFileName))
	require.NoError(t, err)
	assert.Contains(t, string(data), bad.ID)
	select {
	case extra := <-tries:
		t.Fatalf("ran again after the rejection: %s", extra)
	case <-time.After(50 * time.Millisecond):
	}
}

func TestEventBackoffIsCapped(t *testing.T) {
	prev := time.Duration(0)
	for n := 1; n <= 64; n++ {
		d := eventBackoff(n)
		require.LessOrEqual(t, d, eventBackoffMax, "try %d", n)
		require.GreaterOrEqual(t, d, prev, "try %d", n)
		prev = d
	}
}

// TestSuppressOnlyForFreshCurrentEpochTrue: only a fresh marker of this
// epoch whose suppress_notification is JSON true skips the broadcast.
func TestSuppressOnlyForFreshCurrentEpochTrue(t *testing.T) {
	for _, tc := range []struct {
		name       string
		body       func(epoch string) string
		suppressed bool
	}{
		{"fresh true", func(e string) string { return markerJSON(e, "true", time.Now()) }, true},
		{"fresh false", func(e string) string { return markerJSON(e, "false", time.Now()) }, false},
		{"string true", func(e string) string { return markerJSON(e, `"true"`, time.Now()) }, false},
		{"number 1", func(e string) string { return markerJSON(e, `1`, time.Now()) }, false},
		{"other epoch", func(string) string { return markerJSON("boot-z:1", "true", time.Now()) }, false},
		{"legacy", func(string) string { return `{"action":"drain","suppress_notification":true}` }, false},
		{"expired", func(e string) string { return markerJSON(e, "true", time.Now().Add(-2*time.Hour)) }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, nil)
			require.NoError(t, os.WriteFile(marker.Path(f.home), []byte(tc.body(f.g.Epoch())), 0o600))
			f.g.Reconcile(context.Background())
			rep, _ := f.shutdown(t, false)
			assert.Equal(t, tc.suppressed, rep.Suppressed)
			want := 1
			if tc.suppressed {
				want = 0
			}
			assert.Equal(t, want, count(f.outbox(t), notify.KindShutdownBroadcast, notify.HomeTarget))
		})
	}
}

func markerJSON(epoch, suppress string, at time.Time) string {
	return `{"action":"drain","requested_at":"` + at.UTC().Format(time.RFC3339) + `","principal":"ops","epoch":"` +
		epoch + `","suppress_notification":` + suppress + `,"request_id":"r1"}`
}

// TestDrainAndCancelRefusedWhileShuttingDown: shutdown wins; the marker
// is untouched.
func TestDrainAndCancelRefusedWhileShuttingDown(t *testing.T) {
	f := newFixture(t, nil)
	f.startTurn(t, "alice", "work")
	f.g.BeginShutdown(false)
	_, err := f.g.BeginDrain(context.Background(), DrainRequest{Principal: "ops"})
	require.ErrorIs(t, err, ErrShuttingDown)
	_, err = f.g.CancelDrain(context.Background(), "")
	require.ErrorIs(t, err, ErrShuttingDown)
	assert.NoFileExists(t, marker.Path(f.home))
	assert.Equal(t, fsm.ShuttingDown, f.g.State())
}

// TestDrainOnUnusableMarkerChangesNothing: a directory at the marker path
// gives ErrMarkerUnusable naming it, and the gateway drains (fail safe).
func TestDrainOnUnusableMarkerChangesNothing(t *testing.T) {
	f := newFixture(t, nil)
	require.NoError(t, os.Mkdir(marker.Path(f.home), 0o700))
	f.g.Reconcile(context.Background())
	assert.Equal(t, fsm.Draining, f.g.State(), "an unusable marker drains")
	_, err := f.g.BeginDrain(context.Background(), DrainRequest{})
	require.ErrorIs(t, err, ErrMarkerUnusable)
	assert.Contains(t, err.Error(), marker.Path(f.home))
	_, err = f.g.CancelDrain(context.Background(), "")
	require.ErrorIs(t, err, ErrMarkerUnusable)
	assert.DirExists(t, marker.Path(f.home))
}

// TestCancelMismatchNamesActiveRequest: a cancel naming another request
// changes nothing and the error names the active one.
func TestCancelMismatchNamesActiveRequest(t *testing.T) {
	f := newFixture(t, nil)
	_, err := f.g.BeginDrain(context.Background(), DrainRequest{RequestID: "active-1"})
	require.NoError(t, err)
	_, err = f.g.CancelDrain(context.Background(), "other")
	require.ErrorIs(t, err, ErrRequestMismatch)
	var me *MismatchError
	require.ErrorAs(t, err, &me)
	assert.Equal(t, "active-1", me.ActiveRequestID())
	assert.Equal(t, fsm.Draining, f.g.State())
}

// TestWaitChangeWakesOnTransitionAndDrainRequest: a long-poll for changes
// returns once something the status shows has changed, never before.
func TestWaitChangeWakesOnTransitionAndDrainRequest(t *testing.T) {
	f := newFixture(t, nil)
	seq := f.g.Status().Seq
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	_, err := f.g.WaitChange(ctx, seq)
	cancel()
	require.ErrorIs(t, err, context.DeadlineExceeded, "nothing changed")

	got := make(chan Status, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		st, _ := f.g.WaitChange(ctx, seq)
		got <- st
	}()
	_, err = f.g.BeginDrain(context.Background(), DrainRequest{Principal: "ops"})
	require.NoError(t, err)
	st := recv(t, got)
	assert.Greater(t, st.Seq, seq)
	assert.Equal(t, fsm.Draining, st.State)

	seq = st.Seq
	_, err = f.g.BeginDrain(context.Background(), DrainRequest{Principal: "again"}) // no transition
	require.NoError(t, err)
	ctx, cancel = context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err = f.g.WaitChange(ctx, seq)
	require.NoError(t, err, "a refreshed drain request is a change")
	assert.Equal(t, "again", st.Drain.Principal)
}

// TestOnTransitionCalledInCommitOrder: the hook a supervisor notifier
// uses sees every transition once, in order.
func TestOnTransitionCalledInCommitOrder(t *testing.T) {
	var mu sync.Mutex
	var seen []string
	f := newFixture(t, func(c *Config) {
		c.OnTransition = func(tr fsm.Transition) {
			mu.Lock()
			seen = append(seen, string(tr.From)+">"+string(tr.To))
			mu.Unlock()
		}
	})
	_, err := f.g.BeginDrain(context.Background(), DrainRequest{})
	require.NoError(t, err)
	_, err = f.g.CancelDrain(context.Background(), "")
	require.NoError(t, err)
	_, _ = f.shutdown(t, false)
	mu.Lock()
	defer mu.Unlock()
	assert.Equal(t, []string{"running>draining", "draining>running", "running>shutting_down", "shutting_down>stopped"}, seen)
}

// TestReconcileThatChangesNothingStaysCheap: the poll fallback runs a
// reconcile every second; with no marker and the gateway running it must
// not call into the state machine (looplab allocates on every Fire).
func TestReconcileThatChangesNothingStaysCheap(t *testing.T) {
	f := newFixture(t, nil)
	ctx := context.Background()
	f.g.Reconcile(ctx)
	tc := countTransitions(f.g.m)
	allocs := testing.AllocsPerRun(100, func() { f.g.Reconcile(ctx) })
	assert.Zero(t, tc.n.Load(), "no transition")
	// A Fire alone would cost looplab 18 allocations; the check of the
	// missing marker is one os.Lstat, whose path copy and *PathError cost
	// 3 (go1.26).
	assert.LessOrEqual(t, allocs, 3.0, "a no-op reconcile looks for the marker and does nothing else")
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
