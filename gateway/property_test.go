package gateway

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"pgregory.net/rapid"

	"github.com/quiesce-dev/quiesce/fsm"
	"github.com/quiesce-dev/quiesce/internal/homefile"
	"github.com/quiesce-dev/quiesce/marker"
	"github.com/quiesce-dev/quiesce/notify"
)

// markerKind is how the property test writes a marker.
type markerKind string

const (
	mkFresh    markerKind = "fresh"
	mkSuppress markerKind = "suppress"
	mkOther    markerKind = "other-epoch"
	mkLegacy   markerKind = "legacy"
	mkCorrupt  markerKind = "corrupt"
	mkExpired  markerKind = "expired"
)

// markerModel is what the test believes the marker file holds.
type markerModel struct {
	kind      markerKind
	epoch     string
	writtenAt time.Time
}

// fakeClock is a settable clock shared with the gateway's goroutines.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// gwModel drives one property-test run: a home, a gateway instance
// (replaced on restart), a gated agent shared across instances, and the
// model the invariants are checked against.
type gwModel struct {
	home, procBase string
	bootStart      int
	clock          *fakeClock
	agent          *gatedAgent
	rec            *notify.Recorder
	g              *Gateway

	marker   *markerModel
	shutting bool                    // this instance began shutting down
	forced   bool                    // this instance's shutdown was forced
	turns    map[string]chan turnOut // user turns in flight, by session
	returned map[string]int          // turn results received, by session
	events   []string                // every internal event text issued
	finished []chan turnOut          // result channels already read once

	completed map[string]int // I8: event text → its starts when its turn completed

	// timers end announce windows by hand; window is the answer channel of
	// the drain waiting in the open announce window (nil: none), and
	// windowKind the marker it writes when the window ends.
	timers     *manualTimers
	window     <-chan drainOut
	windowKind markerKind
	// reconciledDrains is whether the marker drained at the last
	// reconcile the model checked (checkMarkerHonoured).
	reconciledDrains bool

	pendingSuppressed bool // suppression decided when shutdown began with turns in flight
	checked           bool // this instance's stop was checked
	prev              period
	trans             *transitions
	seq               int
}

const propMaxAge = time.Hour

var (
	userSessions   = []string{"u1", "u2"}
	systemSessions = []string{"s1", "s2"}
)

func (m *gwModel) procRoot() string {
	return filepath.Join(m.procBase, fmt.Sprint(m.bootStart))
}

// boot builds and starts a gateway instance on the current proc root.
func (m *gwModel) boot(t *rapid.T) {
	dir := m.procRoot()
	if _, err := os.Stat(dir); err != nil {
		writeProcRoot(t, dir, "boot-a", m.bootStart)
	}
	g, err := New(Config{
		Home: m.home, ProcRoot: dir, Agent: m.agent, Sinks: []notify.Sink{m.rec},
		DrainTimeout: time.Hour, NotifyTimeout: 10 * time.Second, MaxAge: propMaxAge,
		WatchInterval: -1, Now: m.clock.Now, Logger: quietLogger(),
	})
	require.NoErrorf(t, err, "New")
	require.NoErrorf(t, g.Start(context.Background()), "Start")
	m.trans = countTransitions(g.m)
	m.timers = &manualTimers{}
	m.timers.install(g)
	m.window = nil
	m.g, m.shutting, m.forced, m.checked, m.prev = g, false, false, false, m.trans.sample(g.m)
	m.checkMarkerHonoured(t, "boot")
}

// drains and suppresses are the model of marker.Read for the current
// instance.
func (m *gwModel) status() string {
	mk := m.marker
	if mk == nil {
		return "absent"
	}
	epoched := mk.kind != mkLegacy && mk.kind != mkCorrupt
	if epoched && mk.epoch != m.g.Epoch() {
		return "stale"
	}
	if m.clock.Now().Sub(mk.writtenAt) > propMaxAge {
		return "expired"
	}
	if mk.kind == mkCorrupt {
		return "contentless"
	}
	return "active"
}

func (m *gwModel) drains() bool { s := m.status(); return s == "active" || s == "contentless" }

func (m *gwModel) suppresses() bool {
	return m.status() == "active" && m.marker.kind == mkSuppress
}

