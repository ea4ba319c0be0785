package main_test

import (
	"cmp"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/quiesce-dev/quiesce/fsm"
	"github.com/quiesce-dev/quiesce/internal/testing/lincheck"
)

// Sizes of the linearizability run. make test runs the defaults; make soak
// raises them through QUIESCE_LIN_OPS, QUIESCE_LIN_CLIENTS and
// QUIESCE_LIN_WINDOW_OPS.
const (
	defaultLinOps     = 400
	defaultLinClients = 8
	// defaultLinWindowOps: a window ends once its clients have issued this
	// many operations (at most half the run's). The lifecycle is one
	// object, so nothing partitions the history: each window is checked on
	// its own, from the state observed while nothing was in flight, and is
	// kept small enough for the checker to answer.
	defaultLinWindowOps = 1000
	// linWindowMax ends a window that is slow to reach its operations.
	linWindowMax = 30 * time.Second
	// linCheckTimeout bounds the check of one window (then: Unknown).
	linCheckTimeout = 120 * time.Second
	// linObserveBound: how long the marker writer looks for its change in
	// status before it records the outcome as unknown.
	linObserveBound = 3 * time.Second
	// linAgentWork: the echo agent's time per turn (short: many turns).
	linAgentWork = "2ms"
)

// linRecorder drives the real binary with concurrent clients and records
// what each saw, as lincheck operations on one monotonic clock.
type linRecorder struct {
	t      *testing.T
	p      *gatewayProc
	client *http.Client
	origin time.Time
	epoch  string
	// markerMu keeps the outside marker writer apart from API drains and
	// cancels (they hold it shared, the writer exclusively, from its
	// rename until its change shows): an API drain or cancel answers the
	// state after its own reconcile, which also applies whatever an
	// outside writer put in the file meanwhile, so its answer would show
	// both changes (see docs/RELIABILITY.md "Linearizability").
	markerMu sync.RWMutex
	// shutdownSent is set once the final window's shutdown request is
	// on its way: from then on a request may find the gateway gone.
	shutdownSent atomic.Bool
}

// now is the recorder's clock: nanoseconds since it started (monotonic).
func (r *linRecorder) now() int64 { return int64(time.Since(r.origin)) }

// linWindow is one window of the history.
type linWindow struct {
	init fsm.State // observed before it, with nothing in flight
	ops  []lincheck.Op
	took time.Duration // recording it
}

