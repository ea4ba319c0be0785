package gateway

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"
)

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
