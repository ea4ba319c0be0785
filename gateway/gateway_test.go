package gateway

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/quiesce-dev/quiesce/agent"
	"github.com/quiesce-dev/quiesce/fsm"
	"github.com/quiesce-dev/quiesce/marker"
	"github.com/quiesce-dev/quiesce/notify"
)

// Upstream (Hermes gateway) cases, by name.

func TestNewTurnRefusedDuringExternalDrain(t *testing.T) {
	f := newFixture(t, nil)
	res, err := f.g.BeginDrain(context.Background(), DrainRequest{Principal: "ops"})
	require.NoError(t, err)
	require.Equal(t, fsm.Draining, res.State)
	_, err = f.g.Turn(context.Background(), "alice", "hi")
	var refused *RefusedError
	require.ErrorAs(t, err, &refused)
	require.ErrorIs(t, err, ErrRefused)
	require.Equal(t, fsm.Draining, refused.State)
	require.Contains(t, err.Error(), "draining")
}

func TestInFlightTurnNotInterruptedByDrain(t *testing.T) {
	f := newFixture(t, nil)
	out := f.startTurn(t, "alice", "long task")
	_, err := f.g.BeginDrain(context.Background(), DrainRequest{})
	require.NoError(t, err)
	require.Equal(t, 1, f.g.Status().ActiveAgents)
	f.agent.finish("alice")
	got := recv(t, out)
	require.NoError(t, got.err)
	require.Equal(t, "re: long task", got.reply)
	require.Equal(t, fsm.Draining, f.g.State())
}

func TestWatcherEntersThenExitsWithMarker(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.WatchInterval = time.Hour }) // fsnotify only
	_, err := marker.Write(f.home, marker.Request{Epoch: f.g.Epoch(), Principal: "other-process"})
	require.NoError(t, err)
	eventually(t, "draining", func() bool { return f.g.State() == fsm.Draining })
	_, err = marker.Clear(f.home, "")
	require.NoError(t, err)
	eventually(t, "running", func() bool { return f.g.State() == fsm.Running })
}

func TestDrainSuppressSkipsHomeChannelButKeepsSessionPing(t *testing.T) {
	f := newFixture(t, nil)
	f.startTurn(t, "alice", "work")
	_, err := f.g.BeginDrain(context.Background(), DrainRequest{SuppressNotification: ptr(true)})
	require.NoError(t, err)
	rep, err := f.shutdown(t, true)
	require.NoError(t, err)
	require.True(t, rep.Suppressed)
	require.False(t, rep.Broadcast)
	require.Equal(t, []string{"alice"}, rep.Interrupted)
	msgs := f.outbox(t)
	require.Zero(t, count(msgs, notify.KindShutdownBroadcast, ""))
	require.Equal(t, 1, count(msgs, notify.KindSessionInterrupted, "alice"))
	require.Equal(t, 1, f.rec.Count(notify.KindSessionInterrupted, "alice"))
}

func TestShutdownDefersStopUntilActiveTurnFinishes(t *testing.T) {
	f := newFixture(t, nil)
	out := f.startTurn(t, "alice", "work")
	f.g.BeginShutdown(false)
	require.Equal(t, fsm.ShuttingDown, f.g.State())
	select {
	case <-f.g.Done():
		require.Fail(t, "stopped with a turn in flight")
	case <-time.After(50 * time.Millisecond):
	}
	f.agent.finish("alice")
	require.NoError(t, recv(t, out).err)
	f.waitDone(t)
	require.Equal(t, fsm.Stopped, f.g.State())
	msgs := f.outbox(t)
	require.Equal(t, 1, count(msgs, notify.KindShutdownBroadcast, notify.HomeTarget))
	require.Zero(t, count(msgs, notify.KindSessionInterrupted, ""), "nobody was cut off")
}

