package fsm_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"pgregory.net/rapid"

	"github.com/quiesce-dev/quiesce/fsm"
)

// modelStep is the plain model of the lifecycle, written independently of
// the package's rules table: the state an event leads to, or the error
// that refuses it.
func modelStep(s fsm.State, e fsm.Event) (fsm.State, error) {
	if s == fsm.Stopped {
		return s, fsm.ErrStopped
	}
	switch e {
	case fsm.Drain, fsm.Resume:
		if s == fsm.ShuttingDown {
			return s, fsm.ErrShutdownWins
		}
		if e == fsm.Drain {
			return fsm.Draining, nil
		}
		return fsm.Running, nil
	case fsm.Shutdown:
		return fsm.ShuttingDown, nil
	case fsm.Stop:
		if s != fsm.ShuttingDown {
			return s, fsm.ErrNotShuttingDown
		}
		return fsm.Stopped, nil
	}
	panic("unknown event " + e)
}

// TestPropertyLifecycle runs random sequences of drain, resume, shutdown,
// stop, accept and release against the model and checks I1–I4 after every
// step.
func TestPropertyLifecycle(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		m := fsm.New()
		rec := &recorder{}
		m.Subscribe(rec.observe)

		state := fsm.Running
		inFlight, accepted, released, transitions := 0, 0, 0, 0
		prevCount := 0
		shutdownSeen := false

		actions := map[string]func(*rapid.T){
			"": func(t *rapid.T) {
				snap := m.Snapshot()
				// I4: accepted = released + in flight.
				require.Equalf(t, released+snap.InFlight, accepted, "I4: accepted %d != released %d + in flight %d", accepted, released, snap.InFlight)
				require.Equalf(t, state, snap.State, "machine %s/%d, model %s/%d", snap.State, snap.InFlight, state, inFlight)
				require.Equalf(t, inFlight, snap.InFlight, "machine %s/%d, model %s/%d", snap.State, snap.InFlight, state, inFlight)
				// I1: the count never rises while not running.
				if snap.State != fsm.Running {
					require.LessOrEqualf(t, snap.InFlight, prevCount, "I1: in-flight rose %d → %d while %s", prevCount, snap.InFlight, snap.State)
				}
				prevCount = snap.InFlight
				// I2: shutdown wins; stopped is terminal.
				if shutdownSeen {
					require.Containsf(t, []fsm.State{fsm.ShuttingDown, fsm.Stopped}, snap.State, "I2: %s after shutdown", snap.State)
				}
				shutdownSeen = shutdownSeen || snap.State == fsm.ShuttingDown
				// I3: one observer notification per change, none for repeats.
				got := len(rec.all())
				require.Equalf(t, transitions, got, "I3: %d notifications for %d transitions", got, transitions)
			},
			"accept": func(t *rapid.T) {
				ok := m.Accept()
				require.Equalf(t, state == fsm.Running, ok, "I4: Accept()=%v in %s", ok, state)
				if ok {
					inFlight++
					accepted++
				}
			},
			"release": func(t *rapid.T) {
				if inFlight == 0 {
					t.Skip("nothing accepted")
				}
				require.NoErrorf(t, m.Release(), "Release")
				inFlight--
				released++
			},
			"release unaccepted": func(t *rapid.T) {
				if inFlight != 0 {
					t.Skip("turns in flight")
				}
				require.ErrorIsf(t, m.Release(), fsm.ErrNotAccepted, "Release with nothing in flight")
			},
		}
		for _, ev := range fsm.Events {
			actions[string(ev)] = func(t *rapid.T) {
				want, wantErr := modelStep(state, ev)
				changed, err := m.Fire(context.Background(), ev)
				if wantErr == nil {
					require.NoErrorf(t, err, "%s in %s: model allows it", ev, state)
				} else {
					require.ErrorIsf(t, err, wantErr, "%s in %s", ev, state)
				}
				require.Equalf(t, want != state, changed, "%s in %s: changed=%v, model %s", ev, state, changed, want)
				if changed {
					transitions++
				}
				state = want
			}
		}
		t.Repeat(actions)
	})
}

// op is one step of a goroutine script in the concurrent property test.
type op string

const (
	opAccept  op = "accept"
	opRelease op = "release"
)

