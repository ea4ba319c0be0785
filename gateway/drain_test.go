package gateway

import (
	"context"
	"os"
	"runtime"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/quiesce-dev/quiesce/fsm"
	"github.com/quiesce-dev/quiesce/marker"
)

// was_draining reports whether an active drain request was replaced.
func TestBeginDrainReportsWasDraining(t *testing.T) {
	f := newFixture(t, nil)
	ctx := context.Background()
	r, err := f.g.BeginDrain(ctx, DrainRequest{Principal: "ops"})
	require.NoError(t, err)
	assert.False(t, r.WasDraining, "first drain replaced nothing")
	r, err = f.g.BeginDrain(ctx, DrainRequest{Principal: "ops"})
	require.NoError(t, err)
	assert.True(t, r.WasDraining, "second drain replaced the first")
	_, err = f.g.CancelDrain(ctx, "")
	require.NoError(t, err)
	r, err = f.g.BeginDrain(ctx, DrainRequest{Principal: "ops"})
	require.NoError(t, err)
	assert.False(t, r.WasDraining, "after a cancel nothing was active")
}

// BeginDrain's shutting-down check and its marker write are not
// atomic with runShutdown's Fire(Shutdown): a racing drain answers OK with
// state shutting_down and leaves the marker written (contract: 409
// shutting_down, marker untouched).
func TestBeginDrainRacingShutdownIsRefusedOrFirst(t *testing.T) {
	hits := 0
	for i := range 100 {
		f := newFixture(t, nil)
		type res struct {
			r   DrainResult
			err error
		}
		ch := make(chan res, 1)
		go func() { r, err := f.g.BeginDrain(context.Background(), DrainRequest{}); ch <- res{r, err} }()
		if i%2 == 0 {
			runtime.Gosched()
		}
		f.g.BeginShutdown(false)
		if r := <-ch; r.err == nil && r.r.State == fsm.ShuttingDown {
			hits++
		}
		f.waitDone(t)
		_ = f.g.Close()
	}
	require.Zero(t, hits, "drains answered OK (marker written) with state shutting_down")
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