func TestShutdownRequestIsIdempotent(t *testing.T) {
	f := newFixture(t, nil)
	out := f.startTurn(t, "alice", "work")
	first := f.g.BeginShutdown(false)
	again := f.g.BeginShutdown(false) // a repeat without force changes nothing
	require.Equal(t, first.ID, again.ID)
	require.False(t, first.AlreadyShuttingDown)
	require.True(t, again.AlreadyShuttingDown)
	require.False(t, again.Force)
	select {
	case r := <-out:
		require.Fail(t, fmt.Sprintf("a repeated non-force shutdown cut the turn off: %v", r.err))
	case <-time.After(50 * time.Millisecond):
	}
	forced := f.g.BeginShutdown(true) // only force escalates
	require.True(t, forced.Force)
	require.ErrorIs(t, recv(t, out).err, ErrInterrupted)
	f.waitDone(t)
	f.g.BeginShutdown(false) // after stop: nothing repeats
	msgs := f.outbox(t)
	require.Equal(t, 1, count(msgs, notify.KindShutdownBroadcast, ""))
	require.Equal(t, 1, count(msgs, notify.KindSessionInterrupted, "alice"))
}

// More behaviour a gateway user relies on.

func TestSessionBusy(t *testing.T) {
	f := newFixture(t, nil)
	f.startTurn(t, "alice", "one")
	_, err := f.g.Turn(context.Background(), "alice", "two")
	require.ErrorIs(t, err, ErrSessionBusy)
	require.Equal(t, 1, f.g.Status().ActiveAgents, "the busy turn released its ticket")
}

func TestInvalidInput(t *testing.T) {
	f := newFixture(t, nil)
	for _, tc := range []struct{ session, text string }{
		{"", "x"}, {"a/b", "x"}, {"a\nb", "x"}, {string(make([]byte, 300)), "x"}, {"ok", ""}, {"\xff", "x"},
	} {
		_, err := f.g.Turn(context.Background(), tc.session, tc.text)
		require.ErrorIs(t, err, ErrInvalid, "%q %q", tc.session, tc.text)
		_, err = f.g.Event(context.Background(), tc.session, tc.text)
		require.ErrorIs(t, err, ErrInvalid)
	}
	require.Zero(t, f.g.Status().ActiveAgents)
}

func TestAgentPanicBecomesTurnError(t *testing.T) {
	f := newFixture(t, func(c *Config) {
		c.Agent = agent.Func(func(context.Context, agent.Turn) (string, error) { panic("boom") })
	})
	_, err := f.g.Turn(context.Background(), "alice", "hi")
	require.ErrorIs(t, err, ErrAgent)
	require.Contains(t, err.Error(), "boom")
	require.Zero(t, f.g.Status().ActiveAgents)
	_, err = f.g.Turn(context.Background(), "alice", "again") // the session slot was freed
	require.ErrorIs(t, err, ErrAgent)
}

func TestCancelDrain(t *testing.T) {
	f := newFixture(t, nil)
	res, err := f.g.BeginDrain(context.Background(), DrainRequest{RequestID: "r1"})
	require.NoError(t, err)
	require.Equal(t, "r1", res.Drain.RequestID)
	_, err = f.g.CancelDrain(context.Background(), "other")
	require.ErrorIs(t, err, ErrRequestMismatch)
	require.Equal(t, fsm.Draining, f.g.State(), "mismatched cancel leaves the drain")
	c, err := f.g.CancelDrain(context.Background(), "r1")
	require.NoError(t, err)
	require.True(t, c.WasDraining)
	require.Equal(t, fsm.Running, c.State)
	c, err = f.g.CancelDrain(context.Background(), "")
	require.NoError(t, err)
	require.False(t, c.WasDraining, "cancel is idempotent")
}

