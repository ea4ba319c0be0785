package gateway

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/quiesce-dev/quiesce/fsm"
)

// ST2/ST3: gateway_state.json carries exactly the documented field names.
func TestStateFileFieldNames(t *testing.T) {
	f := newFixture(t, nil)
	out := f.startTurn(t, "alice", "hi")
	f.g.SetListenAddr("127.0.0.1:8470")
	before := f.g.Status().Seq
	f.g.state.writeNow()
	data, err := os.ReadFile(filepath.Join(f.home, StateFileName))
	require.NoError(t, err)
	var doc map[string]json.RawMessage
	require.NoError(t, json.Unmarshal(data, &doc))
	var keys []string
	for k := range doc {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	assert.Equal(t, []string{"active_agents", "addr", "drain", "epoch", "gateway_state", "oldest_turn_seconds", "pid", "seq", "started_at", "state_since", "updated_at"}, keys)
	assert.JSONEq(t, `"127.0.0.1:8470"`, string(doc["addr"]))
	// The seq of a write is the change it ends: after the one before
	// writeNow, and at most the current one (the coalesced writer, kicked
	// by the turn, may have written again since).
	var seq uint64
	require.NoError(t, json.Unmarshal(doc["seq"], &seq))
	assert.Greater(t, seq, before, "the seq the write ended")
	assert.LessOrEqual(t, seq, f.g.Status().Seq, "the seq the write ended")
	assert.JSONEq(t, "1", string(doc["active_agents"]))
	assert.JSONEq(t, `"running"`, string(doc["gateway_state"]))
	f.agent.finish("alice")
	recv(t, out)
}

// TestOnTransitionCalledInCommitOrder: the hook a supervisor notifier
// uses sees every transition once, in order.
func TestOnTransitionCalledInCommitOrder(t *testing.T) {
	var mu sync.Mutex
	var seen []string
	f := newFixture(t, func(c *Config) {
		c.OnTransition = func(tr fsm.Transition) {
			mu.Lock()
			seen = append(seen, string(tr.From)+">"+string(tr.To))
			mu.Unlock()
		}
	})
	_, err := f.g.BeginDrain(context.Background(), DrainRequest{})
	require.NoError(t, err)
	_, err = f.g.CancelDrain(context.Background(), "")
	require.NoError(t, err)
	_, _ = f.shutdown(t, false)
	mu.Lock()
	defer mu.Unlock()
	assert.Equal(t, []string{"running>draining", "draining>running", "running>shutting_down", "shutting_down>stopped"}, seen)
}

// TestStatusUptimeAndStateSince: on the gateway's clock, uptime_seconds is
// the time since the start, whatever the transitions, and state_since is
// the start until the state first changes, then the moment it changed
// (docs/API.md, status).
func TestStatusUptimeAndStateSince(t *testing.T) {
	f, clock := clockFixture(t, nil)
	start := clock.Now()
	clock.advance(30 * time.Second)
	st := f.g.Status()
	assert.Equal(t, 30.0, st.UptimeSeconds)
	assert.Equal(t, start, st.StateSince, "the start, while the state never changed")

	_, err := f.g.BeginDrain(context.Background(), DrainRequest{Principal: "ops"})
	require.NoError(t, err)
	drained := clock.Now()
	clock.advance(10 * time.Second)
	st = f.g.Status()
	require.Equal(t, fsm.Draining, st.State)
	assert.Equal(t, 40.0, st.UptimeSeconds, "uptime counts from the start, not from the transition")
	assert.Equal(t, drained, st.StateSince, "when the state changed")
}