// TestPropertyConcurrent runs several drawn goroutine scripts at once
// against one Machine while a sampler reads snapshots. It checks I1 over
// every snapshot taken outside running (no count above the count at the
// transition that entered the state, and never rising between two
// snapshots of one period), I2 over the observed transitions, and that
// WaitIdle returns, idle, after the last release.
func TestPropertyConcurrent(t *testing.T) {
	ops := []op{opAccept, opAccept, opRelease, op(fsm.Drain), op(fsm.Resume), op(fsm.Shutdown)}
	rapid.Check(t, func(t *rapid.T) {
		n := rapid.IntRange(2, 4).Draw(t, "goroutines")
		scripts := make([][]op, n)
		for i := range scripts {
			scripts[i] = rapid.SliceOfN(rapid.SampledFrom(ops), 1, 40).Draw(t, "script")
		}

		m := fsm.New()
		rec := &recorder{}
		m.Subscribe(rec.observe)
		shutdown := make(chan struct{})
		var once sync.Once
		m.Subscribe(func(tr fsm.Transition) {
			if tr.To == fsm.ShuttingDown {
				once.Do(func() { close(shutdown) })
			}
		})

		var (
			mu    sync.Mutex
			snaps [][]sample // one series per goroutine, in its own order
		)
		addSeries := func(s []sample) {
			mu.Lock()
			snaps = append(snaps, s)
			mu.Unlock()
		}

		stopSampler := make(chan struct{})
		samplerDone := make(chan struct{})
		go func() {
			defer close(samplerDone)
			var s []sample
			for {
				select {
				case <-stopSampler:
					addSeries(s)
					return
				default:
					if sm, ok := rec.sample(m); ok && len(s) < 1<<16 {
						s = append(s, sm)
					}
				}
			}
		}()

		waitErr := make(chan error, 1)
		go func() {
			<-shutdown
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := m.WaitIdle(ctx); err != nil {
				waitErr <- err
				return
			}
			if in := m.InFlight(); in != 0 {
				waitErr <- errors.New("WaitIdle returned with turns in flight")
				return
			}
			waitErr <- nil
		}()

		var wg sync.WaitGroup
		for _, script := range scripts {
			wg.Add(1)
			go func() {
				defer wg.Done()
				held := 0
				var after []sample // a snapshot right after each accept
				for _, o := range script {
					switch o {
					case opAccept:
						if m.Accept() {
							held++
							if sm, ok := rec.sample(m); ok {
								after = append(after, sm)
							}
						}
					case opRelease:
						if held > 0 {
							_ = m.Release()
							held--
						}
					default:
						_, _ = m.Fire(context.Background(), fsm.Event(o))
					}
				}
				for ; held > 0; held-- {
					_ = m.Release()
				}
				addSeries(after)
			}()
		}
		wg.Wait()
		_, _ = m.Fire(context.Background(), fsm.Shutdown)
		close(stopSampler)
		<-samplerDone
		require.NoErrorf(t, <-waitErr, "WaitIdle after the last release")

		// I2 and a valid path over the transitions, in commit order.
		trs := rec.all()
		cur, shut := fsm.Running, false
		for i, tr := range trs {
			require.Equalf(t, cur, tr.From, "transition %d starts at %s, machine was %s", i, tr.From, cur)
			want, err := modelStep(tr.From, tr.Event)
			require.NoErrorf(t, err, "transition %d %s→%s by %s is not in the model", i, tr.From, tr.To, tr.Event)
			require.Equalf(t, want, tr.To, "transition %d %s→%s by %s is not in the model", i, tr.From, tr.To, tr.Event)
			if shut {
				require.NotContainsf(t, []fsm.State{fsm.Running, fsm.Draining}, tr.To, "I2: %s after shutdown", tr.To)
			}
			shut = shut || tr.To == fsm.ShuttingDown
			cur = tr.To
		}
		// I1 over every snapshot taken in a period whose entering
		// transition is known (see recorder.sample).
		for _, series := range snaps {
			for i, s := range series {
				if s.State == fsm.Running || s.k == 0 || s.k > len(trs) || trs[s.k-1].To != s.State {
					continue
				}
				tr := trs[s.k-1]
				require.LessOrEqualf(t, s.InFlight, tr.InFlight, "I1: %d in flight while %s, entered with %d", s.InFlight, s.State, tr.InFlight)
				if i > 0 && series[i-1].k == s.k && series[i-1].State == s.State {
					require.LessOrEqualf(t, s.InFlight, series[i-1].InFlight, "I1: in flight rose %d → %d while %s", series[i-1].InFlight, s.InFlight, s.State)
				}
			}
		}
		in := m.InFlight()
		require.Equalf(t, 0, in, "I4: %d in flight after every accepted turn was released", in)
	})
}
