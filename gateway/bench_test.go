package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// The tests of this file check what the benchmarks below rely on for
// their speed: the zero-work echo agent and the lazy turn context.

func TestEchoAgentZeroWork(t *testing.T) {
	for _, work := range []time.Duration{0, -time.Second} {
		a := NewEcho(work)
		got, err := a.Run(context.Background(), Turn{Session: "s", Text: "hello"})
		require.NoError(t, err)
		require.Equal(t, "hello", got)

		// A cancelled turn is always cut off, with the cancel's cause,
		// before its reply and before any delta.
		ctx, cancel := context.WithCancelCause(context.Background())
		cancel(ErrInterrupted)
		var deltas []string
		_, err = a.Run(ctx, Turn{Session: "s", Text: "hello"})
		require.ErrorIs(t, err, ErrInterrupted)
		_, err = a.Run(ctx, Turn{Session: "s", Text: "a b", OnDelta: func(d string) { deltas = append(deltas, d) }})
		require.ErrorIs(t, err, ErrInterrupted)
		require.Empty(t, deltas)

		// A turn cancelled by its first delta stops before the second.
		ctx, cancel = context.WithCancelCause(context.Background())
		_, err = a.Run(ctx, Turn{Session: "s", Text: "a b", OnDelta: func(d string) {
			deltas = append(deltas, d)
			cancel(context.Canceled)
		}})
		require.ErrorIs(t, err, context.Canceled)
		require.Equal(t, []string{"a "}, deltas)
	}
}

type ctxKey struct{}

// TestTurnContextMatchesWithCancelCause runs every order of the events
// of a turn's context (the parent cancelled, the turn cancelled, the
// real context derived by Done, a second turn cancel) on a turnContext
// and on context.WithCancelCause of the same kind of parent, and requires
// the same Err after each event and the same Done, Err, Cause, Value and
// child cancellation at the end.
func TestTurnContextMatchesWithCancelCause(t *testing.T) {
	errParent := errors.New("parent cause")
	type event func(parentCancel context.CancelCauseFunc, ctx context.Context, cancel context.CancelCauseFunc)
	events := map[string]event{
		"P": func(pc context.CancelCauseFunc, _ context.Context, _ context.CancelCauseFunc) { pc(errParent) },
		"T": func(_ context.CancelCauseFunc, _ context.Context, c context.CancelCauseFunc) { c(ErrInterrupted) },
		"N": func(_ context.CancelCauseFunc, _ context.Context, c context.CancelCauseFunc) { c(nil) },
		"D": func(_ context.CancelCauseFunc, ctx context.Context, _ context.CancelCauseFunc) { _ = ctx.Done() },
	}
	var orders [][]string
	var build func(prefix []string, left []string)
	build = func(prefix, left []string) {
		orders = append(orders, append([]string(nil), prefix...))
		for i, e := range left {
			rest := append(append([]string(nil), left[:i]...), left[i+1:]...)
			build(append(prefix, e), rest)
		}
	}
	build(nil, []string{"P", "T", "N", "D"})
	for _, order := range orders {
		t.Run(fmt.Sprint(order), func(t *testing.T) {
			newParent := func() (context.Context, context.CancelCauseFunc) {
				return context.WithCancelCause(context.WithValue(context.Background(), ctxKey{}, "v"))
			}
			refParent, refParentCancel := newParent()
			ref, refCancel := context.WithCancelCause(refParent)
			parent, parentCancel := newParent()
			tc := &turnContext{parent: parent}
			for _, e := range order {
				events[e](refParentCancel, ref, refCancel)
				events[e](parentCancel, tc, tc.cancel)
				require.Equal(t, ref.Err(), tc.Err(), "Err after %s", e)
			}
			refChild, refChildCancel := context.WithCancel(ref)
			defer refChildCancel()
			child, childCancel := context.WithCancel(tc)
			defer childCancel()
			require.Equal(t, isDone(ref.Done()), isDone(tc.Done()), "Done")
			require.Equal(t, ref.Err(), tc.Err(), "Err")
			require.Equal(t, context.Cause(ref), context.Cause(tc), "Cause")
			require.Equal(t, "v", tc.Value(ctxKey{}))
			require.Equal(t, isDone(refChild.Done()), isDone(child.Done()), "child Done")
			require.Equal(t, context.Cause(refChild), context.Cause(child), "child Cause")
			// Whatever happened so far, a later cancel reaches the
			// context and its child as it reaches the reference.
			refCancel(ErrInterrupted)
			tc.cancel(ErrInterrupted)
			require.Equal(t, context.Cause(ref), context.Cause(tc), "Cause after a last cancel")
			require.Equal(t, context.Cause(refChild), context.Cause(child), "child Cause after a last cancel")
			require.True(t, isDone(tc.Done()))
			require.True(t, isDone(child.Done()))
		})
	}
}

func isDone(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// TestTurnContextConcurrentCancel races the turn's cancel against an
// agent's Done, Err and Cause (go test -race): the agent always ends up
// seeing the cancel, with its cause.
func TestTurnContextConcurrentCancel(t *testing.T) {
	for range 200 {
		tc := &turnContext{parent: context.Background()}
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			tc.cancel(ErrInterrupted)
		}()
		_ = tc.Err()
		<-tc.Done()
		wg.Wait()
		require.ErrorIs(t, tc.Err(), context.Canceled)
		require.ErrorIs(t, context.Cause(tc), ErrInterrupted)
	}
}