func TestSurvivingMarkerDrainsFromTheFirstTurn(t *testing.T) {
	home, proc := t.TempDir(), t.TempDir()
	writeProcRoot(t, proc, "boot-a", 100)
	_, err := marker.Write(home, marker.Request{Epoch: marker.CurrentEpoch(proc)})
	require.NoError(t, err)
	f := newFixture(t, func(c *Config) { c.Home, c.ProcRoot = home, proc })
	_, err = f.g.Turn(context.Background(), "alice", "first")
	require.ErrorIs(t, err, ErrRefused)

	// A marker from another instance (machine restarted) is stale.
	home2, proc2 := t.TempDir(), t.TempDir()
	writeProcRoot(t, proc2, "boot-a", 200)
	_, err = marker.Write(home2, marker.Request{Epoch: "boot-a:100"})
	require.NoError(t, err)
	f2 := newFixture(t, func(c *Config) { c.Home, c.ProcRoot = home2, proc2 })
	require.Equal(t, fsm.Running, f2.g.State())
	require.Equal(t, "stale", f2.g.Status().Drain.Status)
}

func TestEventsSpoolWhileDrainingAndReplayOnResume(t *testing.T) {
	f := newFixture(t, nil)
	_, err := f.g.BeginDrain(context.Background(), DrainRequest{})
	require.NoError(t, err)
	r1, err := f.g.Event(context.Background(), "alice", "job 1 done")
	require.NoError(t, err)
	require.True(t, r1.Spooled)
	_, err = f.g.Event(context.Background(), "alice", "job 2 done")
	require.NoError(t, err)
	require.Zero(t, f.g.Status().ActiveAgents, "I1: no event starts while draining")
	require.Len(t, f.g.spool.ids(), 2)

	_, err = f.g.CancelDrain(context.Background(), "")
	require.NoError(t, err)
	f.agent.waitStarted(t, "alice")
	f.agent.finish("alice")
	f.agent.waitStarted(t, "alice")
	f.agent.finish("alice")
	require.Equal(t, []string{"alice:job 1 done", "alice:job 2 done"}, f.agent.startedTexts())
	eventually(t, "spool empty", func() bool { return f.g.spool.len() == 0 })
}

func TestEventWhileRunningStartsAtOnceOrQueuesBehindBusySession(t *testing.T) {
	f := newFixture(t, nil)
	r, err := f.g.Event(context.Background(), "bob", "ping")
	require.NoError(t, err)
	require.False(t, r.Spooled)
	f.agent.waitStarted(t, "bob")
	r, err = f.g.Event(context.Background(), "bob", "second")
	require.NoError(t, err)
	require.True(t, r.Spooled, "queued behind the busy session")
	f.agent.finish("bob")
	f.agent.waitStarted(t, "bob")
	require.Equal(t, []string{"bob:ping", "bob:second"}, f.agent.startedTexts())
}

func TestSpoolReplaysAtNextStart(t *testing.T) {
	f := newFixture(t, nil)
	_, err := f.g.BeginDrain(context.Background(), DrainRequest{})
	require.NoError(t, err)
	_, err = f.g.Event(context.Background(), "carol", "later")
	require.NoError(t, err)
	_, err = f.shutdown(t, false)
	require.NoError(t, err)
	require.NoError(t, f.g.Close())
	_, err = marker.Clear(f.home, "")
	require.NoError(t, err)

	agent := newGatedAgent()
	f2 := newFixture(t, func(c *Config) { c.Home, c.ProcRoot, c.Agent = f.home, f.procRoot, agent })
	agent.waitStarted(t, "carol")
	require.Equal(t, []string{"carol:later"}, agent.startedTexts())
	require.Equal(t, 1, f2.g.spool.len(), "an event leaves the spool only once its turn completed")
	agent.finish("carol")
	eventually(t, "carol's event completed", func() bool { return f2.g.spool.len() == 0 })
}

func TestInterruptedSystemTurnGoesBackToTheSpool(t *testing.T) {
	f := newFixture(t, nil)
	_, err := f.g.Event(context.Background(), "dave", "job")
	require.NoError(t, err)
	f.agent.waitStarted(t, "dave")
	rep, err := f.shutdown(t, true)
	require.NoError(t, err)
	require.Empty(t, rep.Interrupted, "an interrupted system turn resumes by itself: no ping")
	require.Zero(t, count(f.outbox(t), notify.KindSessionInterrupted, "dave"))
	require.NoError(t, f.g.Close())
	sp, err := openSpool(filepath.Join(f.home, SpoolFileName), filepath.Join(f.home, RejectedFileName), quietLogger())
	require.NoError(t, err)
	defer sp.close()
	require.Len(t, sp.pending, 1)
	require.Equal(t, "job", sp.pending[0].Text)
}

