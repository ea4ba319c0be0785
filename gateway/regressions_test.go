package gateway

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/quiesce-dev/quiesce/fsm"
	"github.com/quiesce-dev/quiesce/internal/homefile"
	"github.com/quiesce-dev/quiesce/notify"
)

// the interrupt pings are sent one by one (one outbox fsync each)
// after the drain timeout and before the notify-timeout window opens, so
// with many interrupted sessions on a slow disk the sequence outlives
// drain + notify + 1s.
func TestShutdownBoundHoldsWithManyPingsOnASlowDisk(t *testing.T) {
	const sessions = 100
	// A disk where an fsync of the outbox takes 20ms (hook installed before
	// any goroutine runs; armed later).
	var slow atomic.Bool
	homefile.SetSyncHook(func(p string) {
		if slow.Load() && filepath.Base(p) == OutboxFileName {
			time.Sleep(20 * time.Millisecond)
		}
	})
	t.Cleanup(func() { homefile.SetSyncHook(nil) })
	f := newFixture(t, func(c *Config) {
		c.DrainTimeout = 100 * time.Millisecond
		c.NotifyTimeout = 100 * time.Millisecond
	})
	for i := range sessions {
		f.startTurn(t, fmt.Sprintf("s%03d", i), "hi")
	}
	slow.Store(true)
	ctx, cancel := context.WithTimeout(context.Background(), f.g.cfg.DrainTimeout+f.g.cfg.NotifyTimeout+time.Second)
	defer cancel()
	rep, err := f.g.Shutdown(ctx, false)
	require.NoError(t, err, "shutdown outlived drain + notify + 1s")
	require.Len(t, rep.Interrupted, sessions)
	require.Equal(t, sessions, count(f.outbox(t), notify.KindSessionInterrupted, ""), "every ping recorded")
}

// a system turn starting (active_agents 0 -> 1) and an event being
// spooled (spooled_events 0 -> 1) do not bump Seq, so WaitChange (the
// status page, sd_notify STATUS=) does not see them.
func TestWaitChangeSeesASystemTurnStart(t *testing.T) {
	f := newFixture(t, nil)
	seq := f.g.Status().Seq
	_, err := f.g.Event(context.Background(), "bg", "job done")
	require.NoError(t, err)
	f.agent.waitStarted(t, "bg")
	require.Equal(t, 1, f.g.Status().ActiveAgents)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	st, err := f.g.WaitChange(ctx, seq)
	require.NoError(t, err, "WaitChange did not return although active_agents went 0 -> 1 (seq stayed %d)", st.Seq)
}

// A spool line longer than the parser's limit must never make the spool
// drop it and every later event: Event refuses texts that could not fit,
// and a spool that holds such a line anyway is refused at start, naming
// the file, with nothing deleted.
func TestSpoolNeverDropsEventsAfterAnOverlongLine(t *testing.T) {
	home, proc := t.TempDir(), t.TempDir()
	writeProcRoot(t, proc, "boot-a", 100)
	cfg := Config{Home: home, ProcRoot: proc, Agent: newGatedAgent(), WatchInterval: -1, Logger: quietLogger()}
	g, err := New(cfg)
	require.NoError(t, err)
	_, err = g.Event(context.Background(), "a", strings.Repeat("x", maxEventText+1))
	require.ErrorIs(t, err, ErrInvalid)
	_, err = g.Event(context.Background(), "b", "small")
	require.NoError(t, err)
	require.NoError(t, g.Close())

	path := filepath.Join(home, SpoolFileName)
	before, err := os.ReadFile(path)
	require.NoError(t, err)
	long := `{"id":"big","session":"a","text":"` + strings.Repeat("x", maxSpoolLine) + `","at":"2026-01-01T00:00:00Z"}` + "\n"
	require.NoError(t, os.WriteFile(path, append([]byte(long), before...), 0o600))
	_, err = New(cfg)
	require.ErrorIs(t, err, ErrHome)
	assert.Contains(t, err.Error(), path)
	after, err := os.ReadFile(path)
	require.NoError(t, err)
	assert.Equal(t, len(long)+len(before), len(after), "nothing deleted")
}

