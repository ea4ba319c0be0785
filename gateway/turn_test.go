package gateway

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// gate first, then the session slot: a turn for a busy session while
// draining is refused (503 draining), not 409 session_busy.
func TestGateBeforeSessionSlot(t *testing.T) {
	f := newFixture(t, nil)
	first := f.startTurn(t, "alice", "one")
	_, err := f.g.BeginDrain(context.Background(), DrainRequest{Principal: "ops"})
	require.NoError(t, err)
	_, err = f.g.Turn(context.Background(), "alice", "two")
	assert.ErrorIs(t, err, ErrRefused)
	assert.NotErrorIs(t, err, ErrSessionBusy)
	f.agent.finish("alice")
	require.NoError(t, recv(t, first).err)
}

// TestOldestTurnIsTheOldest: status's oldest_turn_seconds is the age of
// the oldest turn in flight, not of any other: with an older and a
// younger turn running it is at least the older one's age.
func TestOldestTurnIsTheOldest(t *testing.T) {
	f := newFixture(t, nil)
	f.startTurn(t, "older", "stuck")
	olderStarted := time.Now() // the older turn started before this
	time.Sleep(100 * time.Millisecond)
	f.startTurn(t, "younger", "stuck")
	before := time.Now()
	st := f.g.Status()
	require.Equal(t, 2, st.ActiveAgents)
	require.GreaterOrEqual(t, st.OldestTurnSeconds, before.Sub(olderStarted).Seconds(),
		"oldest_turn_seconds is the older turn's age (at least %v), not the younger's", before.Sub(olderStarted))
}
