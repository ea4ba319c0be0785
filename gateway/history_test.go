package gateway

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/quiesce-dev/quiesce/agent"
	"github.com/quiesce-dev/quiesce/api"
	"github.com/quiesce-dev/quiesce/fsm"
	"github.com/quiesce-dev/quiesce/marker"
)

// kinds returns the kinds of entries, in order.
func kinds(entries []api.HistoryEntry) []string {
	out := make([]string, len(entries))
	for i, e := range entries {
		out[i] = e.Kind
	}
	return out
}

// requireOrdered checks that entries are numbered 1 apart, oldest first,
// with non-decreasing times.
func requireOrdered(t *testing.T, entries []api.HistoryEntry) {
	t.Helper()
	for i := 1; i < len(entries); i++ {
		require.Equal(t, entries[i-1].Seq+1, entries[i].Seq, "entry %d follows entry %d", i, i-1)
		require.False(t, entries[i].At.Before(entries[i-1].At), "entry %d is not older than entry %d", i, i-1)
	}
}

// TestHistoryRecordsTheLifecycle shows what History keeps, in order: the
// start, an API drain with its principal, request id, reason and flag
// before the transition it causes, a refresh of it (which keeps them), a
// cancel, and a forced shutdown with the session it cut off.
func TestHistoryRecordsTheLifecycle(t *testing.T) {
	f := newFixture(t, nil)
	ctx := context.Background()
	_, err := f.g.BeginDrain(ctx, DrainRequest{Principal: "ops", RequestID: "maint-42", SuppressNotification: ptr(true),
		Reason: ptr("kernel update")})
	require.NoError(t, err)
	_, err = f.g.BeginDrain(ctx, DrainRequest{Principal: "ops", RequestID: "maint-42"})
	require.NoError(t, err)
	_, err = f.g.CancelDrain(ctx, "maint-42")
	require.NoError(t, err)
	f.startTurn(t, "alice", "hello")
	_, err = f.shutdown(t, true)
	require.NoError(t, err)

	h := f.g.History()
	requireOrdered(t, h)
	require.Equal(t, []string{
		HistoryStart,
		HistoryDrain, HistoryTransition, // the drain, then what it did
		HistoryDrain, // the refresh: no transition
		HistoryCancel, HistoryTransition,
		HistoryShutdown, HistoryTransition,
		HistoryInterrupted,
		HistoryTransition,
	}, kinds(h))
	assert.Equal(t, fsm.Running, h[0].To)

	drain := h[1]
	assert.Equal(t, "ops", drain.Principal)
	assert.Equal(t, "maint-42", drain.RequestID)
	assert.Equal(t, "kernel update", drain.Reason)
	assert.True(t, drain.SuppressNotification)
	assert.False(t, drain.WasDraining)
	assert.False(t, drain.NotPersisted)
	assert.Equal(t, api.HistoryEntry{Seq: h[2].Seq, At: h[2].At, Kind: HistoryTransition, From: fsm.Running, To: fsm.Draining, Event: fsm.Drain}, h[2])
	assert.Equal(t, "maint-42", h[3].RequestID)
	assert.True(t, h[3].WasDraining)
	assert.True(t, h[3].Refreshed, "the refresh names the active request")
	assert.Equal(t, "kernel update", h[3].Reason, "the refresh keeps the reason")
	assert.True(t, h[3].SuppressNotification, "the refresh keeps the flag")

	assert.Equal(t, "maint-42", h[4].RequestID)
	assert.True(t, h[4].WasDraining)
	assert.Equal(t, fsm.Running, h[5].To)

	assert.NotEmpty(t, h[6].ShutdownID)
	assert.True(t, h[6].Force)
	assert.Equal(t, fsm.ShuttingDown, h[7].To)
	assert.Equal(t, []string{"alice"}, h[8].Sessions)
	assert.Equal(t, 1, h[8].Count)
	assert.Equal(t, h[6].ShutdownID, h[8].ShutdownID)
	assert.Equal(t, fsm.Stopped, h[9].To)
}

