package fsm_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/quiesce-dev/quiesce/fsm"
)

// TestWaitIdleEveryRound: one Machine serves many rounds of accept, wait
// and release (a gateway waits for idle on every drain, not once per
// life). In each round WaitIdle stays blocked while the turn is in flight
// and returns once the last Release ends it.
func TestWaitIdleEveryRound(t *testing.T) {
	m := fsm.New()
	for round := range 4 {
		require.True(t, m.Accept(), "round %d", round)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		done := make(chan error, 1)
		go func() { done <- m.WaitIdle(ctx) }()
		select {
		case err := <-done:
			cancel()
			require.FailNow(t, "WaitIdle returned with a turn in flight", "round %d: %v", round, err)
		case <-time.After(20 * time.Millisecond):
		}
		require.NotPanics(t, func() { require.NoError(t, m.Release()) }, "round %d", round)
		require.NoError(t, <-done, "round %d: WaitIdle woken by the last release", round)
		cancel()
		require.Equal(t, 0, m.InFlight())
	}
}
