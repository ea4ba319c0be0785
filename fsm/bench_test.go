package fsm_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"

	looplab "github.com/looplab/fsm"

	"github.com/quiesce-dev/quiesce/fsm"
)

// mutexGate is what a gate without the one-word CAS would look like: a
// state and a counter under a mutex.
type mutexGate struct {
	mu    sync.Mutex
	state fsm.State
	count int
}

func (g *mutexGate) accept() bool {
	g.mu.Lock()
	ok := g.state == fsm.Running
	if ok {
		g.count++
	}
	g.mu.Unlock()
	return ok
}

func (g *mutexGate) release() {
	g.mu.Lock()
	g.count--
	g.mu.Unlock()
}

// BenchmarkGate measures the accept gate against the floor it is built
// on, in the same run: a bare atomic add/sub pair. make bench reports the
// ratio.
func BenchmarkGate(b *testing.B) {
	b.Run("baseline=atomic-add", func(b *testing.B) {
		var w atomic.Uint64
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				w.Add(1 << 24)
				w.Add(^uint64(1<<24 - 1))
			}
		})
	})
	b.Run("accept-release", func(b *testing.B) {
		m := fsm.New()
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if m.Accept() {
					_ = m.Release()
				}
			}
		})
	})
	b.Run("mutex-state-counter", func(b *testing.B) {
		g := &mutexGate{state: fsm.Running}
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if g.accept() {
					g.release()
				}
			}
		})
	})
	b.Run("looplab-current-mutex-counter", func(b *testing.B) {
		// The library's own state read plus a counter (racy as a gate:
		// the state can change between the read and the increment).
		f := looplab.NewFSM("running", looplab.Events{{Name: "drain", Src: []string{"running"}, Dst: "draining"}}, nil)
		var mu sync.Mutex
		count := 0
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if f.Current() == "running" {
					mu.Lock()
					count++
					mu.Unlock()
					mu.Lock()
					count--
					mu.Unlock()
				}
			}
		})
	})
	b.Run("baseline=atomic-add-uncontended", func(b *testing.B) {
		var w atomic.Uint64
		b.ReportAllocs()
		for b.Loop() {
			w.Add(1 << 24)
			w.Add(^uint64(1<<24 - 1))
		}
	})
	b.Run("mutex-state-counter-uncontended", func(b *testing.B) {
		g := &mutexGate{state: fsm.Running}
		b.ReportAllocs()
		for b.Loop() {
			if g.accept() {
				g.release()
			}
		}
	})
	b.Run("accept-release-uncontended", func(b *testing.B) {
		m := fsm.New()
		b.ReportAllocs()
		for b.Loop() {
			if m.Accept() {
				_ = m.Release()
			}
		}
	})
	b.Run("refused", func(b *testing.B) {
		m := fsm.New()
		_, _ = m.Fire(context.Background(), fsm.Drain)
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				_ = m.Accept()
			}
		})
	})
}

// BenchmarkFire measures a drain+resume round trip through looplab/fsm and
// one observer, against the accept gate as baseline.
func BenchmarkFire(b *testing.B) {
	b.Run("baseline=accept-release", func(b *testing.B) {
		m := fsm.New()
		for b.Loop() {
			m.Accept()
			_ = m.Release()
		}
	})
	b.Run("drain-resume", func(b *testing.B) {
		m := fsm.New()
		m.Subscribe(func(fsm.Transition) {})
		ctx := context.Background()
		b.ReportAllocs()
		for b.Loop() {
			_, _ = m.Fire(ctx, fsm.Drain)
			_, _ = m.Fire(ctx, fsm.Resume)
		}
	})
}
