package gateway

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"pgregory.net/rapid"

	"github.com/quiesce-dev/quiesce/agent"
)

// TestPropertyStreamedTurnsEndExactlyOnce: with a streaming agent that
// replies, fails or hangs at random, and drains and forced shutdowns at
// random, every accepted turn (Started called) ends exactly once — a
// reply, a failure or an interruption, never two — no delta arrives
// after its end, and a refused turn never starts.
func TestPropertyStreamedTurnsEndExactlyOnce(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		type plan struct {
			deltas int
			fail   bool
			hang   bool
		}
		var plans sync.Map // text → plan
		agent := agent.Func(func(ctx context.Context, turn agent.Turn) (string, error) {
			v, _ := plans.Load(turn.Text)
			p := v.(plan)
			var sb strings.Builder
			for i := range p.deltas {
				d := fmt.Sprintf("d%d ", i)
				sb.WriteString(d)
				turn.Delta(d)
			}
			switch {
			case p.hang:
				<-ctx.Done()
				return "", context.Cause(ctx)
			case p.fail:
				return "", errors.New("agent broke")
			}
			return sb.String(), nil
		})
		home, proc := t.TempDir(), t.TempDir()
		writeProcRoot(t, proc, "boot-s", 1)
		g, err := New(Config{Home: home, ProcRoot: proc, Agent: agent, DrainTimeout: time.Hour,
			NotifyTimeout: 5 * time.Second, WatchInterval: -1, Logger: quietLogger()})
		require.NoError(rt, err)
		defer g.Close()
		require.NoError(rt, g.Start(context.Background()))
		n := rapid.IntRange(1, 12).Draw(rt, "turns")
		var wg sync.WaitGroup
		type outcome struct {
			started, ended atomic.Int32
			lateDelta      atomic.Bool
			err            error
		}
		outs := make([]*outcome, n)
		for i := range n {
			p := plan{deltas: rapid.IntRange(0, 3).Draw(rt, "deltas"), fail: rapid.Bool().Draw(rt, "fail"), hang: rapid.Bool().Draw(rt, "hang")}
			text := fmt.Sprintf("t%d", i)
			plans.Store(text, p)
			o := &outcome{}
			outs[i] = o
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, err := g.Stream(context.Background(), TurnRequest{Session: fmt.Sprintf("s%d", i), Text: text,
					Started: func() { o.started.Add(1) },
					Delta: func(string) {
						if o.ended.Load() > 0 {
							o.lateDelta.Store(true)
						}
					}})
				o.err = err
				o.ended.Add(1)
			}()
		}
		if rapid.Bool().Draw(rt, "drain") {
			_, err := g.BeginDrain(context.Background(), DrainRequest{})
			require.NoError(rt, err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		_, err = g.Shutdown(ctx, true)
		require.NoErrorf(rt, err, "shutdown")
		done := make(chan struct{})
		go func() { wg.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			require.Fail(rt, "a turn never returned")
		}
		for i, o := range outs {
			require.Equalf(rt, int32(1), o.ended.Load(), "turn %d returned %d times", i, o.ended.Load())
			require.Falsef(rt, o.lateDelta.Load(), "turn %d: a delta after it ended", i)
			refused := errors.Is(o.err, ErrRefused)
			s := o.started.Load()
			if refused {
				require.Zerof(rt, s, "turn %d: refused but started", i)
				continue
			}
			require.Equalf(rt, int32(1), s, "turn %d: started %d times (err %v)", i, s, o.err)
			if o.err != nil {
				require.Truef(rt, errors.Is(o.err, ErrAgent) || errors.Is(o.err, ErrInterrupted), "turn %d: ended with %v, want a reply, a failure or an interruption", i, o.err)
			}
		}
	})
}

// TestTurnIDsAreUniqueAndHex: turn ids go upstream as X-Request-Id and to
// exec agents; an upstream may deduplicate on them.
func TestTurnIDsAreUniqueAndHex(t *testing.T) {
	seen := map[string]bool{}
	for range 100000 {
		id := nextTurnID()
		require.Len(t, id, 16)
		require.Equal(t, strings.Trim(id, "0123456789abcdef"), "", id)
		require.False(t, seen[id], "%s repeats", id)
		seen[id] = true
	}
}

// TurnRequest.Delta promises calls "before Stream returns", but Stream
// passes the callback straight to the agent: an agent that returns on
// cancellation while its producer goroutine still emits (a common shape)
// calls Delta after Stream returned, concurrently with the SSE handler's
// final write. Run with -race.
func TestNoDeltaAfterStreamReturns(t *testing.T) {
	late := make(chan struct{})
	agent := agent.Func(func(ctx context.Context, turn agent.Turn) (string, error) {
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