// TestLinearizability records what clients of the real binary saw — turns
// on many sessions, drains and cancels through the API and through the
// marker file written and removed by another process, status reads, and
// finally a shutdown — and checks the history with porcupine against the
// sequential model of the lifecycle (internal/testing/lincheck): every
// window must come back Ok. A history edited to hold one turn accepted
// after a drain's answer must come back Illegal.
func TestLinearizability(t *testing.T) {
	t.Parallel()
	total := envCount(t, "QUIESCE_LIN_OPS", defaultLinOps)
	clients := envCount(t, "QUIESCE_LIN_CLIENTS", defaultLinClients)
	perWindow := min(envCount(t, "QUIESCE_LIN_WINDOW_OPS", defaultLinWindowOps), max(total/2, 1))
	p := startGateway(t, newHome(t), fakeProcRoot(t, "boot-lin", 100), "--agent-work", linAgentWork)
	r := &linRecorder{t: t, p: p, client: soakClient(t, clients+4), origin: time.Now()}
	epoch, ok := p.status()["epoch"].(string)
	require.True(t, ok, "status has the instance epoch")
	r.epoch = epoch

	var windows []linWindow
	for recorded, final := 0, false; !final; {
		final = recorded+perWindow >= total
		w := r.window(clients, perWindow, final)
		windows = append(windows, w)
		recorded += len(w.ops)
	}

	kinds := map[lincheck.Kind]int{}
	turns := map[bool]int{}
	unknown := 0
	var checked int
	var took time.Duration
	verdict := porcupine.Ok
	for i, w := range windows {
		for _, op := range w.ops {
			kinds[op.Kind]++
			if op.Out.Unknown {
				unknown++
			}
			if op.Kind == lincheck.Turn && !op.Out.Unknown {
				turns[op.Out.Accepted]++
			}
		}
		res := lincheck.Check(w.init, w.ops, linCheckTimeout)
		checked += res.Ops
		took += res.Took
		t.Logf("window %d: from %s, %d operations recorded in %v: %s in %v",
			i, w.init, res.Ops, w.took.Round(time.Millisecond), res.Verdict, res.Took.Round(time.Millisecond))
		if res.Verdict != porcupine.Ok {
			r.visualize(i, w)
			if verdict == porcupine.Ok || res.Verdict == porcupine.Illegal {
				verdict = res.Verdict
			}
		}
	}
	t.Logf("linearizability: %d clients, %d operations checked in %d windows: %s, checking time %v",
		clients, checked, len(windows), verdict, took.Round(time.Millisecond))
	t.Logf("operations: %v; turns accepted %d, refused %d; outcomes unknown %d", kinds, turns[true], turns[false], unknown)
	assert.Equal(t, porcupine.Ok, verdict, "the real binary's history is linearizable (Unknown: the checker ran out of time)")
	assert.Positive(t, turns[true], "some turns were accepted")
	assert.Positive(t, turns[false], "some turns were refused")
	assert.Positive(t, kinds[lincheck.MarkerDrain]+kinds[lincheck.MarkerCancel], "the marker writer changed the marker")
	assert.Equal(t, 1, kinds[lincheck.Shutdown], "one shutdown")
	assert.Equal(t, 1, kinds[lincheck.Stop], "one stop")

	t.Run("planted turn accepted after a drain's answer is Illegal", func(t *testing.T) {
		for i, w := range windows {
			planted, at, ok := lincheck.PlantAcceptedAfterDrain(w.ops)
			if !ok {
				continue
			}
			res := lincheck.Check(w.init, planted, linCheckTimeout)
			t.Logf("window %d, %d operations, planted %v: %s in %v", i, res.Ops, planted[at], res.Verdict, res.Took.Round(time.Millisecond))
			assert.Equal(t, porcupine.Illegal, res.Verdict)
			return
		}
		require.Fail(t, "no window had an API drain to plant a violation after")
	})
}

// linSpan is the shared state of one window's goroutines.
type linSpan struct {
	r        *linRecorder
	ops      int          // the window ends once clients have issued this many
	count    atomic.Int64 // operations the clients have issued
	stop     chan struct{}
	stopped  sync.Once  // closes stop once
	mu       sync.Mutex // guards recorded
	recorded []lincheck.Op
}

// end ends the window.
func (s *linSpan) end() { s.stopped.Do(func() { close(s.stop) }) }

// halted reports whether the window has ended.
func (s *linSpan) halted() bool {
	select {
	case <-s.stop:
		return true
	default:
		return false
	}
}

// keep adds one goroutine's operations to the window.
func (s *linSpan) keep(mine []lincheck.Op) {
	s.mu.Lock()
	s.recorded = append(s.recorded, mine...)
	s.mu.Unlock()
}

