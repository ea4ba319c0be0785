package gateway

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/quiesce-dev/quiesce/fsm"
	"github.com/quiesce-dev/quiesce/internal/homefile"
	"github.com/quiesce-dev/quiesce/marker"
)

// TestAnnounceNeverReadyBetweenWindowAndGate: at the end of an announce
// window the drain writes its marker and closes the gate; readiness stays
// false all along (a load balancer probing at that moment must not send
// the gateway new work it is about to refuse).
func TestAnnounceNeverReadyBetweenWindowAndGate(t *testing.T) {
	f := newFixture(t, nil)
	timers := &manualTimers{}
	timers.install(f.g)
	done := announce(t, f.g, context.Background(), DrainRequest{Principal: "ops", Announce: 5 * time.Second})

	// Each fsync while the window ends (the marker's write, before the
	// gate switches) samples readiness.
	var mu sync.Mutex
	var samples []bool
	markerPath := marker.Path(f.home)
	homefile.SetSyncHook(func(p string) {
		if p != markerPath && p != f.home {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		samples = append(samples, f.g.Ready())
	})
	t.Cleanup(func() { homefile.SetSyncHook(nil) })
	timers.fire(t)
	out := recv(t, done)
	homefile.SetSyncHook(nil)
	require.NoError(t, out.err)
	require.Equal(t, fsm.Draining, out.res.State)

	mu.Lock()
	defer mu.Unlock()
	require.NotEmpty(t, samples, "the marker was written while the window ended")
	for i, ready := range samples {
		assert.False(t, ready, "ready at the marker write %d, before the gate closed", i)
	}
	assert.False(t, f.g.Ready())
}
