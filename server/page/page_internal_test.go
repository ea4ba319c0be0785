package page

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/quiesce-dev/quiesce/fsm"
)

// TestLifecycleOf shows that the page's diagram is fsm.Rules drawn
// completely: the start, the end, every transition and no-op, and each
// state's refusals; and that a table naming a state the row does not
// have is refused, so the page shows an error rather than a diagram that
// has drifted from the rules.
func TestLifecycleOf(t *testing.T) {
	g, err := lifecycle()
	require.NoError(t, err)
	assert.Equal(t, fsm.Running, g.initial)
	assert.Equal(t, []fsm.State{fsm.Stopped}, g.final)
	assert.Contains(t, g.edges, lifecycleEdge{from: fsm.Running, to: fsm.Draining, event: "drain"})
	assert.Contains(t, g.edges, lifecycleEdge{from: fsm.Draining, to: fsm.Draining, event: "drain", noop: true})
	assert.Equal(t, "drain, resume", g.refuses[fsm.ShuttingDown])
	assert.Equal(t, "drain, resume, shutdown, stop", g.refuses[fsm.Stopped])
	var transitions, noops int
	for _, r := range fsm.Rules() {
		switch {
		case r.Transition():
			transitions++
		case r.Noop():
			noops++
		}
	}
	require.Len(t, g.edges, transitions+noops, "one edge per transition and no-op")
	for i, e := range g.edges {
		assert.Equalf(t, i >= transitions, e.noop, "edge %d: transitions first, then no-ops", i)
	}

	for _, tt := range []struct {
		name  string
		rules []fsm.Rule
	}{
		{"UnknownTarget", []fsm.Rule{{Event: fsm.Drain, From: fsm.Running, To: "paused"}}},
		{"UnknownSource", []fsm.Rule{{Event: fsm.Resume, From: "paused", To: fsm.Running}}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := lifecycleOf(tt.rules)
			require.Error(t, err)
			assert.ErrorIs(t, err, errDiagram)
		})
	}
}

// TestLifecycleSVGMarksCurrent shows that exactly the current state's box
// is marked, and none for a state the diagram does not have.
func TestLifecycleSVGMarksCurrent(t *testing.T) {
	for _, s := range append(append([]fsm.State(nil), fsm.States...), "bogus") {
		svg, err := lifecycleSVG(s)
		require.NoError(t, err)
		n := strings.Count(string(svg), `class="state current"`)
		if s == "bogus" {
			assert.Zero(t, n)
			continue
		}
		assert.Equal(t, 1, n, "state %s", s)
		assert.Contains(t, string(svg), `<g class="state current" data-state="`+string(s)+`"`)
	}
}

func TestFormatAge(t *testing.T) {
	for _, tt := range []struct {
		secs float64
		want string
	}{
		{0, ""},
		{-1, ""},
		{0.04, "0.0 s"},
		{2.25, "2.2 s"},
		{9.94, "9.9 s"},
		{10.4, "10 s"},
		{59.4, "59 s"},
		{75.4, "1 min 15 s"},
		{3599, "59 min 59 s"},
		{3600, "1 h 0 min"},
		{2*3600 + 5*60 + 9, "2 h 5 min"},
	} {
		assert.Equalf(t, tt.want, formatAge(tt.secs), "formatAge(%v)", tt.secs)
	}
}

func TestWrapWords(t *testing.T) {
	for _, tt := range []struct {
		in   string
		n    int
		want []string
	}{
		{"", 10, nil},
		{"stop", 10, []string{"stop"}},
		{"drain, resume, shutdown, stop", 22, []string{"drain, resume,", "shutdown, stop"}},
		{"averyveryverylongword x", 5, []string{"averyveryverylongword", "x"}},
	} {
		assert.Equal(t, tt.want, wrapWords(tt.in, tt.n), "wrapWords(%q, %d)", tt.in, tt.n)
	}
}
