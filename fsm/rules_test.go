package fsm_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/quiesce-dev/quiesce/fsm"
)

// machineIn returns a machine brought to s by firing events.
func machineIn(t *testing.T, s fsm.State) *fsm.Machine {
	t.Helper()
	path := map[fsm.State][]fsm.Event{
		fsm.Running:      nil,
		fsm.Draining:     {fsm.Drain},
		fsm.ShuttingDown: {fsm.Shutdown},
		fsm.Stopped:      {fsm.Shutdown, fsm.Stop},
	}[s]
	m := fsm.New()
	for _, ev := range path {
		_, err := m.Fire(context.Background(), ev)
		require.NoError(t, err)
	}
	require.Equal(t, s, m.State())
	return m
}

// TestRulesAreWhatTheMachineDoes shows that Rules is the lifecycle the
// machine runs and Describe draws: every (event, state) pair once; firing
// a rule's event in its state leads to its To, or fails with its Err; each
// transition and no-op is a line of the Mermaid diagram. Changing the
// returned slice changes nothing.
func TestRulesAreWhatTheMachineDoes(t *testing.T) {
	rs := fsm.Rules()
	require.Len(t, rs, len(fsm.States)*len(fsm.Events))
	mermaid, err := fsm.Describe(fsm.Mermaid)
	require.NoError(t, err)
	seen := map[fsm.Rule]bool{}
	for _, r := range rs {
		name := fmt.Sprintf("%s from %s", r.Event, r.From)
		assert.Falsef(t, seen[fsm.Rule{Event: r.Event, From: r.From}], "%s twice", name)
		seen[fsm.Rule{Event: r.Event, From: r.From}] = true

		m := machineIn(t, r.From)
		changed, err := m.Fire(context.Background(), r.Event)
		if r.Err != nil {
			assert.ErrorIsf(t, err, r.Err, "%s", name)
			assert.Equalf(t, r.From, r.To, "%s: a refusal stays", name)
		} else {
			assert.NoErrorf(t, err, "%s", name)
		}
		assert.Equalf(t, r.To, m.State(), "%s", name)
		assert.Equalf(t, r.Transition(), changed, "%s", name)
		assert.Falsef(t, r.Transition() && r.Noop(), "%s", name)

		switch {
		case r.Transition():
			assert.Containsf(t, mermaid, fmt.Sprintf("%s --> %s: %s\n", r.From, r.To, r.Event), "%s", name)
		case r.Noop():
			assert.Containsf(t, mermaid, fmt.Sprintf("%s --> %s: %s (no-op)\n", r.From, r.To, r.Event), "%s", name)
		}
	}

	rs[0].To, rs[0].Err = fsm.Stopped, nil
	assert.NotEqual(t, rs[0], fsm.Rules()[0], "the slice is a copy")
}