func TestStateFile(t *testing.T) {
	f := newFixture(t, nil)
	started := f.g.Status().StateSince
	require.False(t, started.IsZero(), "since the start")
	before := time.Now()
	_, err := f.g.BeginDrain(context.Background(), DrainRequest{Principal: "ops"})
	require.NoError(t, err)
	after := time.Now()
	since := f.g.Status().StateSince
	require.False(t, since.Before(before) || since.After(after), "draining since %v: the drain's own instant", since)
	doc, err := readStateFile(f.home)
	require.NoError(t, err)
	require.Equal(t, fsm.Draining, doc.GatewayState)
	require.True(t, since.Equal(doc.StateSince), "the state file says since when too")
	require.Equal(t, os.Getpid(), doc.PID)
	require.Equal(t, f.g.Epoch(), doc.Epoch)
	require.NotNil(t, doc.Drain)
	require.Equal(t, "ops", doc.Drain.Principal)
	st, err := LocalStatus(f.home, f.procRoot, 0)
	require.NoError(t, err)
	require.Equal(t, fsm.Draining, st.State)
	require.True(t, since.Equal(st.StateSince), "local status reads it from the state file")
	require.Equal(t, "active", st.Drain.Status)

	_, err = f.shutdown(t, false)
	require.NoError(t, err)
	doc, err = readStateFile(f.home)
	require.NoError(t, err)
	require.Equal(t, fsm.Stopped, doc.GatewayState)

	_, err = LocalStatus(t.TempDir(), f.procRoot, 0)
	require.ErrorIs(t, err, os.ErrNotExist)
}

func TestLocalDrainAndCancel(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.WatchInterval = time.Hour })
	info, err := LocalDrain(f.home, f.procRoot, DrainRequest{Principal: "cli", RequestID: "x1"})
	require.NoError(t, err)
	require.Equal(t, f.g.Epoch(), info.Drain.Epoch, "the CLI stamps the same epoch")
	eventually(t, "draining", func() bool { return f.g.State() == fsm.Draining })
	_, err = LocalCancel(f.home, "nope")
	require.ErrorIs(t, err, ErrRequestMismatch)
	var me *MismatchError
	require.ErrorAs(t, err, &me)
	require.Equal(t, "x1", me.ActiveRequestID(), "the error names the active request")
	was, err := LocalCancel(f.home, "x1")
	require.NoError(t, err)
	require.True(t, was)
	eventually(t, "running", func() bool { return f.g.State() == fsm.Running })
}

func TestShutdownDeadlineInterrupts(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.DrainTimeout = 100 * time.Millisecond })
	a := f.startTurn(t, "alice", "x")
	b := f.startTurn(t, "bob", "y")
	rep, err := f.shutdown(t, false)
	require.NoError(t, err)
	require.True(t, rep.Forced)
	require.ElementsMatch(t, []string{"alice", "bob"}, rep.Interrupted)
	require.ErrorIs(t, recv(t, a).err, ErrInterrupted)
	require.ErrorIs(t, recv(t, b).err, ErrInterrupted)
	msgs := f.outbox(t)
	require.Equal(t, 1, count(msgs, notify.KindShutdownBroadcast, ""))
	require.Equal(t, 1, count(msgs, notify.KindSessionInterrupted, "alice"))
	require.Equal(t, 1, count(msgs, notify.KindSessionInterrupted, "bob"))
	_, err = f.g.Event(context.Background(), "alice", "after stop")
	require.NoError(t, err, "events are never refused, even after stop")
}

func TestRefusedErrorMessage(t *testing.T) {
	err := error(&RefusedError{State: fsm.ShuttingDown})
	require.True(t, errors.Is(err, ErrRefused))
	require.Contains(t, err.Error(), "shutting_down")
}

