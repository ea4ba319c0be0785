package gateway

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/quiesce-dev/quiesce/fsm"
	"github.com/quiesce-dev/quiesce/marker"
)

// manualTimers replaces a gateway's announce timer: a window ends when
// the test calls fire, never by itself.
type manualTimers struct {
	mu    sync.Mutex
	fns   []func()
	after []time.Duration
}

func (m *manualTimers) install(g *Gateway) {
	g.afterFunc = func(d time.Duration, f func()) func() bool {
		m.mu.Lock()
		defer m.mu.Unlock()
		m.fns = append(m.fns, f)
		m.after = append(m.after, d)
		return func() bool { return true }
	}
}

// fire ends the window opened last, as its timer would.
func (m *manualTimers) fire(tb failer) {
	m.mu.Lock()
	if len(m.fns) == 0 {
		m.mu.Unlock()
		require.FailNow(tb, "no announce window was opened")
	}
	f := m.fns[len(m.fns)-1]
	m.mu.Unlock()
	f()
}

// drainOut is what a BeginDrain on its own goroutine returned.
type drainOut struct {
	res DrainResult
	err error
}

// announce starts BeginDrain(req) on its own goroutine, waits until the
// gateway shows the window (the request listed) and asserts that it is not
// ready from then on: a gateway that stays ready fails here by assertion
// at once, not by a wait that runs out (which a property test would
// repeat while it shrinks).
func announce(tb failer, g *Gateway, ctx context.Context, req DrainRequest) <-chan drainOut {
	out := make(chan drainOut, 1)
	go func() {
		res, err := g.BeginDrain(ctx, req)
		out <- drainOut{res, err}
	}()
	eventually(tb, "the announce window to open", func() bool {
		d := g.Status().Drain
		return d != nil && !d.AnnounceUntil.IsZero() && (req.RequestID == "" || g.windowHas(req.RequestID))
	})
	require.False(tb, g.Ready(), "ready during the announce window: /readyz must fail at once")
	require.False(tb, g.Status().Ready, "status ready during the announce window")
	return out
}

// windowHas reports whether the open window holds request id.
func (g *Gateway) windowHas(id string) bool {
	g.ctlMu.Lock()
	defer g.ctlMu.Unlock()
	return g.window != nil && g.window.has(id)
}

// pending asserts that the drain has not answered yet.
func pending(t *testing.T, ch <-chan drainOut, what string) {
	t.Helper()
	select {
	case out := <-ch:
		require.Fail(t, fmt.Sprintf("%s: the drain answered during its announce window: %+v %v", what, out.res, out.err))
	default:
	}
}

func markerExists(home string) bool {
	_, err := os.Lstat(marker.Path(home))
	return err == nil
}

// TestAnnounceWindow: during the window the gateway is not ready, status
// says when the gate closes, the gate still admits turns and no marker is
// written; at its end the marker is written, the gate closes, and only
// then does the drain answer, after which a turn is refused.
func TestAnnounceWindow(t *testing.T) {
	f := newFixture(t, nil)
	timers := &manualTimers{}
	timers.install(f.g)
	before := time.Now()
	done := announce(t, f.g, context.Background(), DrainRequest{Principal: "ops", Reason: ptr("rollout"), Announce: 5 * time.Second})

	st := f.g.Status()
	assert.Equal(t, fsm.Running, st.State)
	assert.False(t, st.Ready, "status ready during the window")
	require.NotNil(t, st.Drain)
	assert.Equal(t, DrainStatusAnnouncing, st.Drain.Status)
	assert.Equal(t, "ops", st.Drain.Principal)
	assert.Equal(t, "rollout", st.Drain.Reason)
	assert.NotEmpty(t, st.Drain.RequestID, "the window's request can be named by a cancel")
	assert.False(t, st.Drain.Persisted, "docs/API.md: an announced request is not persisted yet")
	assert.True(t, st.Drain.ExpiresAt.IsZero(), "docs/API.md: and has no expires_at")
	assert.WithinRange(t, st.Drain.AnnounceUntil, before.Add(5*time.Second), time.Now().Add(5*time.Second))
	assert.Equal(t, []time.Duration{5 * time.Second}, timers.after)
	assert.False(t, markerExists(f.home), "no marker during the window")
	// Local status reads the state file: it must show the window too, or
	// it calls the gateway ready while /readyz fails.
	eventually(t, "the state file showing the announce window", func() bool {
		doc, err := readStateFile(f.home)
		return err == nil && doc.Drain != nil && doc.Drain.Status == DrainStatusAnnouncing &&
			doc.Drain.AnnounceUntil.Equal(st.Drain.AnnounceUntil)
	})

	turn := f.startTurn(t, "u1", "hi") // the gate stays open
	pending(t, done, "with a turn accepted in the window")

	timers.fire(t)
	out := recv(t, done)
	require.NoError(t, out.err)
	assert.Equal(t, fsm.Draining, out.res.State, "the gate closed before the drain answered")
	assert.Equal(t, 1, out.res.ActiveAgents, "the turn accepted in the window runs on")
	assert.Equal(t, st.Drain.RequestID, out.res.Drain.RequestID)
	assert.True(t, out.res.Drain.Persisted)
	assert.True(t, markerExists(f.home))
	// Bounded: were the gate still open, the gated agent would hold the
	// turn until this deadline, and the assertion fails instead of hanging.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_, err := f.g.Turn(ctx, "u2", "late")
	assert.ErrorIs(t, err, ErrRefused, "I1 from the answer on")
	st = f.g.Status()
	assert.False(t, st.Ready)
	require.NotNil(t, st.Drain)
	assert.Equal(t, "active", st.Drain.Status)
	assert.True(t, st.Drain.AnnounceUntil.IsZero(), "the window is over")

	f.agent.finish("u1")
	assert.NoError(t, recv(t, turn).err)
}

