package gateway

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestEveryShutdownAnswerFollowsTheGate: two shutdown requests at once
// (a supervisor's SIGTERM and an API call, say): whichever answers,
// first or repeated, answers only once the gate refuses, so no turn is
// accepted after either answer. A repeated request that returned at once
// let turns in until the first one had fired the event.
func TestEveryShutdownAnswerFollowsTheGate(t *testing.T) {
	for i := range 50 {
		f := newFixture(t, nil)
		start := make(chan struct{})
		var wg sync.WaitGroup
		accepted := make([]bool, 2)
		repeated := make([]bool, 2)
		for c := range 2 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				repeated[c] = f.g.BeginShutdown(false).AlreadyShuttingDown
				// Right after the answer: the gate must refuse.
				accepted[c] = f.g.m.Accept()
				if accepted[c] {
					_ = f.g.m.Release()
				}
			}()
		}
		close(start)
		wg.Wait()
		require.ElementsMatch(t, []bool{false, true}, repeated, "round %d: one request starts the shutdown, the other repeats it", i)
		assert.Equal(t, []bool{false, false}, accepted, "round %d: a turn accepted after a shutdown answer", i)
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		_, err := f.g.Shutdown(ctx, true)
		cancel()
		require.NoError(t, err)
	}
}
