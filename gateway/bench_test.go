package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/quiesce-dev/quiesce/agent"
)

// BenchmarkTurn measures the gateway's per-turn overhead (gate, session
// slot, panic guard, state kick) against calling the agent directly, in
// the same run. The direct call is almost free, so read the difference
// (the overhead in ns and allocations), not the ratio; the comparison
// with a bare net/http server doing a turn's work is server's
// BenchmarkTurnHTTP and `make bench`'s driver.
func BenchmarkTurn(b *testing.B) {
	echo := agent.Func(func(_ context.Context, t agent.Turn) (string, error) { return t.Text, nil })
	ctx := context.Background()
	b.Run("baseline=agent-direct", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_, _ = echo.Run(ctx, agent.Turn{Session: "s", Text: "hi"})
		}
	})
	b.Run("turn", func(b *testing.B) {
		f := newFixture(b, func(c *Config) { c.Agent = echo })
		b.ReportAllocs()
		for b.Loop() {
			_, err := f.g.Turn(ctx, "s", "hi")
			require.NoError(b, err)
		}
	})
	// A request's context, as net/http gives each request its own
	// cancellable one: what a turn derives from it is paid per turn.
	b.Run("baseline=agent-direct-request-ctx", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			rctx, cancel := context.WithCancel(ctx)
			_, _ = echo.Run(rctx, agent.Turn{Session: "s", Text: "hi"})
			cancel()
		}
	})
	b.Run("turn-request-ctx", func(b *testing.B) {
		f := newFixture(b, func(c *Config) { c.Agent = agent.NewEcho(0) })
		b.ReportAllocs()
		for b.Loop() {
			rctx, cancel := context.WithCancel(ctx)
			_, err := f.g.Turn(rctx, "s", "hi")
			require.NoError(b, err)
			cancel()
		}
	})
	b.Run("turn-parallel", func(b *testing.B) {
		f := newFixture(b, func(c *Config) { c.Agent = echo })
		b.ReportAllocs()
		var n atomic.Int64
		b.RunParallel(func(pb *testing.PB) {
			session := fmt.Sprint("s", n.Add(1))
			for pb.Next() {
				_, err := f.g.Turn(ctx, session, "hi")
				if !assert.NoError(b, err) { // not FailNow: RunParallel bodies run off the benchmark goroutine
					return
				}
			}
		})
	})
	b.Run("refused", func(b *testing.B) {
		f := newFixture(b, func(c *Config) { c.Agent = echo; c.DrainTimeout = time.Second })
		_, err := f.g.BeginDrain(ctx, DrainRequest{})
		require.NoError(b, err)
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
				if !assert.NoError(b, err) { // not FailNow: RunParallel bodies run off the benchmark goroutine
					return
				}
				var out struct{ Reply string }
				_ = json.NewDecoder(resp.Body).Decode(&out)
				_ = resp.Body.Close()
			}
		})
	})
	b.Run("gateway-http-agent", func(b *testing.B) {
		ha, err := agent.NewHTTP(up.URL, agent.HTTPOptions{})
		require.NoError(b, err)
		f := newFixture(b, func(c *Config) { c.Agent = ha })
		b.ReportAllocs()
		b.SetParallelism(parallelism)
		var n atomic.Int64
		b.RunParallel(func(pb *testing.PB) {
			session := fmt.Sprint("s", n.Add(1))
			for pb.Next() {
				_, err := f.g.Turn(ctx, session, "hi")
				if !assert.NoError(b, err) { // not FailNow: RunParallel bodies run off the benchmark goroutine
					return
				}
			}
		})
	})
}
