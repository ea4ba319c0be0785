package fsm_test

import (
	"context"
	"errors"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/quiesce-dev/quiesce/fsm"
)

// pathTo lists the events that lead from running to each state.
var pathTo = map[fsm.State][]fsm.Event{
	fsm.Running:      nil,
	fsm.Draining:     {fsm.Drain},
	fsm.ShuttingDown: {fsm.Shutdown},
	fsm.Stopped:      {fsm.Shutdown, fsm.Stop},
}

// mustMachineIn returns a Machine in state s and a recorder of the
// transitions observed after reaching it.
func mustMachineIn(tb testing.TB, s fsm.State) (*fsm.Machine, *recorder) {
	tb.Helper()
	m := fsm.New()
	for _, ev := range pathTo[s] {
		changed, err := m.Fire(context.Background(), ev)
		require.NoError(tb, err)
		require.True(tb, changed)
	}
	require.Equal(tb, s, m.State())
	rec := &recorder{}
	m.Subscribe(rec.observe)
	return m, rec
}

// recorder is an observer that records transitions under a mutex; n
// counts them for samplers that must not take the mutex.
type recorder struct {
	mu sync.Mutex
	ts []fsm.Transition
	n  atomic.Int64
}

func (r *recorder) observe(t fsm.Transition) {
	r.mu.Lock()
	r.ts = append(r.ts, t)
	r.mu.Unlock()
	r.n.Add(1)
}

// sample is a snapshot attributed to the transitions recorded so far.
type sample struct {
	fsm.Snapshot
	k int // transitions recorded before and after the snapshot was read
}

// sample reads a snapshot between two readings of the transition count
// and reports false when a transition was recorded in between. Observers
// run inside Fire, before the next transition can commit, so at most one
// commit is unrecorded at any time, and a commit always changes the
// state: a sample whose state is the To of transition k-1 (or running
// for k = 0) was taken in the period that transition entered.
func (r *recorder) sample(m *fsm.Machine) (sample, bool) {
	k := r.n.Load()
	s := m.Snapshot()
	return sample{s, int(k)}, r.n.Load() == k
}

func (r *recorder) all() []fsm.Transition {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]fsm.Transition(nil), r.ts...)
}

// TestEveryStateEventPair covers the whole lifecycle table: for each
// (state, event) the resulting state, the error and the observer calls.
func TestEveryStateEventPair(t *testing.T) {
	tests := []struct {
		from    fsm.State
		event   fsm.Event
		to      fsm.State
		changed bool
		err     error
	}{
		{fsm.Running, fsm.Drain, fsm.Draining, true, nil},
		{fsm.Running, fsm.Resume, fsm.Running, false, nil},
		{fsm.Running, fsm.Shutdown, fsm.ShuttingDown, true, nil},
		{fsm.Running, fsm.Stop, fsm.Running, false, fsm.ErrNotShuttingDown},
		{fsm.Draining, fsm.Drain, fsm.Draining, false, nil},
		{fsm.Draining, fsm.Resume, fsm.Running, true, nil},
		{fsm.Draining, fsm.Shutdown, fsm.ShuttingDown, true, nil},
		{fsm.Draining, fsm.Stop, fsm.Draining, false, fsm.ErrNotShuttingDown},
		{fsm.ShuttingDown, fsm.Drain, fsm.ShuttingDown, false, fsm.ErrShutdownWins},
		{fsm.ShuttingDown, fsm.Resume, fsm.ShuttingDown, false, fsm.ErrShutdownWins},
		{fsm.ShuttingDown, fsm.Shutdown, fsm.ShuttingDown, false, nil},
		{fsm.ShuttingDown, fsm.Stop, fsm.Stopped, true, nil},
		{fsm.Stopped, fsm.Drain, fsm.Stopped, false, fsm.ErrStopped},
		{fsm.Stopped, fsm.Resume, fsm.Stopped, false, fsm.ErrStopped},
		{fsm.Stopped, fsm.Shutdown, fsm.Stopped, false, fsm.ErrStopped},
		{fsm.Stopped, fsm.Stop, fsm.Stopped, false, fsm.ErrStopped},
	}
	require.Len(t, tests, len(fsm.States)*len(fsm.Events), "every pair is covered")
	for _, tc := range tests {
		t.Run(string(tc.from)+"/"+string(tc.event), func(t *testing.T) {
			m, rec := mustMachineIn(t, tc.from)
			changed, err := m.Fire(context.Background(), tc.event)
			if tc.err == nil {
				require.NoError(t, err)
			} else {
				require.ErrorIs(t, err, tc.err)
			}
			require.Equal(t, tc.changed, changed)
			require.Equal(t, tc.to, m.State())
			if tc.changed {
				require.Equal(t, []fsm.Transition{{Event: tc.event, From: tc.from, To: tc.to}}, rec.all())
			} else {
				require.Empty(t, rec.all(), "no observer call without a change")
			}
		})
	}
}