// TestHistoryDrainFromMarker shows that a drain written to the marker by
// another process (the local CLI) is recorded with its principal when the
// gateway reconciles with it, and that an expired marker's resume shows
// as a transition.
func TestHistoryDrainFromMarker(t *testing.T) {
	f := newFixture(t, nil)
	_, err := marker.Write(f.home, marker.Request{Action: marker.ActionDrain, Principal: "alice@host",
		Epoch: f.g.Epoch(), RequestID: "local-1", Reason: "disk swap"})
	require.NoError(t, err)
	f.g.Reconcile(context.Background())
	h := f.g.History()
	require.Equal(t, []string{HistoryStart, HistoryDrain, HistoryTransition}, kinds(h))
	assert.Equal(t, "alice@host", h[1].Principal)
	assert.Equal(t, "local-1", h[1].RequestID)
	assert.Equal(t, "disk swap", h[1].Reason)
	assert.Equal(t, fsm.Draining, h[2].To)
}

// TestHistoryBoundedAt50 shows that History keeps the last HistorySize
// entries, oldest first, numbered without gaps, and drops the oldest.
func TestHistoryBoundedAt50(t *testing.T) {
	f := newFixture(t, nil)
	ctx := context.Background()
	for i := range 30 { // a cycle is 4 entries: drain, transition, cancel, transition
		_, err := f.g.BeginDrain(ctx, DrainRequest{Principal: "ops", RequestID: fmt.Sprintf("r-%d", i)})
		require.NoError(t, err)
		_, err = f.g.CancelDrain(ctx, "")
		require.NoError(t, err)
	}
	const total = 1 + 30*4
	h := f.g.History()
	require.Len(t, h, HistorySize)
	requireOrdered(t, h)
	assert.Equal(t, uint64(total), h[len(h)-1].Seq, "the newest entry is kept")
	assert.Equal(t, uint64(total-HistorySize+1), h[0].Seq, "the oldest ones are dropped")
	last := h[len(h)-4]
	assert.Equal(t, HistoryDrain, last.Kind)
	assert.Equal(t, "r-29", last.RequestID)

	// Callers get a copy: changing it changes nothing kept.
	h[0].Principal = "changed"
	assert.NotEqual(t, "changed", f.g.History()[0].Principal)
}

// TestHistoryRingConcurrent shows the ring under concurrent writers and
// readers: every entry numbered once, none lost from the last HistorySize.
func TestHistoryRingConcurrent(t *testing.T) {
	var h history
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := range 100 {
				h.add(api.HistoryEntry{Kind: HistoryTransition, RequestID: fmt.Sprintf("%d-%d", w, i)})
				_ = h.list()
			}
		})
	}
	wg.Wait()
	list := h.list()
	require.Len(t, list, HistorySize)
	assert.Equal(t, uint64(400), list[len(list)-1].Seq)
	for i := 1; i < len(list); i++ {
		assert.Equal(t, list[i-1].Seq+1, list[i].Seq)
	}
}

