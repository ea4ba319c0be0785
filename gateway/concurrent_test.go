package gateway

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/quiesce-dev/quiesce/agent"
	"github.com/quiesce-dev/quiesce/marker"
)

// TestConcurrentTurnsDrainsAndShutdown runs real goroutines against a
// gateway with the real watcher: clients sending turns and events, an
// operator flipping the marker both through the API and behind its back,
// and a sampler checking I1 on every snapshot. Then it shuts down and
// checks that no goroutine is left behind.
func TestConcurrentTurnsDrainsAndShutdown(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	f := newFixture(t, func(c *Config) {
		c.Agent = agent.NewEcho(time.Millisecond)
		c.WatchInterval = 20 * time.Millisecond
	})
	g := f.g
	ctx := context.Background()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var violations atomic.Int64
	var accepted, refused atomic.Int64

	tc := countTransitions(g.m)
	wg.Add(1)
	go func() { // sampler
		defer wg.Done()
		prev := tc.sample(g.m)
		for {
			select {
			case <-stop:
				return
			default:
			}
			s := tc.sample(g.m)
			if rose(prev, s) {
				violations.Add(1)
			}
			prev = s
		}
	}()
	for c := range 4 {
		wg.Add(1)
		go func() { // clients
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				_, err := g.Turn(ctx, fmt.Sprintf("c%d", c), "hi")
				switch {
				case err == nil:
					accepted.Add(1)
				case errors.Is(err, ErrRefused):
					refused.Add(1)
				default:
					assert.Fail(t, fmt.Sprintf("turn: %v", err))
					return
				}
				if i%10 == 0 {
					if _, err := g.Event(ctx, fmt.Sprintf("e%d", c), "bg"); err != nil {
						assert.Fail(t, fmt.Sprintf("event: %v", err))
						return
					}
				}
			}
		}()
	}
	for i := range 60 { // operator
		if i%2 == 0 {
			if i%4 == 0 {
				_, err := g.BeginDrain(ctx, DrainRequest{})
				require.NoError(t, err)
				require.False(t, g.m.Accept() && releaseTrue(g), "gate open right after BeginDrain")
			} else {
				_, err := marker.Write(f.home, marker.Request{Epoch: g.Epoch()})
				require.NoError(t, err)
			}
		} else if i%4 == 1 {
			_, err := g.CancelDrain(ctx, "")
			require.NoError(t, err)
		} else {
			_, err := marker.Clear(f.home, "")
			require.NoError(t, err)
		}
		time.Sleep(2 * time.Millisecond)
	}
	sctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	_, err := g.Shutdown(sctx, false)
	require.NoError(t, err)
	close(stop)
	wg.Wait()
	require.Zero(t, violations.Load(), "I1 violated")
	require.Positive(t, accepted.Load())
	require.Positive(t, refused.Load())
	require.Zero(t, g.m.InFlight())
	t.Logf("turns accepted %d, refused %d", accepted.Load(), refused.Load())
}

// releaseTrue releases a ticket taken by a probe and reports true.
func releaseTrue(g *Gateway) bool {
	_ = g.m.Release()
	return true
}
