package gateway

import (
	"context"
	"testing"

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