// TestTurnsInFlight shows the turns list: a user turn, a streaming one and
// an internal event's system turn, oldest first, each with its session,
// turn id, kind and age; empty again once they end.
func TestTurnsInFlight(t *testing.T) {
	f := newFixture(t, nil)
	assert.Empty(t, f.g.Turns())
	f.startTurn(t, "alice", "one")
	streamed := make(chan error, 1)
	go func() {
		_, err := f.g.Stream(context.Background(), TurnRequest{Session: "bob", Text: "two", Delta: func(string) {}})
		streamed <- err
	}()
	f.agent.waitStarted(t, "bob")
	rec, err := f.g.Event(context.Background(), "carol", "job done")
	require.NoError(t, err)
	f.agent.waitStarted(t, "carol")

	turns := f.g.Turns()
	require.Len(t, turns, 3)
	assert.Equal(t, []string{"alice", "bob", "carol"}, []string{turns[0].Session, turns[1].Session, turns[2].Session})
	assert.False(t, turns[0].Streaming)
	assert.False(t, turns[0].System)
	assert.True(t, turns[1].Streaming)
	assert.True(t, turns[2].System)
	assert.Equal(t, rec.ID, turns[2].EventID)
	ids := map[string]bool{}
	for i, tr := range turns {
		assert.Len(t, tr.TurnID, 16, "turn %d has an id", i)
		ids[tr.TurnID] = true
		assert.GreaterOrEqual(t, tr.AgeSeconds, 0.0)
		assert.False(t, tr.StartedAt.IsZero())
		if i > 0 {
			assert.False(t, tr.StartedAt.Before(turns[i-1].StartedAt), "oldest first")
		}
	}
	assert.Len(t, ids, 3, "distinct turn ids")
	assert.Equal(t, 3, f.g.Status().ActiveAgents, "the list agrees with the count")

	for _, s := range []string{"alice", "bob", "carol"} {
		f.agent.finish(s)
	}
	require.NoError(t, recv(t, streamed))
	eventually(t, "no turn in flight", func() bool { return len(f.g.Turns()) == 0 })
}

// TestStatusVersionAndAgent shows the version and the agent's kind,
// failures and last error in Status: an agent failure counts, a turn its
// client cancelled does not.
func TestStatusVersionAndAgent(t *testing.T) {
	fail := errors.New("upstream answered 502")
	agent := agent.Func(func(ctx context.Context, t agent.Turn) (string, error) {
		if t.Text == "wait" {
			<-ctx.Done()
			return "", ctx.Err()
		}
		return "", fail
	})
	now := time.Date(2026, 12, 7, 3, 0, 0, 0, time.UTC)
	f := newFixture(t, func(c *Config) {
		c.Agent, c.AgentKind, c.Version = agent, "http", "v1.2.3"
		c.Now = func() time.Time { return now }
	})
	st := f.g.Status()
	assert.Equal(t, "v1.2.3", st.Version)
	require.NotNil(t, st.Agent)
	assert.Equal(t, api.AgentStatus{Kind: "http"}, *st.Agent)

	_, err := f.g.Turn(context.Background(), "alice", "hi")
	require.ErrorIs(t, err, ErrAgent)
	_, err = f.g.Turn(context.Background(), "alice", "hi again")
	require.ErrorIs(t, err, ErrAgent)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err = f.g.Turn(ctx, "bob", "wait")
	require.Error(t, err)

	st = f.g.Status()
	assert.Equal(t, api.AgentStatus{Kind: "http", Failures: 2, LastError: "upstream answered 502", LastErrorAt: now}, *st.Agent,
		"two failures; the turn its client gave up on is not the agent's")
	assert.Equal(t, fsm.Running, st.State, "a failing agent leaves the gateway running (and ready)")
}

// TestStatusAgentKindDefaults shows the agent kind without AgentKind:
// echo for the default agent, custom for one given.
func TestStatusAgentKindDefaults(t *testing.T) {
	assert.Equal(t, "echo", newFixture(t, func(c *Config) { c.Agent = nil }).g.Status().Agent.Kind)
	assert.Equal(t, "custom", newFixture(t, nil).g.Status().Agent.Kind)
}

