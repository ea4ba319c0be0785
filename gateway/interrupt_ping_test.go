package gateway

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/quiesce-dev/quiesce/notify"
)

// TestForcedShutdownPingsOnlyUserSessions: a forced shutdown cuts off a
// user turn and an internal event's turn; only the user's session gets
// an interrupt ping (the event stays spooled and runs again at the next
// start, so its session is not told it was cut off).
func TestForcedShutdownPingsOnlyUserSessions(t *testing.T) {
	f := newFixture(t, nil)
	f.startTurn(t, "user", "work")
	r, err := f.g.Event(context.Background(), "job", "background")
	require.NoError(t, err)
	require.False(t, r.Spooled, "job is free: its event starts at once")
	f.agent.waitStarted(t, "job")

	rep, err := f.shutdown(t, true)
	require.NoError(t, err)
	require.Equal(t, []string{"user"}, rep.Interrupted, "only the user session was cut off")
	msgs := f.outbox(t)
	require.Equal(t, 1, count(msgs, notify.KindSessionInterrupted, "user"))
	require.Zero(t, count(msgs, notify.KindSessionInterrupted, "job"), "no ping for an internal event's session")
	require.Zero(t, f.rec.Count(notify.KindSessionInterrupted, "job"))
}