// TestUpstreamStateMachineCases are the upstream (Hermes gateway) cases.
func TestUpstreamStateMachineCases(t *testing.T) {
	ctx := context.Background()
	t.Run("enter sets draining", func(t *testing.T) {
		m := fsm.New()
		changed, err := m.Fire(ctx, fsm.Drain)
		require.NoError(t, err)
		require.True(t, changed)
		require.Equal(t, fsm.Draining, m.State())
		require.False(t, m.Accept(), "a draining gateway refuses new turns")
	})
	t.Run("enter idempotent", func(t *testing.T) {
		m, rec := mustMachineIn(t, fsm.Draining)
		for range 3 {
			changed, err := m.Fire(ctx, fsm.Drain)
			require.NoError(t, err)
			require.False(t, changed)
		}
		require.Equal(t, fsm.Draining, m.State())
		require.Empty(t, rec.all())
	})
	t.Run("exit reverts to running", func(t *testing.T) {
		m, _ := mustMachineIn(t, fsm.Draining)
		changed, err := m.Fire(ctx, fsm.Resume)
		require.NoError(t, err)
		require.True(t, changed)
		require.Equal(t, fsm.Running, m.State())
		require.True(t, m.Accept())
	})
	t.Run("exit idempotent when not draining", func(t *testing.T) {
		m, rec := mustMachineIn(t, fsm.Running)
		changed, err := m.Fire(ctx, fsm.Resume)
		require.NoError(t, err)
		require.False(t, changed)
		require.Empty(t, rec.all())
	})
	t.Run("exit during shutdown does not revert", func(t *testing.T) {
		m := fsm.New()
		_, _ = m.Fire(ctx, fsm.Drain)
		_, _ = m.Fire(ctx, fsm.Shutdown)
		_, err := m.Fire(ctx, fsm.Resume)
		require.ErrorIs(t, err, fsm.ErrShutdownWins)
		require.Equal(t, fsm.ShuttingDown, m.State())
		require.False(t, m.Accept())
	})
	t.Run("exit after stop does not revert", func(t *testing.T) {
		m, _ := mustMachineIn(t, fsm.Stopped)
		_, err := m.Fire(ctx, fsm.Resume)
		require.ErrorIs(t, err, fsm.ErrStopped)
		require.Equal(t, fsm.Stopped, m.State())
	})
}

func TestFireUnknownEvent(t *testing.T) {
	m := fsm.New()
	_, err := m.Fire(context.Background(), fsm.Event("explode"))
	require.ErrorIs(t, err, fsm.ErrUnknownEvent)
	require.Equal(t, fsm.Running, m.State())
}