// New starts the notifier's sink goroutines and opens the outbox; a
// Gateway that is Closed without having run its shutdown sequence leaks
// both (Close only closes the spool and the lock).
func TestCloseWithoutShutdownLeaksNoGoroutines(t *testing.T) {
	home, proc := t.TempDir(), t.TempDir()
	writeProcRoot(t, proc, "boot-a", 100)
	before := runtime.NumGoroutine()
	for range 20 {
		g, err := New(Config{Home: home, ProcRoot: proc, WatchInterval: -1, Logger: quietLogger(),
			Sinks: []notify.Sink{notify.NewLog(quietLogger())}})
		require.NoError(t, err)
		require.NoError(t, g.Close())
	}
	eventually(t, "the notifier goroutines of closed gateways gone", func() bool {
		return runtime.NumGoroutine()-before <= 2
	})
}

// ignoringAgent returns a reply after it is cancelled (an agent that
// finishes its work despite the interrupt).
type ignoringAgent struct{ runs atomic.Int32 }

func (a *ignoringAgent) Run(ctx context.Context, t Turn) (string, error) {
	a.runs.Add(1)
	<-ctx.Done()
	time.Sleep(20 * time.Millisecond)
	return "done anyway", nil
}

// a system turn whose agent returned a reply after a forced interrupt
// is treated as interrupted: the event stays spooled and runs again at
// the next start, though it completed.
func TestCompletedSystemTurnNeverRunsAgainAfterForce(t *testing.T) {
	home, proc := t.TempDir(), t.TempDir()
	writeProcRoot(t, proc, "boot-a", 100)
	a := &ignoringAgent{}
	cfg := Config{Home: home, ProcRoot: proc, Agent: a, WatchInterval: -1, Logger: quietLogger(),
		NotifyTimeout: 2 * time.Second}
	g, err := New(cfg)
	require.NoError(t, err)
	require.NoError(t, g.Start(context.Background()))
	_, err = g.Event(context.Background(), "a", "job")
	require.NoError(t, err)
	eventually(t, "system turn running", func() bool { return g.m.InFlight() == 1 })
	sctx, scancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer scancel()
	_, err = g.Shutdown(sctx, true)
	require.NoError(t, err)
	require.Equal(t, fsm.Stopped, g.State())
	require.NoError(t, g.Close())
	require.Equal(t, int32(1), a.runs.Load())
	require.Equal(t, 0, g.spool.len(), "the agent returned a reply, but the event is still spooled and will run again")
}

// the http agent closes a response body it has not read to its end
// (a non-200 answer after 200 bytes; a chunked JSON reply after the
// decoder's last token), so net/http cannot reuse the connection: every
// such turn dials the upstream anew.
func TestHTTPAgentReusesConnections(t *testing.T) {
	for _, tc := range []struct {
		name string
		h    http.HandlerFunc
	}{
		{"non-200 with a body", func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte(strings.Repeat("busy ", 100)))
		}},
		{"chunked JSON", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte(`{"reply":"hi"}`))
			w.(http.Flusher).Flush() // chunked, as many frameworks stream JSON
			_, _ = w.Write([]byte("\n"))
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var conns atomic.Int32
			srv := httptest.NewUnstartedServer(tc.h)
			srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
				if s == http.StateNew {
					conns.Add(1)
				}
			}
			srv.Start()
			defer srv.Close()
			a, err := NewHTTP(srv.URL, HTTPAgentOptions{})
			require.NoError(t, err)
			for i := range 20 {
				_, _ = a.Run(context.Background(), Turn{Session: "s", Text: "x", TurnID: fmt.Sprint(i)})
			}
			require.LessOrEqual(t, conns.Load(), int32(2), "20 sequential turns opened %d connections", conns.Load())
		})
	}
}