// checkMarkerHonoured is I5 after a reconcile: the state follows the
// marker exactly while not shutting down, and the status names it.
func (m *gwModel) checkMarkerHonoured(t *rapid.T, when string) {
	if m.shutting {
		return
	}
	m.reconciledDrains = m.drains()
	want := fsm.Running
	if m.drains() {
		want = fsm.Draining
	}
	require.Equalf(t, want, m.g.State(), "I5 (%s): state with marker %s (%+v)", when, m.status(), m.marker)
	st := m.g.Status()
	got := "absent"
	if st.Drain != nil {
		got = st.Drain.Status
	}
	want = fsm.State(m.status())
	if m.window != nil && !m.drains() {
		want = DrainStatusAnnouncing // the window's request, until it ends
	}
	require.Equalf(t, string(want), got, "status reports marker %s, model %s (announce window open %v)", got, want, m.window != nil)
}

// writeMarker writes a marker of kind at the fake clock's time.
func (m *gwModel) writeMarker(t *rapid.T, kind markerKind) {
	now := m.clock.Now()
	mk := &markerModel{kind: kind, epoch: m.g.Epoch(), writtenAt: now}
	req := marker.Request{RequestedAt: now, Epoch: m.g.Epoch(), Principal: "prop"}
	switch kind {
	case mkSuppress:
		req.SuppressNotification = true
	case mkOther:
		req.Epoch, mk.epoch = "boot-z:1", "boot-z:1"
	case mkLegacy:
		req.Epoch, mk.epoch = "", ""
	case mkExpired:
		req.RequestedAt = now.Add(-2 * propMaxAge)
		mk.writtenAt = req.RequestedAt
	}
	path := marker.Path(m.home)
	if kind == mkCorrupt {
		require.NoErrorf(t, homefile.WriteAtomic(path, []byte("{not json"), 0o600), "write corrupt marker")
	} else {
		_, err := marker.Write(m.home, req)
		require.NoErrorf(t, err, "write marker")
	}
	// Ages from mtime follow the fake clock too.
	require.NoErrorf(t, os.Chtimes(path, now, now), "chtimes")
	m.marker = mk
}

// runningSystemSessions lists system sessions whose turn the agent holds.
func (m *gwModel) agentHolds(session string) bool {
	m.agent.mu.Lock()
	defer m.agent.mu.Unlock()
	_, ok := m.agent.gates[session]
	return ok
}

// stopAndCheck waits for the instance to stop and checks I6 for it:
// exactly one broadcast unless suppressed, one ping per interrupted
// session, none for a drained shutdown, everything in the outbox.
func (m *gwModel) stopAndCheck(t *rapid.T, suppressed, forced bool) {
	select {
	case <-m.g.Done():
	case <-time.After(60 * time.Second):
		// A hang detector, not a timing: a stop takes milliseconds alone,
		// but a loaded machine under -race once took over 15 s.
		require.Fail(t, "gateway did not stop")
	}
	rep := m.g.shutdown.report
	msgs, err := notify.ReadOutbox(filepath.Join(m.home, OutboxFileName))
	require.NoErrorf(t, err, "outbox")
	var mine []notify.Message
	for _, msg := range msgs {
		if msg.ShutdownID == rep.ID {
			mine = append(mine, msg)
		}
	}
	wantB := 1
	if suppressed {
		wantB = 0
	}
	n := count(mine, notify.KindShutdownBroadcast, notify.HomeTarget)
	require.Equalf(t, wantB, n, "I6: %d broadcasts, want %d (suppressed=%v)", n, wantB, suppressed)
	// Every user turn in flight was cut off and pinged; a system turn is
	// cut off too but never pinged (its event stays spooled).
	for s := range m.turns {
		require.Containsf(t, rep.Interrupted, s, "user turn %s in flight but not interrupted (%v)", s, rep.Interrupted)
	}
	for _, s := range rep.Interrupted {
		_, user := m.turns[s]
		require.Truef(t, user, "interrupted %s, which had no user turn", s)
		n := count(mine, notify.KindSessionInterrupted, s)
		require.Equalf(t, 1, n, "I6: %d pings for %s", n, s)
	}
	n = count(mine, notify.KindSessionInterrupted, "")
	require.Equalf(t, len(rep.Interrupted), n, "I6: %d pings for %d interrupted sessions", n, len(rep.Interrupted))
	if !forced {
		require.Emptyf(t, rep.Interrupted, "I6: a drained shutdown interrupted %v", rep.Interrupted)
	}
	for s, ch := range m.turns {
		out := recv(t, ch)
		m.returned[s]++
		require.Errorf(t, out.err, "turn %s after force", s)
		require.Truef(t, isInterrupted(out.err), "turn %s after force: %v", s, out.err)
		m.finished = append(m.finished, ch)
		delete(m.turns, s)
	}
	m.checked = true
}

func isInterrupted(err error) bool { return errors.Is(err, ErrInterrupted) }

var errorsIs = errors.Is

