package gateway

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/quiesce-dev/quiesce/agent"
	"github.com/stretchr/testify/require"
)

func TestEchoAgentZeroWork(t *testing.T) {
	for _, work := range []time.Duration{0, -time.Second} {
		a := agent.NewEcho(work)
		got, err := a.Run(context.Background(), agent.Turn{Session: "s", Text: "hello"})
		require.NoError(t, err)
		require.Equal(t, "hello", got)

		// A cancelled turn is always cut off, with the cancel's cause,
		// before its reply and before any delta.
		ctx, cancel := context.WithCancelCause(context.Background())
		cancel(ErrInterrupted)
		var deltas []string
		_, err = a.Run(ctx, agent.Turn{Session: "s", Text: "hello"})
		require.ErrorIs(t, err, ErrInterrupted)
		_, err = a.Run(ctx, agent.Turn{Session: "s", Text: "a b", OnDelta: func(d string) { deltas = append(deltas, d) }})
		require.ErrorIs(t, err, ErrInterrupted)
		require.Empty(t, deltas)

		// A turn cancelled by its first delta stops before the second.
		ctx, cancel = context.WithCancelCause(context.Background())
		_, err = a.Run(ctx, agent.Turn{Session: "s", Text: "a b", OnDelta: func(d string) {
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
