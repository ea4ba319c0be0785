package gateway

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/quiesce-dev/quiesce/api"
	"github.com/quiesce-dev/quiesce/fsm"
)

// a system turn starting (active_agents 0 -> 1) and an event being
// spooled (spooled_events 0 -> 1) do not bump Seq, so WaitChange (the
// status page, sd_notify STATUS=) does not see them.
func TestWaitChangeSeesASystemTurnStart(t *testing.T) {
	f := newFixture(t, nil)
	seq := f.g.Status().Seq
	_, err := f.g.Event(context.Background(), "bg", "job done")
	require.NoError(t, err)
	f.agent.waitStarted(t, "bg")
	require.Equal(t, 1, f.g.Status().ActiveAgents)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	st, err := f.g.WaitChange(ctx, seq)
	require.NoError(t, err, "WaitChange did not return although active_agents went 0 -> 1 (seq stayed %d)", st.Seq)
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

	got := make(chan api.Status, 1)
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

// TestWaitChangeSeesAnEventSpooledWhileDraining: seq grows when
// spooled_events changes (docs/API.md, status), also when nothing else
// does: an event spooled while draining starts no turn and changes no
// state, and a watcher still sees it.
func TestWaitChangeSeesAnEventSpooledWhileDraining(t *testing.T) {
	f := newFixture(t, nil)
	_, err := f.g.BeginDrain(context.Background(), DrainRequest{Principal: "ops"})
	require.NoError(t, err)
	before := f.g.Status()
	require.Equal(t, 0, before.SpooledEvents)
	rec, err := f.g.Event(context.Background(), "bg", "job done")
	require.NoError(t, err)
	require.True(t, rec.Spooled, "draining: the event waits")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := f.g.WaitChange(ctx, before.Seq)
	require.NoError(t, err, "WaitChange did not return although spooled_events went 0 -> 1 (seq stayed %d)", st.Seq)
	assert.Greater(t, st.Seq, before.Seq)
	assert.Equal(t, 1, st.SpooledEvents)
	assert.Equal(t, 0, st.ActiveAgents, "no turn started")
}