// window records one window: clients send turns and read status until they
// have issued ops operations, while the operator drains and cancels through
// the API and the marker writer renames markers in and removes them; the
// final window also sends the shutdown halfway and ends when the gateway
// has exited. It starts and (except the final one) ends with the gateway
// idle and its state agreeing with the marker file.
func (r *linRecorder) window(clients, ops int, final bool) linWindow {
	t := r.t
	w := linWindow{init: r.steady()}
	began := time.Now()
	s := &linSpan{r: r, ops: ops, stop: make(chan struct{})}
	var wg sync.WaitGroup
	for c := range clients {
		wg.Go(func() { s.client(c) })
	}
	wg.Go(func() { s.operator(clients) })
	wg.Go(func() { s.markerWriter(clients + 1) })
	if final {
		wg.Go(func() { s.shutdown(clients + 2) })
	}
	timer := time.AfterFunc(linWindowMax, s.end)
	defer timer.Stop()
	waitGroup(t, &wg, linWindowMax+2*linObserveBound+exitTimeout, "the window's clients")
	if final {
		require.Equal(t, 0, r.p.wait(), "a clean exit after the shutdown")
	} else {
		r.steady()
	}
	// An outcome nobody saw took effect, if at all, before now: the
	// gateway is idle and agrees with the marker file (or has exited).
	last := r.now()
	w.ops = s.recorded
	for i := range w.ops {
		if w.ops[i].Out.Unknown {
			w.ops[i].Return = last
		}
	}
	if final { // the gateway stopped by itself, after the shutdown's call and before it exited
		i := slices.IndexFunc(w.ops, func(op lincheck.Op) bool { return op.Kind == lincheck.Shutdown })
		require.GreaterOrEqual(t, i, 0, "the final window holds the shutdown")
		w.ops = append(w.ops, lincheck.Op{Client: clients + 2, Kind: lincheck.Stop, Call: w.ops[i].Call, Return: last})
	}
	w.took = time.Since(began)
	return w
}

// client c sends turns (on many sessions) and, one time in ten, reads
// status, until the window ends or the gateway is gone.
func (s *linSpan) client(c int) {
	var mine []lincheck.Op
	defer func() { s.keep(mine) }()
	rng := mrand.New(mrand.NewPCG(uint64(c), uint64(time.Now().UnixNano())))
	for n := 0; !s.halted(); n++ {
		kind := lincheck.Turn
		if rng.IntN(10) == 0 {
			kind = lincheck.Status
		}
		op, gone := s.r.clientOp(c, n, kind)
		if op != nil {
			mine = append(mine, *op)
		}
		if gone {
			return
		}
		if s.count.Add(1) >= int64(s.ops) {
			s.end()
		}
		if op != nil && op.Kind == lincheck.Turn && !op.Out.Accepted {
			time.Sleep(time.Millisecond) // a refused turn is fast: back off a little
		}
	}
}

// operator drains and cancels through the API, at random, 1 to 6 ms apart.
func (s *linSpan) operator(client int) {
	var mine []lincheck.Op
	defer func() { s.keep(mine) }()
	for n := 0; !s.halted(); n++ {
		time.Sleep(time.Millisecond + mrand.N(5*time.Millisecond))
		kind := lincheck.Drain
		if mrand.N(2) == 0 {
			kind = lincheck.Cancel
		}
		op, gone := s.r.clientOp(client, n, kind)
		if op != nil {
			mine = append(mine, *op)
		}
		if gone {
			return
		}
	}
}

// markerWriter is another process on the same home: it renames a marker in
// or removes it, at random, 5 to 25 ms apart.
func (s *linSpan) markerWriter(client int) {
	var mine []lincheck.Op
	defer func() { s.keep(mine) }()
	for !s.halted() {
		time.Sleep(5*time.Millisecond + mrand.N(20*time.Millisecond))
		kind := lincheck.MarkerDrain
		if mrand.N(2) == 0 {
			kind = lincheck.MarkerCancel
		}
		op, gone := s.r.markerOp(client, kind)
		mine = append(mine, op)
		if gone || op.Out.Unknown {
			return // its change may still land: no more until the window ends
		}
	}
}

