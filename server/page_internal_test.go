package server

import (
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/quiesce-dev/quiesce/fsm"
)

// TestParseLifecycle shows that the page's diagram reads fsm.Describe's
// Mermaid completely and refuses, rather than silently drops, a line it
// does not know: the page then shows an error in place of a diagram that
// has drifted from the rules.
func TestParseLifecycle(t *testing.T) {
	g, err := lifecycle()
	require.NoError(t, err)
	assert.Equal(t, fsm.Running, g.initial)
	assert.Equal(t, []fsm.State{fsm.Stopped}, g.final)
	assert.Contains(t, g.edges, lifecycleEdge{from: fsm.Running, to: fsm.Draining, event: "drain"})
	assert.Contains(t, g.edges, lifecycleEdge{from: fsm.Draining, to: fsm.Draining, event: "drain", noop: true})
	assert.Equal(t, "drain, resume", g.refuses[fsm.ShuttingDown])

	for _, tt := range []struct{ name, src string }{
		{"Empty", ""},
		{"NotStateDiagram", "graph LR\n    [*] --> running\n"},
		{"UnknownState", "stateDiagram-v2\n    [*] --> running\n    running --> paused: pause\n"},
		{"UnknownLine", "stateDiagram-v2\n    [*] --> running\n    state running {\n"},
		{"OtherNote", "stateDiagram-v2\n    [*] --> running\n    note right of running: hello\n"},
		{"NoopThatMoves", "stateDiagram-v2\n    [*] --> running\n    running --> draining: drain (no-op)\n"},
		{"SelfLoopNotNoop", "stateDiagram-v2\n    [*] --> running\n    running --> running: resume\n"},
		{"NoInitial", "stateDiagram-v2\n    running --> draining: drain\n"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseLifecycle(tt.src)
			require.Error(t, err)
			assert.True(t, errors.Is(err, errDiagram), "%v", err)
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