// shutdownEndsWindow checks that a shutdown during an announce window
// wins: the waiting drain answers ErrShuttingDown and writes no marker
// (the marker model stays as it was).
func (m *gwModel) shutdownEndsWindow(t *rapid.T) {
	if m.window == nil {
		return
	}
	out := recv(t, m.window)
	require.Truef(t, errorsIs(out.err, ErrShuttingDown), "announced drain after a shutdown: %v, want ErrShuttingDown", out.err)
	m.window = nil
	if m.marker == nil {
		require.False(t, markerExists(m.home), "an announced drain ended by a shutdown wrote a marker")
	}
}

// settle checks the stop of an instance whose shutdown was waiting for
// turns that have now all ended.
func (m *gwModel) settle(t *rapid.T) {
	if m.shutting && !m.checked && len(m.inFlightSessions()) == 0 {
		m.stopAndCheck(t, m.pendingSuppressed, false)
	}
}

// invariants runs after every action.
func (m *gwModel) invariants(t *rapid.T) {
	cur := m.trans.sample(m.g.m)
	snap := cur.Snapshot
	// I2: shutdown wins.
	if m.shutting {
		require.NotContainsf(t, []fsm.State{fsm.Running, fsm.Draining}, snap.State, "I2: %s after shutdown began", snap.State)
	}
	// I1: the count never rises while not running.
	require.Falsef(t, rose(m.prev, cur), "I1: in flight %d → %d while %s", m.prev.InFlight, snap.InFlight, snap.State)
	m.prev = cur
	// Readiness: ready exactly when running with no announce window open;
	// never ready during a window, whose gate stays open unless a marker
	// drains it.
	st := m.g.Status()
	want := snap.State == fsm.Running && m.window == nil
	require.Equalf(t, want, st.Ready, "status ready in %s with window open %v", snap.State, m.window != nil)
	require.Equalf(t, want, m.g.Ready(), "Ready() in %s with window open %v", snap.State, m.window != nil)
	if m.window != nil && !m.shutting && !m.reconciledDrains {
		require.Equalf(t, fsm.Running, snap.State, "the gate closed during the announce window (state %s)", snap.State)
	}
	// Every accepted turn ends exactly once.
	for _, ch := range m.finished {
		require.Empty(t, ch, "a turn returned twice")
	}
	// I8: no internal event is lost: each completed or still spooled; a
	// completed one never runs again.
	for _, ev := range m.events {
		if _, done := m.completed[ev]; done {
			require.NotContainsf(t, m.spooled(), ev, "I8: completed event %s still spooled", ev)
			continue
		}
		require.Containsf(t, m.spooled(), ev, "I8: event %s neither completed nor spooled", ev)
	}
	for ev, n := range m.completed {
		got := m.starts(ev)
		require.Equalf(t, n, got, "I8: completed event %s ran again (%d starts, %d at completion)", ev, got, n)
	}
}

// spooled lists the spooled events as session:text.
func (m *gwModel) spooled() []string {
	var out []string
	for _, e := range m.g.spool.entries() {
		out = append(out, e.Session+":"+e.Text)
	}
	return out
}

// starts counts how often the agent started ev (session:text).
func (m *gwModel) starts(ev string) int {
	n := 0
	for _, s := range m.agent.startedTexts() {
		if s == ev {
			n++
		}
	}
	return n
}

// runningText returns session:text of the turn the agent runs for s.
func (m *gwModel) runningText(s string) string {
	started := m.agent.startedTexts()
	for i := len(started) - 1; i >= 0; i-- {
		if strings.HasPrefix(started[i], s+":") {
			return started[i]
		}
	}
	return ""
}

// inFlightSessions lists every session with a turn in flight now.
func (m *gwModel) inFlightSessions() []string {
	var out []string
	for s := range m.turns {
		out = append(out, s)
	}
	for _, s := range systemSessions {
		if m.agentHolds(s) {
			out = append(out, s)
		}
	}
	return out
}