// TestHistoryUnpersistedDrain shows a drain whose marker could not be
// written (held in memory) recorded as not persisted, with its request.
func TestHistoryUnpersistedDrain(t *testing.T) {
	for name, hb := range homeBreakers {
		t.Run(name, func(t *testing.T) {
			f, disk := brokenFixture(t)
			hb.brk(t, disk)
			_, err := f.g.BeginDrain(context.Background(), DrainRequest{Principal: "ops", RequestID: "maint-7", Reason: ptr("disk swap")})
			require.ErrorIs(t, err, ErrMarkerUnwritable)
			h := f.g.History()
			require.Equal(t, []string{HistoryStart, HistoryDrain, HistoryTransition}, kinds(h))
			assert.True(t, h[1].NotPersisted)
			assert.Equal(t, "maint-7", h[1].RequestID)
			assert.Equal(t, "disk swap", h[1].Reason)
			assert.Equal(t, "ops", h[1].Principal)
		})
	}
}

// TestHistoryInterruptedNamesAtMost20 shows the "interrupted" entry of a
// forced shutdown that cut off more than 20 user turns: it names 20 of
// the sessions (docs/API.md, history: "sessions (at most 20), count") and
// counts all of them.
func TestHistoryInterruptedNamesAtMost20(t *testing.T) {
	f := newFixture(t, nil)
	const n = maxHistorySessions + 5
	started := map[string]bool{}
	for i := range n {
		s := fmt.Sprintf("s-%02d", i)
		f.startTurn(t, s, "stuck")
		started[s] = true
	}
	_, err := f.shutdown(t, true)
	require.NoError(t, err)

	var got []api.HistoryEntry
	for _, e := range f.g.History() {
		if e.Kind == HistoryInterrupted {
			got = append(got, e)
		}
	}
	require.Len(t, got, 1, "one interrupted entry for the shutdown")
	assert.Equal(t, n, got[0].Count, "count is every session cut off")
	require.Len(t, got[0].Sessions, 20, "at most 20 named")
	for _, s := range got[0].Sessions {
		assert.True(t, started[s], "%q is a session that was cut off", s)
	}
}

// TestTurnsOldestFirstNotByName shows that the turns list is ordered by
// start, oldest first, not by session name: the older turn's session
// sorts after the younger's.
func TestTurnsOldestFirstNotByName(t *testing.T) {
	f := newFixture(t, nil)
	f.startTurn(t, "zed-older", "stuck")
	first := f.g.Turns()
	require.Len(t, first, 1)
	eventually(t, "the clock to move past the first turn's start", func() bool {
		return time.Now().After(first[0].StartedAt)
	})
	f.startTurn(t, "amy-younger", "stuck")
	turns := f.g.Turns()
	require.Len(t, turns, 2)
	assert.Equal(t, []string{"zed-older", "amy-younger"}, []string{turns[0].Session, turns[1].Session}, "oldest first")
	assert.True(t, turns[0].StartedAt.Before(turns[1].StartedAt))
	assert.GreaterOrEqual(t, turns[0].AgeSeconds, turns[1].AgeSeconds, "the older turn is at least as old")
}

// TestHistoryShutdownThenForce shows the shutdown entries of a sequence
// that a later request forced: one when it began (not forced), none for a
// repeat that changes nothing, one when a repeat forces it, with the same
// shutdown_id, and none for a second force.
func TestHistoryShutdownThenForce(t *testing.T) {
	f := newFixture(t, nil)
	turn := f.startTurn(t, "alice", "long")
	for _, force := range []bool{false, false, true, true} {
		f.g.BeginShutdown(force)
	}
	assert.ErrorIs(t, recv(t, turn).err, ErrInterrupted)
	f.waitDone(t)

	var shutdowns []api.HistoryEntry
	for _, e := range f.g.History() {
		if e.Kind == HistoryShutdown {
			shutdowns = append(shutdowns, e)
		}
	}
	require.Len(t, shutdowns, 2, "began, then forced: %+v", shutdowns)
	assert.False(t, shutdowns[0].Force, "it began without force")
	assert.True(t, shutdowns[1].Force, "a repeat forced it")
	assert.NotEmpty(t, shutdowns[0].ShutdownID)
	assert.Equal(t, shutdowns[0].ShutdownID, shutdowns[1].ShutdownID, "one sequence")
}