// when compactLocked has replaced the file but cannot reopen it
// (EMFILE, or here: something else appears at the path for a moment), it
// returns with s.f still on the old, now unlinked inode and s.torn false:
// the next add appends and fsyncs into that orphan and reports success,
// so an event acknowledged with 202 is not in events.spool.jsonl.
func TestSpoolReopenFailureNeverAcknowledgesIntoAnOrphan(t *testing.T) {
	f := newSpoolFixture(t)
	s := f.open(t)
	var ids []string
	for i := range compactAfter {
		e := event("s", fmt.Sprint(i))
		require.NoError(t, s.add(e))
		ids = append(ids, e.ID)
	}
	for _, id := range ids[:compactAfter-1] { // the next completion compacts
		require.NoError(t, s.complete(id))
	}
	aside := f.path + ".aside"
	var armed atomic.Bool
	armed.Store(true)
	homefile.SetSyncHook(func(p string) {
		if p == f.dir && armed.CompareAndSwap(true, false) {
			// Right after the rename: the reopen will fail.
			require.NoError(t, os.Rename(f.path, aside))
			require.NoError(t, os.Mkdir(f.path, 0o700))
		}
	})
	t.Cleanup(func() { homefile.SetSyncHook(nil) })
	require.Error(t, s.complete(ids[compactAfter-1]), "compaction's reopen failed")
	homefile.SetSyncHook(nil)
	require.NoError(t, os.Remove(f.path))
	require.NoError(t, os.Rename(aside, f.path)) // the compacted file is back

	e := event("s", "acknowledged")
	require.NoError(t, s.add(e), "add reported the event durable")
	data, err := os.ReadFile(f.path)
	require.NoError(t, err)
	require.Contains(t, string(data), e.ID, "the acknowledged event is not in the spool file")
}

// TurnRequest.Delta promises calls "before Stream returns", but Stream
// passes the callback straight to the agent: an agent that returns on
// cancellation while its producer goroutine still emits (a common shape)
// calls Delta after Stream returned, concurrently with the SSE handler's
// final write. Run with -race.
func TestNoDeltaAfterStreamReturns(t *testing.T) {
	late := make(chan struct{})
	agent := AgentFunc(func(ctx context.Context, turn Turn) (string, error) {
		go func() {
			<-ctx.Done()
			time.Sleep(5 * time.Millisecond)
			turn.Delta("late") // the producer has not noticed yet
			close(late)
		}()
		<-ctx.Done()
		return "", ctx.Err()
	})
	f := newFixture(t, func(c *Config) { c.Agent = agent })
	var out []string // stands in for the http.ResponseWriter
	ctx, cancel := context.WithCancel(context.Background())
	go func() { time.Sleep(10 * time.Millisecond); cancel() }()
	_, err := f.g.Stream(ctx, TurnRequest{Session: "s", Text: "hi", Delta: func(s string) { out = append(out, s) }})
	require.Error(t, err)
	out = append(out, "event: failed") // the handler's final write
	<-late
	require.Equal(t, "event: failed", out[len(out)-1], "a delta was written after the terminal event")
}

func TestCloseWithoutShutdownLeaksNoFDs(t *testing.T) {
	home, proc := t.TempDir(), t.TempDir()
	writeProcRoot(t, proc, "boot-a", 100)
	fds := func() int { e, _ := os.ReadDir("/proc/self/fd"); return len(e) }
	before := fds()
	for range 20 {
		g, err := New(Config{Home: home, ProcRoot: proc, WatchInterval: -1, Logger: quietLogger()})
		require.NoError(t, err)
		require.NoError(t, g.Close())
	}
	require.LessOrEqual(t, fds()-before, 1, "fds leaked by New+Close")
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