// TestPropertyGateway drives a gateway with random turns, markers, clock
// steps, restarts, events, drains (with and without an announce window),
// cancels and shutdowns, checking I1, I2, I5, I6, that no internal event
// is lost, that every accepted turn ends exactly once, and the announce
// window: never ready during it, the gate open until it ends, closed when
// its drain answers, a cancel makes it ready again, a shutdown wins.
func TestPropertyGateway(t *testing.T) {
	if testing.Short() {
		t.Skip("slow: real files and fsyncs")
	}
	rapid.Check(t, func(t *rapid.T) {
		base, err := os.MkdirTemp("", "quiesce-prop-")
		require.NoError(t, err)
		m := &gwModel{
			home: filepath.Join(base, "home"), procBase: filepath.Join(base, "proc"), bootStart: 100,
			clock: &fakeClock{now: time.Now()}, agent: newGatedAgent(), rec: &notify.Recorder{},
			turns: map[string]chan turnOut{}, returned: map[string]int{}, completed: map[string]int{},
		}
		m.boot(t)
		defer func() {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			_, _ = m.g.Shutdown(ctx, true)
			_ = m.g.Close()
			_ = os.RemoveAll(base)
		}()

		t.Repeat(map[string]func(*rapid.T){
			"": func(t *rapid.T) { m.invariants(t) },
			"start turn": func(t *rapid.T) {
				s := rapid.SampledFrom(userSessions).Draw(t, "session")
				if _, busy := m.turns[s]; busy {
					_, err := m.g.Turn(context.Background(), s, "again")
					require.Truef(t, errorsIs(err, ErrSessionBusy) || errorsIs(err, ErrRefused), "busy session: %v", err)
					return
				}
				if m.g.State() != fsm.Running {
					_, err := m.g.Turn(context.Background(), s, "hi")
					require.Truef(t, errorsIs(err, ErrRefused), "turn in %s: %v", m.g.State(), err)
					return
				}
				ch := make(chan turnOut, 2)
				go func() {
					r, err := m.g.Turn(context.Background(), s, "hi")
					ch <- turnOut{r, err}
				}()
				m.agent.waitStarted(t, s)
				m.turns[s] = ch
			},
			"finish turn": func(t *rapid.T) {
				if len(m.turns) == 0 {
					t.Skip("no turn in flight")
				}
				keys := make([]string, 0, len(m.turns))
				for s := range m.turns {
					keys = append(keys, s)
				}
				slices.Sort(keys)
				s := rapid.SampledFrom(keys).Draw(t, "session")
				m.agent.finish(s)
				out := recv(t, m.turns[s])
				m.returned[s]++
				require.NoErrorf(t, out.err, "finished turn %s", s)
				require.Equalf(t, "re: hi", out.reply, "finished turn %s", s)
				m.finished = append(m.finished, m.turns[s])
				delete(m.turns, s)
				m.settle(t)
			},
			"finish system turn": func(t *rapid.T) {
				s := rapid.SampledFrom(systemSessions).Draw(t, "session")
				if !m.agentHolds(s) {
					t.Skip("no system turn")
				}
				ev := m.runningText(s)
				m.agent.finish(s)
				eventually(t, "event "+ev+" completed", func() bool { return !slices.Contains(m.spooled(), ev) })
				m.completed[ev] = m.starts(ev)
				m.settle(t)
			},
			"write marker": func(t *rapid.T) {
				kind := rapid.SampledFrom([]markerKind{mkFresh, mkSuppress, mkOther, mkLegacy, mkCorrupt, mkExpired}).Draw(t, "kind")
				m.writeMarker(t, kind)
			},
			"begin drain api": func(t *rapid.T) {
				suppress := rapid.Bool().Draw(t, "suppress")
				_, err := m.g.BeginDrain(context.Background(), DrainRequest{SuppressNotification: &suppress})
				if m.shutting {
					require.Truef(t, errorsIs(err, ErrShuttingDown), "BeginDrain while shutting down: %v, want ErrShuttingDown", err)
					return // shutdown wins: the marker is untouched
				}
				require.NoErrorf(t, err, "BeginDrain")
				if m.window != nil { // a drain now ends the window: its drain was applied first
					require.NoErrorf(t, recv(t, m.window).err, "the announced drain, ended by a drain without announce")
					m.window = nil
				}
				kind := mkFresh
				if suppress {
					kind = mkSuppress
				}
				m.marker = &markerModel{kind: kind, epoch: m.g.Epoch(), writtenAt: m.clock.Now()}
				m.checkMarkerHonoured(t, "drain api")
			},
			"announce drain": func(t *rapid.T) {
				if m.shutting || m.window != nil || m.g.State() != fsm.Running {
					t.Skip("announce opens a window only while running, with none open")
				}
				suppress := rapid.Bool().Draw(t, "suppress")
				m.window = announce(t, m.g, context.Background(), DrainRequest{SuppressNotification: &suppress, Announce: time.Minute})
				m.windowKind = mkFresh
				if suppress {
					m.windowKind = mkSuppress
				}
				select {
				case out := <-m.window:
					require.Fail(t, fmt.Sprintf("the drain answered during its announce window: %v", out.err))
				default:
				}
			},
			"end announce window": func(t *rapid.T) {
				if m.window == nil {
					t.Skip("no announce window")
				}
				m.timers.fire(t)
				out := recv(t, m.window)
				m.window = nil
				require.NoErrorf(t, out.err, "announced drain")
				// I1 from the answer on: the gate closed before it.
				require.Equalf(t, fsm.Draining, out.res.State, "announced drain answered in %s (now %s)", out.res.State, m.g.State())
				require.Equalf(t, fsm.Draining, m.g.State(), "announced drain answered in %s (now %s)", out.res.State, m.g.State())
				m.marker = &markerModel{kind: m.windowKind, epoch: m.g.Epoch(), writtenAt: m.clock.Now()}
				m.checkMarkerHonoured(t, "announce end")
			},
			"cancel api": func(t *rapid.T) {
				res, err := m.g.CancelDrain(context.Background(), "")
				if m.shutting {
					require.Truef(t, errorsIs(err, ErrShuttingDown), "CancelDrain while shutting down: %v, want ErrShuttingDown", err)
					return
				}
				require.NoErrorf(t, err, "CancelDrain")
				if m.window != nil {
					out := recv(t, m.window)
					require.Truef(t, errorsIs(out.err, ErrDrainCancelled), "announced drain after a cancel: %v, want ErrDrainCancelled", out.err)
					m.window = nil
					require.True(t, res.WasDraining, "a cancel that ended an announce window says was_draining false")
				}
				m.marker = nil
				m.checkMarkerHonoured(t, "cancel api")
				require.True(t, m.g.Ready(), "not ready after a cancel")
			},
			"clear marker": func(t *rapid.T) {
				_, err := marker.Clear(m.home, "")
				require.NoErrorf(t, err, "clear")
				m.marker = nil
			},
			"advance clock": func(t *rapid.T) {
				m.clock.advance(rapid.SampledFrom([]time.Duration{time.Minute, 40 * time.Minute, 2 * time.Hour}).Draw(t, "by"))
			},
			"reconcile": func(t *rapid.T) {
				m.g.Reconcile(context.Background())
				m.checkMarkerHonoured(t, "reconcile")
				m.settle(t)
			},
			"internal event": func(t *rapid.T) {
				s := rapid.SampledFrom(systemSessions).Draw(t, "session")
				m.seq++
				text := fmt.Sprintf("ev-%d", m.seq)
				_, err := m.g.Event(context.Background(), s, text)
				require.NoErrorf(t, err, "Event")
				m.events = append(m.events, s+":"+text)
				m.settle(t)
			},
			"shutdown": func(t *rapid.T) {
				if m.shutting {
					t.Skip("already shutting down (see force or second shutdown)")
				}
				suppressed := m.suppresses()
				m.g.BeginShutdown(false)
				m.shutting = true
				m.shutdownEndsWindow(t)
				require.Containsf(t, []fsm.State{fsm.ShuttingDown, fsm.Stopped}, m.g.State(), "after shutdown: %s", m.g.State())
				if len(m.inFlightSessions()) == 0 {
					m.stopAndCheck(t, suppressed, false)
				} else {
					m.pendingSuppressed = suppressed
				}
			},
			"repeat shutdown": func(t *rapid.T) {
				if !m.shutting {
					t.Skip("not shutting down")
				}
				st := m.g.BeginShutdown(false)
				require.Truef(t, st.AlreadyShuttingDown, "I3: a repeated shutdown without force must change nothing: %+v", st)
				require.Equalf(t, m.forced, st.Force, "I3: a repeated shutdown without force must change nothing: %+v", st)
				for s, ch := range m.turns {
					select {
					case out := <-ch:
						require.Fail(t, fmt.Sprintf("I3: a repeated non-force shutdown ended turn %s: %v", s, out.err))
					default:
					}
				}
			},
			"force shutdown": func(t *rapid.T) {
				suppressed := m.suppresses()
				if m.shutting {
					suppressed = m.pendingSuppressed
				}
				select {
				case <-m.g.Done():
					t.Skip("already stopped")
				default:
				}
				m.g.BeginShutdown(true)
				m.shutting, m.forced = true, true
				m.shutdownEndsWindow(t)
				m.stopAndCheck(t, suppressed, true)
			},
			"restart": func(t *rapid.T) {
				select {
				case <-m.g.Done():
				default:
					t.Skip("still running")
				}
				if rapid.Bool().Draw(t, "machine restart (new epoch)") {
					m.bootStart++
				}
				require.NoErrorf(t, m.g.Close(), "Close")
				m.boot(t)
				m.settle(t)
			},
		})
	})
}