// TestTurnContextAfterFunc checks that context.AfterFunc on a turn's
// context (as an agent may use it) runs once the turn is cancelled, and
// only then.
func TestTurnContextAfterFunc(t *testing.T) {
	parent, cancel := context.WithCancel(context.Background())
	defer cancel()
	var ran atomic.Int64
	stopped := make(chan struct{})
	for range 3 {
		tc := &turnContext{parent: parent}
		stop := context.AfterFunc(tc, func() { ran.Add(1); stopped <- struct{}{} })
		select {
		case <-stopped:
			t.Fatal("AfterFunc ran before the cancel")
		case <-time.After(time.Millisecond):
		}
		tc.cancel(nil)
		<-stopped
		require.False(t, stop(), "AfterFunc ran already")
	}
	require.EqualValues(t, 3, ran.Load())
}

// BenchmarkTurn measures the gateway's per-turn overhead (gate, session
// slot, panic guard, state kick) against calling the agent directly, in
// the same run.
func BenchmarkTurn(b *testing.B) {
	agent := AgentFunc(func(_ context.Context, t Turn) (string, error) { return t.Text, nil })
	ctx := context.Background()
	b.Run("baseline=agent-direct", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_, _ = agent.Run(ctx, Turn{Session: "s", Text: "hi"})
		}
	})
	b.Run("turn", func(b *testing.B) {
		f := newFixture(b, func(c *Config) { c.Agent = agent })
		b.ReportAllocs()
		for b.Loop() {
			if _, err := f.g.Turn(ctx, "s", "hi"); err != nil {
				b.Fatal(err)
			}
		}
	})
	// A request's context, as net/http gives each request its own
	// cancellable one: what a turn derives from it is paid per turn.
	b.Run("baseline=agent-direct-request-ctx", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			rctx, cancel := context.WithCancel(ctx)
			_, _ = agent.Run(rctx, Turn{Session: "s", Text: "hi"})
			cancel()
		}
	})
	b.Run("turn-request-ctx", func(b *testing.B) {
		f := newFixture(b, func(c *Config) { c.Agent = NewEcho(0) })
		b.ReportAllocs()
		for b.Loop() {
			rctx, cancel := context.WithCancel(ctx)
			if _, err := f.g.Turn(rctx, "s", "hi"); err != nil {
				b.Fatal(err)
			}
			cancel()
		}
	})
	b.Run("turn-parallel", func(b *testing.B) {
		f := newFixture(b, func(c *Config) { c.Agent = agent })
		b.ReportAllocs()
		var n atomic.Int64
		b.RunParallel(func(pb *testing.PB) {
			session := fmt.Sprint("s", n.Add(1))
			for pb.Next() {
				if _, err := f.g.Turn(ctx, session, "hi"); err != nil {
					b.Fatal(err)
				}
			}
		})
	})
	b.Run("refused", func(b *testing.B) {
		f := newFixture(b, func(c *Config) { c.Agent = agent; c.DrainTimeout = time.Second })
		if _, err := f.g.BeginDrain(ctx, DrainRequest{}); err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		for b.Loop() {
			_, _ = f.g.Turn(ctx, "s", "hi")
		}
	})
}

// BenchmarkHTTPAgent measures a turn through the gateway to an upstream
// agent service against a bare Go client calling the same upstream with
// the same request, in the same run, at 8 concurrent clients (RunParallel
// with 8 goroutines in all). Throughput is ns/op;
// B/op and allocs/op give the extra memory a turn costs.
func BenchmarkHTTPAgent(b *testing.B) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req upstreamRequest
		_ = json.NewDecoder(r.Body).Decode(&req)
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]string{"reply": req.Text})
	}))
	defer up.Close()
	parallelism := max(1, 8/runtime.GOMAXPROCS(0))
	ctx := context.Background()
	b.Run("baseline=bare-client", func(b *testing.B) {
		c := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
		b.ReportAllocs()
		b.SetParallelism(parallelism)
		var n atomic.Int64
		b.RunParallel(func(pb *testing.PB) {
			session := fmt.Sprint("s", n.Add(1))
			for pb.Next() {
				body, _ := json.Marshal(upstreamRequest{Session: session, Text: "hi", TurnID: "t"})
				resp, err := c.Post(up.URL, "application/json", bytes.NewReader(body))
				if err != nil {
					b.Fatal(err)
				}
				var out struct{ Reply string }
				_ = json.NewDecoder(resp.Body).Decode(&out)
				_ = resp.Body.Close()
			}
		})
	})
	b.Run("gateway-http-agent", func(b *testing.B) {
		agent, err := NewHTTP(up.URL, HTTPAgentOptions{})
		if err != nil {
			b.Fatal(err)
		}
		f := newFixture(b, func(c *Config) { c.Agent = agent })
		b.ReportAllocs()
		b.SetParallelism(parallelism)
		var n atomic.Int64
		b.RunParallel(func(pb *testing.PB) {
			session := fmt.Sprint("s", n.Add(1))
			for pb.Next() {
				if _, err := f.g.Turn(ctx, session, "hi"); err != nil {
					b.Fatal(err)
				}
			}
		})
	})
}
