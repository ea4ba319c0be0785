package fsm

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	looplab "github.com/looplab/fsm"
	"github.com/stretchr/testify/require"
)

// TestCallbackKeysResolve: looplab/fsm silently ignores a callback key
// that names no state or event, so a typo would disable a guard.
func TestCallbackKeysResolve(t *testing.T) {
	known := map[string]bool{"state": true, "event": true}
	for _, s := range States {
		known[string(s)] = true
	}
	for _, e := range Events {
		known[string(e)] = true
	}
	m := New()
	for key := range m.callbacks() {
		prefix, name, ok := strings.Cut(key, "_")
		require.True(t, ok, "callback key %q has no prefix", key)
		require.Contains(t, []string{"before", "leave", "enter", "after"}, prefix, key)
		// enter_/leave_ name states, before_/after_ name events.
		require.True(t, known[name], "callback key %q names nothing declared", key)
	}
}

// TestRulesComplete: every (event, state) pair has exactly one rule, and
// every rule's target is a declared state.
func TestRulesComplete(t *testing.T) {
	seen := map[[2]string]bool{}
	for _, r := range rules {
		k := [2]string{string(r.event), string(r.from)}
		require.False(t, seen[k], "duplicate rule %v", k)
		seen[k] = true
		stateIndex(r.to) // panics on an undeclared state
	}
	require.Len(t, seen, len(States)*len(Events))
}

// TestLooplabDefinitionMatchesRules: the running library holds exactly
// the rules (a fresh machine per check, since Visualize does not lock).
func TestLooplabDefinitionMatchesRules(t *testing.T) {
	for _, r := range rules {
		m := New()
		m.f.SetState(string(r.from))
		require.True(t, m.f.Can(string(r.event)), "%s from %s", r.event, r.from)
	}
	viz := looplab.Visualize(New().f)
	for _, r := range rules {
		require.Contains(t, viz, `"`+string(r.from)+`" -> "`+string(r.to)+`" [ label = "`+string(r.event)+`" ]`)
	}
}

// TestConcurrentEventsRunTheRightEnterCallback: concurrent looplab Event
// calls can run the enter_ callback of another transition (looplab/fsm v1.0.3 reads its current state unlocked after releasing its event lock).
// Fire serializes them: every enter_<state> callback sees e.Dst == state.
func TestConcurrentEventsRunTheRightEnterCallback(t *testing.T) {
	var mismatches, calls atomic.Int64
	extra := looplab.Callbacks{}
	for _, s := range States {
		extra["enter_"+string(s)] = func(_ context.Context, e *looplab.Event) {
			calls.Add(1)
			if e.Dst != string(s) {
				mismatches.Add(1)
			}
		}
	}
	m := newMachine(extra)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 2000 {
				ev := Drain
				if (g+i)%2 == 1 {
					ev = Resume
				}
				_, _ = m.Fire(context.Background(), ev)
			}
		}()
	}
	wg.Wait()
	require.Positive(t, calls.Load())
	require.Zero(t, mismatches.Load(), "enter_ callbacks for the wrong state")
	require.Equal(t, State(m.f.Current()), m.State(), "gate and looplab agree when idle")
}