// TestCancelledContextDoesNotWedge: looplab/fsm wedges forever on a
// cancelled ctx (upstream #115); Fire must keep the machine usable.
func TestCancelledContextDoesNotWedge(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	expired, cancel2 := context.WithDeadline(context.Background(), time.Unix(0, 0))
	defer cancel2()
	m := fsm.New()
	for _, c := range []context.Context{ctx, expired} {
		changed, err := m.Fire(c, fsm.Drain)
		require.NoError(t, err)
		require.True(t, changed)
		changed, err = m.Fire(c, fsm.Resume)
		require.NoError(t, err)
		require.True(t, changed)
	}
	_, err := m.Fire(context.Background(), fsm.Shutdown)
	require.NoError(t, err)
	_, err = m.Fire(ctx, fsm.Stop)
	require.NoError(t, err)
	require.Equal(t, fsm.Stopped, m.State())
}

// TestObserversSeeCommitOrder: observers are told inside Fire, in commit
// order, before Fire returns, and the gate is already switched when they
// run.
func TestObserversSeeCommitOrder(t *testing.T) {
	m := fsm.New()
	rec := &recorder{}
	var gateClosed []bool
	m.Subscribe(func(tr fsm.Transition) {
		gateClosed = append(gateClosed, m.State() == tr.To && (tr.To == fsm.Running) == m.Accept())
		if tr.To == fsm.Running {
			_ = m.Release()
		}
	})
	m.Subscribe(rec.observe)
	ctx := context.Background()
	for _, ev := range []fsm.Event{fsm.Drain, fsm.Resume, fsm.Drain, fsm.Shutdown, fsm.Stop} {
		_, err := m.Fire(ctx, ev)
		require.NoError(t, err)
	}
	var got []fsm.Event
	for _, tr := range rec.all() {
		got = append(got, tr.Event)
	}
	require.Equal(t, []fsm.Event{fsm.Drain, fsm.Resume, fsm.Drain, fsm.Shutdown, fsm.Stop}, got)
	require.Equal(t, []bool{true, true, true, true, true}, gateClosed, "the gate has switched before an observer runs")
}

func TestUnsubscribe(t *testing.T) {
	m := fsm.New()
	rec := &recorder{}
	stop := m.Subscribe(rec.observe)
	_, _ = m.Fire(context.Background(), fsm.Drain)
	stop()
	_, _ = m.Fire(context.Background(), fsm.Resume)
	require.Len(t, rec.all(), 1)
}

func TestAcceptRelease(t *testing.T) {
	m := fsm.New()
	require.ErrorIs(t, m.Release(), fsm.ErrNotAccepted, "release without accept")
	require.True(t, m.Accept())
	require.True(t, m.Accept())
	require.Equal(t, 2, m.InFlight())
	_, _ = m.Fire(context.Background(), fsm.Drain)
	require.False(t, m.Accept())
	require.Equal(t, fsm.Snapshot{State: fsm.Draining, InFlight: 2}, m.Snapshot())
	require.NoError(t, m.Release())
	require.NoError(t, m.Release())
	require.ErrorIs(t, m.Release(), fsm.ErrNotAccepted)
	require.Equal(t, 0, m.InFlight())
}

// TestTransitionRecordsInFlight: the transition carries the in-flight count
// at the instant the gate switched.
func TestTransitionRecordsInFlight(t *testing.T) {
	m := fsm.New()
	rec := &recorder{}
	m.Subscribe(rec.observe)
	require.True(t, m.Accept())
	require.True(t, m.Accept())
	_, _ = m.Fire(context.Background(), fsm.Drain)
	require.Equal(t, 2, rec.all()[0].InFlight)
}

func TestWaitIdle(t *testing.T) {
	t.Run("returns at once when idle", func(t *testing.T) {
		require.NoError(t, fsm.New().WaitIdle(context.Background()))
	})
	t.Run("wakes on the last release", func(t *testing.T) {
		m := fsm.New()
		require.True(t, m.Accept())
		require.True(t, m.Accept())
		_, _ = m.Fire(context.Background(), fsm.Shutdown)
		done := make(chan error, 1)
		go func() { done <- m.WaitIdle(context.Background()) }()
		require.NoError(t, m.Release())
		select {
		case err := <-done:
			require.Failf(t, "WaitIdle returned with a turn still in flight", "returned %v", err)
		case <-time.After(20 * time.Millisecond):
		}
		require.NoError(t, m.Release())
		select {
		case err := <-done:
			require.NoError(t, err)
		case <-time.After(10 * time.Second):
			require.Fail(t, "WaitIdle not woken by the last release")
		}
	})
	t.Run("ctx done", func(t *testing.T) {
		m := fsm.New()
		require.True(t, m.Accept())
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		require.ErrorIs(t, m.WaitIdle(ctx), context.Canceled)
	})
}

