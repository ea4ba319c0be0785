package gateway

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/quiesce-dev/quiesce/agent"
	"github.com/quiesce-dev/quiesce/internal/fakeproc"
	"github.com/quiesce-dev/quiesce/notify"
)

// writeProcRoot writes a fake proc root whose epoch is "<bootID>:<start>".
func writeProcRoot(tb require.TestingT, dir, bootID string, start int) {
	require.NoError(tb, fakeproc.Write(dir, bootID, uint64(start)))
}

// gatedAgent runs turns that finish when the test says so (finish), or
// when their context is cancelled. It records every text it started.
type gatedAgent struct {
	mu       sync.Mutex
	gates    map[string]chan struct{} // per session: closed to finish its turn
	started  []string                 // session:text, in start order
	running  chan string              // receives the session of each started turn
	eventIDs []string                 // event ids of started system turns, in start order
}

func newGatedAgent() *gatedAgent {
	return &gatedAgent{gates: map[string]chan struct{}{}, running: make(chan string, 1024)}
}

func (a *gatedAgent) Run(ctx context.Context, t agent.Turn) (string, error) {
	session, text := t.Session, t.Text
	a.mu.Lock()
	if t.EventID != "" {
		a.eventIDs = append(a.eventIDs, t.EventID)
	}
	gate := make(chan struct{})
	a.gates[session] = gate
	a.started = append(a.started, session+":"+text)
	a.mu.Unlock()
	a.running <- session
	defer func() {
		a.mu.Lock()
		if a.gates[session] == gate {
			delete(a.gates, session)
		}
		a.mu.Unlock()
	}()
	abandon := time.NewTimer(gatedTurnMax)
	defer abandon.Stop()
	select {
	case <-gate:
		return "re: " + text, nil
	case <-ctx.Done():
		return "", context.Cause(ctx)
	case <-abandon.C:
		return "", errAbandonedTurn
	}
}

// gatedTurnMax bounds a gated turn that no test finishes or cancels (one a
// bug let in: a turn meant to be refused): it fails with errAbandonedTurn,
// so the test fails by assertion instead of waiting for the package's
// timeout.
const gatedTurnMax = 10 * time.Second

// errAbandonedTurn is what a gated turn returns after gatedTurnMax.
var errAbandonedTurn = errors.New("gated test agent: turn never finished by the test")

// finish lets session's running turn complete.
func (a *gatedAgent) finish(session string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if g, ok := a.gates[session]; ok {
		close(g)
		delete(a.gates, session)
	}
}

func (a *gatedAgent) startedTexts() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]string(nil), a.started...)
}

// failer is what helpers need from a *testing.T or a *rapid.T: what
// require needs (Errorf and FailNow), which both have.
type failer interface {
	require.TestingT
}

// waitStarted waits until a turn for session has started.
func (a *gatedAgent) waitStarted(tb failer, session string) {
	timeout := time.After(10 * time.Second)
	for {
		select {
		case s := <-a.running:
			if s == session {
				return
			}
		case <-timeout:
			require.Fail(tb, fmt.Sprintf("turn for %s never started", session))
		}
	}
}

// fixture is a Gateway on a temp home and fake proc root.
type fixture struct {
	g        *Gateway
	home     string
	procRoot string
	agent    *gatedAgent
	rec      *notify.Recorder
}

// newFixture builds and starts a gateway; mod may change the config.
func newFixture(tb testing.TB, mod func(*Config)) *fixture {
	tb.Helper()
	f := &fixture{home: tb.TempDir(), procRoot: tb.TempDir(), agent: newGatedAgent(), rec: &notify.Recorder{}}
	writeProcRoot(tb, f.procRoot, "boot-a", 100)
	cfg := Config{
		Home: f.home, ProcRoot: f.procRoot, Agent: f.agent, Sinks: []notify.Sink{f.rec},
		DrainTimeout: time.Hour, NotifyTimeout: 5 * time.Second, WatchInterval: -1,
		Logger: quietLogger(),
	}
	if mod != nil {
		mod(&cfg)
	}
	g, err := New(cfg)
	require.NoError(tb, err)
	require.NoError(tb, g.Start(context.Background()))
	f.g = g
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		_, _ = g.Shutdown(ctx, true)
		_ = g.Close()
	})
	return f
}

func quietLogger() *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// turnResult is what a Turn returned.
type turnOut struct {
	reply string
	err   error
}

// startTurn runs a turn on its own goroutine and waits until the agent has
// it.
func (f *fixture) startTurn(tb testing.TB, session, text string) <-chan turnOut {
	tb.Helper()
	out := make(chan turnOut, 1)
	go func() {
		r, err := f.g.Turn(context.Background(), session, text)
		out <- turnOut{r, err}
	}()
	f.agent.waitStarted(tb, session)
	return out
}

// outbox returns the messages recorded in the home's outbox.
func (f *fixture) outbox(tb testing.TB) []notify.Message {
	tb.Helper()
	msgs, err := notify.ReadOutbox(filepath.Join(f.home, OutboxFileName))
	if os.IsNotExist(err) {
		return nil
	}
	require.NoError(tb, err)
	return msgs
}

// count counts outbox messages of kind (and target, if not empty).
func count(msgs []notify.Message, kind notify.Kind, target string) int {
	n := 0
	for _, m := range msgs {
		if m.Kind == kind && (target == "" || m.Target == target) {
			n++
		}
	}
	return n
}

// recv waits for one value from ch.
func recv[T any](tb failer, ch <-chan T) T {
	select {
	case v := <-ch:
		return v
	case <-time.After(15 * time.Second):
		require.Fail(tb, "timed out")
		panic("unreachable")
	}
}

// waitDone waits for the gateway to stop.
func (f *fixture) waitDone(tb testing.TB) {
	tb.Helper()
	select {
	case <-f.g.Done():
	case <-time.After(15 * time.Second):
		require.Fail(tb, "gateway did not stop")
	}
}

// eventually waits (bounded) for cond, checking on every transition of
// the machine and at short intervals.
func eventually(tb failer, what string, cond func() bool) {
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			require.Fail(tb, fmt.Sprintf("timed out waiting for %s", what))
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// shutdownWaitMax bounds the shutdown helper's wait whatever the
// fixture's drain timeout (an hour, so that no test is forced by it): a
// turn a bug left running fails the test by assertion, not by the
// package's timeout.
const shutdownWaitMax = 30 * time.Second

// shutdown runs Shutdown(force) and fails, rather than hangs, when the
// sequence does not end within its own bound plus a margin (at most
// shutdownWaitMax).
func (f *fixture) shutdown(tb testing.TB, force bool) (ShutdownReport, error) {
	tb.Helper()
	bound := min(f.g.cfg.DrainTimeout+f.g.cfg.NotifyTimeout+10*time.Second, shutdownWaitMax)
	if force {
		bound = f.g.cfg.NotifyTimeout + 10*time.Second
	}
	ctx, cancel := context.WithTimeout(context.Background(), bound)
	defer cancel()
	rep, err := f.g.Shutdown(ctx, force)
	require.NoErrorf(tb, err, "shutdown (force %v) did not end within %v", force, bound)
	return rep, err
}

// ptr returns a pointer to v (DrainRequest's optional fields).
func ptr[T any](v T) *T { return &v }