// shutdown sends the shutdown once the clients are halfway through the
// final window.
func (s *linSpan) shutdown(client int) {
	r, t := s.r, s.r.t
	for s.count.Load() < int64(s.ops/2) && !s.halted() {
		time.Sleep(time.Millisecond)
	}
	r.shutdownSent.Store(true)
	op := lincheck.Op{Client: client, Kind: lincheck.Shutdown, Call: r.now()}
	resp, err := doCallWith(r.client, r.p.url, http.MethodPost, "/api/gateway/shutdown", opsToken, `{}`)
	op.Return = r.now()
	switch {
	case err != nil:
		op.Out.Unknown = true
		assert.Fail(t, fmt.Sprintf("shutdown: %v", err))
	case resp.code != http.StatusAccepted:
		op.Out.Unknown = true
		assert.Fail(t, fmt.Sprintf("shutdown answered %d: %s", resp.code, resp.raw))
	default:
		op.Out.Accepted = true
		op.Out.Already, _ = resp.body["already_shutting_down"].(bool)
	}
	s.keep([]lincheck.Op{op})
}

// clientOp issues one operation of kind (Turn, Status, Drain or Cancel)
// as client c; n numbers the client's operations (a turn goes to one of
// many sessions by it). It returns the operation as seen (nil when it
// tells nothing: a turn or read without an answer) and whether the
// gateway is gone (after the shutdown).
func (r *linRecorder) clientOp(c, n int, kind lincheck.Kind) (*lincheck.Op, bool) {
	t := r.t
	method, path, body := http.MethodPost, "/api/gateway/drain", `{"action":"drain"}`
	switch kind {
	case lincheck.Turn:
		path, body = fmt.Sprintf("/v1/sessions/lin-%d-%d/messages", c, n%32), fmt.Sprintf(`{"text":"t%d"}`, n)
	case lincheck.Status:
		method, path, body = http.MethodGet, "/api/gateway/status", ""
	case lincheck.Cancel:
		body = `{"action":"cancel"}`
	}
	if kind == lincheck.Drain || kind == lincheck.Cancel {
		r.markerMu.RLock()
		defer r.markerMu.RUnlock()
	}
	op := lincheck.Op{Client: c, Kind: kind, Call: r.now()}
	resp, err := doCallWith(r.client, r.p.url, method, path, opsToken, body)
	op.Return = r.now()
	if err != nil {
		assert.Truef(t, r.shutdownSent.Load(), "client %d %s: %v", c, kind, err)
		if !kind.ChangesState() {
			return nil, true // no effect on the lifecycle: nothing to check
		}
		op.Out.Unknown = true
		return &op, true
	}
	if !r.outcome(&op, resp) {
		assert.Fail(t, fmt.Sprintf("client %d %s: unexpected answer %d: %s", c, kind, resp.code, resp.raw))
		if !kind.ChangesState() {
			return nil, false
		}
		op.Out.Unknown = true
	}
	return &op, false
}

// outcome fills op's outcome from its answer, and reports whether the
// answer is one the API documents for it.
func (r *linRecorder) outcome(op *lincheck.Op, resp response) bool {
	state, _ := resp.body["state"].(string)
	switch {
	case op.Kind == lincheck.Turn && resp.code == http.StatusOK:
		op.Out.Accepted = true
	case op.Kind == lincheck.Turn:
		return resp.code == http.StatusServiceUnavailable && resp.body["error"] == "draining"
	case op.Kind == lincheck.Status && resp.code == http.StatusOK:
		op.Out.State = fsm.State(state)
	case resp.code == http.StatusOK: // drain, cancel
		op.Out.Accepted, op.Out.State = true, fsm.State(state)
	default: // drain, cancel refused: shutdown wins
		return op.Kind != lincheck.Status && resp.code == http.StatusConflict && resp.body["error"] == "shutting_down"
	}
	return true
}