// TestWaitIdleNoLostWakeupRacingLastRelease races WaitIdle against the
// Release that ends the last turn, many times: a waiter that reads the
// count before it takes the wake-up channel would sleep through the
// release and miss it. Each round has a deadline, so a lost wake-up is a
// failure with a message, not a hang.
func TestWaitIdleNoLostWakeupRacingLastRelease(t *testing.T) {
	rounds := 3000
	if testing.Short() {
		rounds = 300
	}
	for i := range rounds {
		m := fsm.New()
		require.True(t, m.Accept())
		_, _ = m.Fire(context.Background(), fsm.Shutdown)
		start := make(chan struct{})
		go func() {
			<-start
			if i%2 == 0 {
				runtime.Gosched()
			}
			_ = m.Release()
		}()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		close(start)
		err := m.WaitIdle(ctx)
		cancel()
		require.NoError(t, err, "round %d: WaitIdle missed the last release (lost wake-up)", i)
	}
}

// TestDescribeWhileFiring: diagrams are drawn from the rules, never from a
// live machine, so rendering races with nothing (run under -race).
func TestDescribeWhileFiring(t *testing.T) {
	m := fsm.New()
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		for range 200 {
			_, _ = m.Fire(context.Background(), fsm.Drain)
			_, _ = m.Fire(context.Background(), fsm.Resume)
		}
	}()
	go func() {
		defer wg.Done()
		for range 50 {
			_, err := fsm.Describe(fsm.Mermaid)
			if !assert.NoError(t, err) { // not require: this is not the test's goroutine
				return
			}
		}
	}()
	wg.Wait()
}

func TestDescribeUnknownFormat(t *testing.T) {
	_, err := fsm.Describe("svg")
	require.Error(t, err)
}

func TestSentinelsDistinct(t *testing.T) {
	errs := []error{fsm.ErrShutdownWins, fsm.ErrStopped, fsm.ErrNotShuttingDown, fsm.ErrUnknownEvent, fsm.ErrNotAccepted}
	for i, a := range errs {
		for j, b := range errs {
			require.Equal(t, i == j, errors.Is(a, b))
		}
	}
}

// TestStrayReleasesChangeNothing: Releases racing with each other past
// the accepted turns (a caller's bug) succeed exactly once per accepted
// turn, every other one returns ErrNotAccepted, a WaitIdle returns once
// the count is zero, and the count ends at zero, not below.
func TestStrayReleasesChangeNothing(t *testing.T) {
	m := fsm.New()
	const turns, releasers, each = 100, 4, 100
	for range turns {
		require.True(t, m.Accept())
	}
	idle := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		idle <- m.WaitIdle(ctx)
	}()
	var ok, refused atomic.Int64
	var wg sync.WaitGroup
	for range releasers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range each {
				switch err := m.Release(); {
				case err == nil:
					ok.Add(1)
				case errors.Is(err, fsm.ErrNotAccepted):
					refused.Add(1)
				default:
					assert.NoError(t, err, "Release")
				}
			}
		}()
	}
	wg.Wait()
	require.NoError(t, <-idle, "WaitIdle returns once the count is zero")
	require.Equal(t, int64(turns), ok.Load(), "one success per accepted turn")
	require.Equal(t, int64(releasers*each-turns), refused.Load())
	require.Equal(t, 0, m.InFlight())
	require.True(t, m.Accept(), "the gate still works")
	require.NoError(t, m.Release())
}