// TestAnnounceCancel: a cancel during the window ends it; the waiting
// drain answers ErrDrainCancelled, nothing is written, the gateway is
// ready again. A cancel naming another request changes nothing.
func TestAnnounceCancel(t *testing.T) {
	for _, tc := range []struct {
		name      string
		requestID string // the cancel's; "window" names the window's request
	}{
		{"without request id", ""},
		{"naming the window's request", "window"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, nil)
			(&manualTimers{}).install(f.g)
			done := announce(t, f.g, context.Background(), DrainRequest{RequestID: "w-1", Announce: time.Minute})

			_, err := f.g.CancelDrain(context.Background(), "someone-else")
			var mm *MismatchError
			require.ErrorAs(t, err, &mm, "a cancel naming another request")
			assert.Equal(t, "w-1", mm.Active)
			pending(t, done, "after a mismatched cancel")
			assert.False(t, f.g.Ready())

			id := tc.requestID
			if id == "window" {
				id = "w-1"
			}
			res, err := f.g.CancelDrain(context.Background(), id)
			require.NoError(t, err)
			assert.True(t, res.WasDraining, "the cancel undid a drain")
			assert.Equal(t, fsm.Running, res.State)

			out := recv(t, done)
			assert.ErrorIs(t, out.err, ErrDrainCancelled)
			assert.True(t, f.g.Ready(), "ready again")
			st := f.g.Status()
			assert.True(t, st.Ready)
			assert.Nil(t, st.Drain)
			assert.False(t, markerExists(f.home), "a cancelled announce writes no marker")
			turn := f.startTurn(t, "u1", "hi")
			f.agent.finish("u1")
			assert.NoError(t, recv(t, turn).err)
		})
	}
}

// TestAnnounceCancelNamingAnIgnoredMarker: during a window, a cancel
// naming the request id of a marker that drains nothing (stale: another
// boot's; expired) is a mismatch naming the window's request, like any
// other id that is not the drain in effect: the marker and the window
// stay, and the announced drain goes ahead at the window's end.
func TestAnnounceCancelNamingAnIgnoredMarker(t *testing.T) {
	for _, tc := range []struct {
		name string
		req  func(epoch string) marker.Request
		want marker.Status
	}{
		{"stale", func(string) marker.Request {
			return marker.Request{RequestID: "old", RequestedAt: time.Now(), Epoch: "boot-z:1"}
		}, marker.Stale},
		{"expired", func(epoch string) marker.Request {
			return marker.Request{RequestID: "old", RequestedAt: time.Now().Add(-2 * marker.DefaultMaxAge), Epoch: epoch}
		}, marker.Expired},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, nil)
			timers := &manualTimers{}
			timers.install(f.g)
			_, err := marker.Write(f.home, tc.req(f.g.Epoch()))
			require.NoError(t, err)
			require.Equal(t, tc.want, f.g.reader.Read().Status)
			done := announce(t, f.g, context.Background(), DrainRequest{RequestID: "w-1", Announce: time.Minute})

			_, err = f.g.CancelDrain(context.Background(), "old")
			var mm *MismatchError
			require.ErrorAs(t, err, &mm, "the ignored marker's id names no drain in effect")
			assert.Equal(t, "w-1", mm.Active)
			pending(t, done, "after the mismatched cancel")
			assert.Equal(t, "old", f.g.reader.Read().Request.RequestID, "the marker is untouched")

			timers.fire(t)
			out := recv(t, done)
			require.NoError(t, out.err, "the announced drain was never cancelled")
			assert.Equal(t, fsm.Draining, f.g.State())
			assert.Equal(t, "w-1", f.g.Status().Drain.RequestID)
		})
	}
}