// markerOp changes the drain marker as another process does — renames a
// fresh marker of this instance in, or removes it — and then reads status
// until the change shows (drain: draining; cancel: running) or a shutdown
// has begun (then what the change led to is unknown). That read is the
// operation's return; when it does not
// come within linObserveBound (an API request changed the file back
// before the gateway read it), the outcome is unknown.
func (r *linRecorder) markerOp(client int, kind lincheck.Kind) (lincheck.Op, bool) {
	t := r.t
	r.markerMu.Lock()
	defer r.markerMu.Unlock()
	want := fsm.Running
	var data []byte
	if kind == lincheck.MarkerDrain {
		want = fsm.Draining
		id := make([]byte, 8)
		_, _ = rand.Read(id)
		data, _ = json.Marshal(map[string]any{"action": "drain", "requested_at": time.Now().UTC().Format(time.RFC3339Nano),
			"principal": "outside", "epoch": r.epoch, "suppress_notification": false, "request_id": hex.EncodeToString(id)})
	}
	op := lincheck.Op{Client: client, Kind: kind, Call: r.now()}
	var err error
	if kind == lincheck.MarkerDrain {
		err = writeMarkerFile(r.p.home, data)
	} else if err = os.Remove(filepath.Join(r.p.home, ".drain_request.json")); errors.Is(err, os.ErrNotExist) {
		err = nil // no marker: the gateway is, or is about to be, running
	}
	if !assert.NoError(t, err, "marker writer") {
		op.Out.Unknown = true // the file may have changed all the same
		return op, true
	}
	deadline := time.Now().Add(linObserveBound)
	for time.Now().Before(deadline) {
		resp, err := doCallWith(r.client, r.p.url, http.MethodGet, "/api/gateway/status", opsToken, "")
		if err != nil {
			assert.Truef(t, r.shutdownSent.Load(), "marker writer: status: %v", err)
			op.Out.Unknown = true
			return op, true
		}
		switch s := fsm.State(fmt.Sprint(resp.body["state"])); s {
		case want:
			op.Return, op.Out.State = r.now(), s
			return op, false
		case fsm.ShuttingDown, fsm.Stopped:
			// A shutdown came between: the change took effect before it
			// (then a turn may have been accepted in between) or never.
			// Either way it is over by now, but what it led to is not
			// what this read shows.
			op.Return, op.Out.Unknown = r.now(), true
			return op, false
		}
		time.Sleep(time.Millisecond)
	}
	op.Out.Unknown = true
	return op, false
}

// steady waits until the gateway is idle with its state agreeing with the
// marker file (draining with a drain request, running without one), so no
// reconcile is left to change it, and returns that state.
func (r *linRecorder) steady() fsm.State {
	var state fsm.State
	eventually(r.t, 10*time.Second, "the gateway idle and agreeing with its marker", func() bool {
		st := r.p.status()
		state = fsm.State(fmt.Sprint(st["state"]))
		idle := st["active_agents"] == float64(0)
		return idle && (state == fsm.Running && st["drain"] == nil || state == fsm.Draining && st["drain"] != nil)
	})
	return state
}

// visualize writes porcupine's view of window i to a file that outlives
// the test, and logs its path.
func (r *linRecorder) visualize(i int, w linWindow) {
	path := filepath.Join(os.TempDir(), fmt.Sprintf("quiesce-linearizability-%d-window-%d.html", os.Getpid(), i))
	if _, err := lincheck.Visualize(w.init, w.ops, linCheckTimeout, path); err != nil {
		r.t.Logf("window %d: %v", i, err)
		return
	}
	r.t.Logf("window %d: the history and the longest linearizations found: %s", i, path)
	var b strings.Builder
	fmt.Fprintf(&b, "init %s\n", w.init)
	sorted := slices.Clone(w.ops)
	slices.SortFunc(sorted, func(a, b lincheck.Op) int { return cmp.Compare(a.Call, b.Call) })
	for _, op := range sorted {
		fmt.Fprintln(&b, op)
	}
	txt := strings.TrimSuffix(path, ".html") + ".txt"
	if err := os.WriteFile(txt, []byte(b.String()), 0o600); err != nil {
		r.t.Logf("window %d: %v", i, err)
		return
	}
	r.t.Logf("window %d: the operations by call time: %s", i, txt)
}
