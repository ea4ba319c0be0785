package gateway

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/quiesce-dev/quiesce/agent"
)

type ctxKey struct{}

// seenCtx is what an agent saw of its turn's context once it was done
// (or when its wait for that gave up).
type seenCtx struct {
	done  bool
	err   error
	cause error
	value any
}

// TestTurnContext: the context an agent runs with carries the caller's
// values, and is done, with context.Canceled and a cause the agent can
// tell apart, when a forced shutdown interrupts the turn, when the
// client goes away, and once the turn has returned (so what the agent
// left behind, waiting on it, is released).
func TestTurnContext(t *testing.T) {
	errClientGone := errors.New("client went away")
	for _, tc := range []struct {
		name string
		// end ends the turn: cancelClient cancels the turn's caller.
		end       func(t *testing.T, f *fixture, cancelClient context.CancelCauseFunc)
		wait      bool  // the agent waits for its context to be done
		wantCause error // the cause the agent sees
		wantErr   error // what Turn returns, wrapped
	}{
		{"interrupted by a forced shutdown", func(t *testing.T, f *fixture, _ context.CancelCauseFunc) {
			_, _ = f.shutdown(t, true)
		}, true, ErrInterrupted, ErrInterrupted},
		{"the client went away", func(_ *testing.T, _ *fixture, cancelClient context.CancelCauseFunc) {
			cancelClient(errClientGone)
		}, true, errClientGone, errClientGone},
		{"the turn returned", func(*testing.T, *fixture, context.CancelCauseFunc) {}, false, context.Canceled, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			type started struct {
				ctx context.Context
				at  seenCtx // as the agent saw it when it started
			}
			running := make(chan started, 1)
			seen := make(chan seenCtx, 1)
			f := newFixture(t, func(c *Config) {
				c.Agent = agent.Func(func(ctx context.Context, turn agent.Turn) (string, error) {
					running <- started{ctx, seenCtx{done: isDone(ctx.Done()), err: ctx.Err(), value: ctx.Value(ctxKey{})}}
					if !tc.wait {
						return turn.Text, nil
					}
					wait, stop := context.WithTimeout(context.Background(), 10*time.Second)
					defer stop()
					select {
					case <-ctx.Done():
					case <-wait.Done(): // the bug: seen below as not done
					}
					seen <- seenCtx{done: isDone(ctx.Done()), err: ctx.Err(), cause: context.Cause(ctx), value: ctx.Value(ctxKey{})}
					return "", context.Cause(ctx)
				})
			})
			client, cancelClient := context.WithCancelCause(context.WithValue(context.Background(), ctxKey{}, "request-scoped"))
			defer cancelClient(nil)
			out := make(chan turnOut, 1)
			go func() {
				reply, err := f.g.Turn(client, "alice", "hi")
				out <- turnOut{reply, err}
			}()
			st := recv(t, running)
			ctx := st.ctx
			require.Equal(t, "request-scoped", st.at.value, "the caller's values reach the agent")
			require.False(t, st.at.done, "a running turn's context is not done")
			require.NoError(t, st.at.err)
			tc.end(t, f, cancelClient)
			res := recv(t, out)
			if tc.wait {
				s := recv(t, seen)
				require.True(t, s.done, "Done is closed")
				require.ErrorIs(t, s.err, context.Canceled)
				require.ErrorIs(t, s.cause, tc.wantCause)
				require.Equal(t, "request-scoped", s.value)
			}
			if tc.wantErr == nil {
				require.NoError(t, res.err)
				require.Equal(t, "hi", res.reply)
			} else {
				require.ErrorIs(t, res.err, tc.wantErr)
			}
			// Once Turn has returned, the turn's context is released.
			require.True(t, isDone(ctx.Done()), "released when the turn returns")
			require.ErrorIs(t, ctx.Err(), context.Canceled)
			require.ErrorIs(t, context.Cause(ctx), tc.wantCause)
			require.Zero(t, f.g.Status().Agent.Failures, "a cancelled turn is not the agent's failure")
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