// TestAnnounceShutdownWins: a shutdown during the window ends it; the
// waiting drain answers ErrShuttingDown and no marker is written.
func TestAnnounceShutdownWins(t *testing.T) {
	f := newFixture(t, nil)
	(&manualTimers{}).install(f.g)
	done := announce(t, f.g, context.Background(), DrainRequest{Announce: time.Minute})
	rep, err := f.shutdown(t, false)
	require.NoError(t, err)
	assert.False(t, rep.Suppressed)
	out := recv(t, done)
	assert.ErrorIs(t, out.err, ErrShuttingDown)
	assert.False(t, markerExists(f.home), "shutdown wins: no marker")
	assert.False(t, f.g.Ready())
}

// TestAnnounceJoin: a second drain with an announce joins the open window
// (its end does not move) and is applied after the first when it ends; a
// drain without announce ends the window at once, applied last.
func TestAnnounceJoin(t *testing.T) {
	t.Run("announce joins", func(t *testing.T) {
		f := newFixture(t, nil)
		timers := &manualTimers{}
		timers.install(f.g)
		first := announce(t, f.g, context.Background(), DrainRequest{RequestID: "a", Announce: 10 * time.Second})
		until := f.g.Status().Drain.AnnounceUntil
		second := announce(t, f.g, context.Background(), DrainRequest{RequestID: "b", Announce: time.Minute})
		assert.Len(t, timers.after, 1, "one window, one timer")
		st := f.g.Status()
		assert.Equal(t, until, st.Drain.AnnounceUntil, "the window keeps its end")
		assert.Equal(t, "b", st.Drain.RequestID, "status shows the request that will be active")
		pending(t, first, "first")
		pending(t, second, "second")

		timers.fire(t)
		a, b := recv(t, first), recv(t, second)
		require.NoError(t, a.err)
		require.NoError(t, b.err)
		assert.False(t, a.res.WasDraining)
		assert.True(t, b.res.WasDraining, "the later request replaced the first")
		assert.Equal(t, "b", f.g.Status().Drain.RequestID)
	})
	t.Run("a drain without announce ends the window now", func(t *testing.T) {
		f := newFixture(t, nil)
		(&manualTimers{}).install(f.g)
		first := announce(t, f.g, context.Background(), DrainRequest{RequestID: "a", Announce: time.Minute})
		res, err := f.g.BeginDrain(context.Background(), DrainRequest{RequestID: "now"})
		require.NoError(t, err)
		assert.Equal(t, fsm.Draining, res.State)
		assert.True(t, res.WasDraining)
		a := recv(t, first)
		require.NoError(t, a.err)
		assert.Equal(t, "a", a.res.Drain.RequestID)
		assert.Equal(t, "now", f.g.Status().Drain.RequestID, "the later request is the active one")
	})
}

// TestAnnounceClientGone: a caller whose context ends during the window
// gets its error, but the drain it asked for stays announced and takes
// effect at the window's end.
func TestAnnounceClientGone(t *testing.T) {
	f := newFixture(t, nil)
	timers := &manualTimers{}
	timers.install(f.g)
	ctx, cancel := context.WithCancel(context.Background())
	done := announce(t, f.g, ctx, DrainRequest{RequestID: "gone", Announce: time.Minute})
	cancel()
	assert.ErrorIs(t, recv(t, done).err, context.Canceled)
	assert.False(t, f.g.Ready(), "still announcing")
	timers.fire(t)
	assert.Equal(t, fsm.Draining, f.g.State())
	assert.Equal(t, "gone", f.g.Status().Drain.RequestID)
}

// TestAnnounceBounds: 0 to MaxAnnounce; anything else is ErrInvalid and
// changes nothing. While draining already, an announce applies at once.
func TestAnnounceBounds(t *testing.T) {
	f := newFixture(t, nil)
	for _, d := range []time.Duration{-time.Second, MaxAnnounce + time.Millisecond, time.Hour} {
		t.Run(fmt.Sprint(d), func(t *testing.T) {
			_, err := f.g.BeginDrain(context.Background(), DrainRequest{Announce: d})
			assert.ErrorIs(t, err, ErrInvalid)
			assert.True(t, f.g.Ready())
			assert.False(t, markerExists(f.home))
		})
	}
	_, err := LocalDrain(f.home, f.procRoot, DrainRequest{Announce: time.Second})
	assert.ErrorIs(t, err, ErrInvalid, "a local drain cannot announce")
	assert.False(t, markerExists(f.home))

	_, err = f.g.BeginDrain(context.Background(), DrainRequest{})
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := f.g.BeginDrain(ctx, DrainRequest{Announce: MaxAnnounce})
	require.NoError(t, err, "while draining, an announce has nothing to announce")
	assert.Equal(t, fsm.Draining, res.State)
	assert.False(t, errors.Is(ctx.Err(), context.DeadlineExceeded))
}