// TestWatchPollOnlyStillDrains: with the poll-only watcher a marker written
// behind the gateway's back drains it within the poll interval, and its
// removal resumes it.
func TestWatchPollOnlyStillDrains(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.WatchPollOnly, c.WatchInterval = true, 20*time.Millisecond })
	_, err := LocalDrain(f.home, f.procRoot, DrainRequest{Principal: "cli"})
	require.NoError(t, err)
	eventually(t, "draining", func() bool { return f.g.State() == fsm.Draining })
	_, err = LocalCancel(f.home, "")
	require.NoError(t, err)
	eventually(t, "running", func() bool { return f.g.State() == fsm.Running })
}

// TestStateSinceNeverPredatesTheSwitch: a status read in the microseconds
// between the gate's switch and the observer's record of it reports the
// read's own instant for the new state, never the previous state's since.
func TestStateSinceNeverPredatesTheSwitch(t *testing.T) {
	f := newFixture(t, nil)
	old := time.Now().Add(-time.Hour).UTC()
	f.g.since.Store(&entered{fsm.Running, old}) // the record of the previous state
	require.Equal(t, old, f.g.stateSince(fsm.Running))
	before := time.Now()
	require.False(t, f.g.stateSince(fsm.Draining).Before(before), "the switch is happening now")
}

// TestStateFileKeepsTheShutdownsMarkerReading: once shutting down, the
// marker changes nothing, and every state write, a coalesced one for a
// turn that ended and the last one included, shows the marker as the
// shutdown read it, even if it is removed meanwhile.
func TestStateFileKeepsTheShutdownsMarkerReading(t *testing.T) {
	f := newFixture(t, nil)
	alice := f.startTurn(t, "alice", "hi")
	bob := f.startTurn(t, "bob", "hi")
	_, err := f.g.BeginDrain(context.Background(), DrainRequest{Principal: "ops", RequestID: "r1"})
	require.NoError(t, err)
	f.g.BeginShutdown(false)
	require.NoError(t, os.Remove(marker.Path(f.home)))
	f.agent.finish("alice")
	require.NoError(t, recv(t, alice).err)
	eventually(t, "a coalesced write for alice's end", func() bool {
		doc, err := readStateFile(f.home)
		return err == nil && doc.GatewayState == fsm.ShuttingDown && doc.ActiveAgents == 1
	})
	doc, err := readStateFile(f.home)
	require.NoError(t, err)
	require.NotNil(t, doc.Drain, "a coalesced write shows the shutdown's reading, not the removed marker")
	require.Equal(t, "r1", doc.Drain.RequestID)

	f.agent.finish("bob")
	require.NoError(t, recv(t, bob).err)
	select {
	case <-f.g.Done():
	case <-time.After(10 * time.Second):
		require.Fail(t, "no stop")
	}
	doc, err = readStateFile(f.home)
	require.NoError(t, err)
	require.Equal(t, fsm.Stopped, doc.GatewayState)
	require.NotNil(t, doc.Drain, "the last write too")
	require.Equal(t, "r1", doc.Drain.RequestID)
}

// TestRedrainRecordsTheNewRequest: a drain while draining changes no
// state, and the state file still comes to show the new request (its
// coalesced write), while a drain that changes the state writes it once,
// at the transition.
func TestRedrainRecordsTheNewRequest(t *testing.T) {
	f := newFixture(t, nil)
	_, err := f.g.BeginDrain(context.Background(), DrainRequest{Principal: "ops", RequestID: "first"})
	require.NoError(t, err)
	doc, err := readStateFile(f.home)
	require.NoError(t, err)
	require.NotNil(t, doc.Drain, "written at the transition, before BeginDrain returns")
	require.Equal(t, "first", doc.Drain.RequestID, "written at the transition, before BeginDrain returns")
	_, err = f.g.BeginDrain(context.Background(), DrainRequest{Principal: "ops", RequestID: "second"})
	require.NoError(t, err)
	eventually(t, "the new request in the state file", func() bool {
		doc, err := readStateFile(f.home)
		return err == nil && doc.Drain != nil && doc.Drain.RequestID == "second"
	})
}
