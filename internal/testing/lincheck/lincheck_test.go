package lincheck_test

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/quiesce-dev/quiesce/fsm"
	"github.com/quiesce-dev/quiesce/internal/testing/lincheck"
)

// Shorthands for the hand-written histories below.
func op(kind lincheck.Kind, call, ret int64, out lincheck.Outcome) lincheck.Op {
	return lincheck.Op{Kind: kind, Call: call, Return: ret, Out: out}
}

var (
	accepted = lincheck.Outcome{Accepted: true}
	refused  = lincheck.Outcome{}
	unknown  = lincheck.Outcome{Unknown: true}
)

func in(s fsm.State) lincheck.Outcome       { return lincheck.Outcome{State: s} }
func answered(s fsm.State) lincheck.Outcome { return lincheck.Outcome{Accepted: true, State: s} }
func already(b bool) lincheck.Outcome       { return lincheck.Outcome{Accepted: true, Already: b} }

// TestModel checks the model on tiny hand-written histories, each Ok or
// Illegal for a reason a reader can see.
func TestModel(t *testing.T) {
	tests := []struct {
		name string
		init fsm.State
		ops  []lincheck.Op
		want porcupine.CheckResult
	}{
		{"sequential drain and cancel gate turns", fsm.Running, []lincheck.Op{
			op(lincheck.Turn, 0, 1, accepted),
			op(lincheck.Drain, 2, 3, answered(fsm.Draining)),
			op(lincheck.Turn, 4, 5, refused),
			op(lincheck.Status, 6, 7, in(fsm.Draining)),
			op(lincheck.Cancel, 8, 9, answered(fsm.Running)),
			op(lincheck.Turn, 10, 11, accepted),
		}, porcupine.Ok},
		{"a turn concurrent with a drain may land before it", fsm.Running, []lincheck.Op{
			op(lincheck.Turn, 0, 10, accepted),
			op(lincheck.Drain, 5, 8, answered(fsm.Draining)),
		}, porcupine.Ok},
		{"a refused turn concurrent with a cancel may land before it", fsm.Draining, []lincheck.Op{
			op(lincheck.Turn, 0, 10, refused),
			op(lincheck.Cancel, 2, 4, answered(fsm.Running)),
			op(lincheck.Turn, 5, 6, accepted),
		}, porcupine.Ok},
		{"drain and cancel are idempotent", fsm.Running, []lincheck.Op{
			op(lincheck.Cancel, 0, 1, answered(fsm.Running)),
			op(lincheck.Drain, 2, 3, answered(fsm.Draining)),
			op(lincheck.Drain, 4, 5, answered(fsm.Draining)),
		}, porcupine.Ok},
		{"a marker drain takes effect between its write and its observation", fsm.Running, []lincheck.Op{
			op(lincheck.MarkerDrain, 0, 50, in(fsm.Draining)),
			op(lincheck.Turn, 10, 20, accepted),
			op(lincheck.Turn, 40, 60, refused),
		}, porcupine.Ok},
		{"a marker change never observed may land anywhere after its write", fsm.Running, []lincheck.Op{
			op(lincheck.MarkerDrain, 0, 100, unknown),
			op(lincheck.Turn, 10, 20, accepted),
			op(lincheck.Turn, 30, 40, refused),
			op(lincheck.Cancel, 50, 60, answered(fsm.Running)),
		}, porcupine.Ok},
		{"shutdown wins over drain and cancel", fsm.Draining, []lincheck.Op{
			op(lincheck.Shutdown, 0, 5, already(false)),
			op(lincheck.Drain, 6, 7, refused),
			op(lincheck.Cancel, 8, 9, refused),
			op(lincheck.Status, 10, 11, in(fsm.ShuttingDown)),
			op(lincheck.Turn, 12, 13, refused),
			op(lincheck.Shutdown, 14, 15, already(true)),
		}, porcupine.Ok},
		{"a drain's 200 may precede a concurrent shutdown", fsm.Running, []lincheck.Op{
			op(lincheck.Drain, 0, 10, answered(fsm.Draining)),
			op(lincheck.Shutdown, 2, 12, already(false)),
			op(lincheck.Cancel, 13, 14, refused),
		}, porcupine.Ok},
		{"the gateway stops after the shutdown, before it exits", fsm.Running, []lincheck.Op{
			op(lincheck.Shutdown, 0, 5, already(false)),
			op(lincheck.Stop, 0, 20, lincheck.Outcome{}),
			op(lincheck.Status, 6, 7, in(fsm.ShuttingDown)),
			op(lincheck.Status, 8, 9, in(fsm.Stopped)),
			op(lincheck.Drain, 10, 11, refused),
			op(lincheck.Turn, 12, 13, refused),
		}, porcupine.Ok},
		{"an unanswered drain matches any output", fsm.Running, []lincheck.Op{
			op(lincheck.Drain, 0, 100, unknown),
			op(lincheck.Turn, 10, 20, accepted),
		}, porcupine.Ok},

		{"a turn accepted after a drain's answer", fsm.Running, []lincheck.Op{
			op(lincheck.Drain, 0, 5, answered(fsm.Draining)),
			op(lincheck.Turn, 6, 7, accepted),
		}, porcupine.Illegal},
		{"a turn refused while running with nothing concurrent", fsm.Running, []lincheck.Op{
			op(lincheck.Turn, 0, 1, refused),
		}, porcupine.Illegal},
		{"a drain answering running", fsm.Running, []lincheck.Op{
			op(lincheck.Drain, 0, 5, answered(fsm.Running)),
		}, porcupine.Illegal},
		{"a status read seeing a drain nobody asked for", fsm.Running, []lincheck.Op{
			op(lincheck.Turn, 0, 1, accepted),
			op(lincheck.Status, 2, 3, in(fsm.Draining)),
		}, porcupine.Illegal},
		{"a drain accepted after shutdown's answer", fsm.Running, []lincheck.Op{
			op(lincheck.Shutdown, 0, 5, already(false)),
			op(lincheck.Drain, 6, 7, answered(fsm.Draining)),
		}, porcupine.Illegal},
		{"a cancel leading back to running after shutdown", fsm.Draining, []lincheck.Op{
			op(lincheck.Shutdown, 0, 5, already(false)),
			op(lincheck.MarkerCancel, 6, 9, in(fsm.Running)),
		}, porcupine.Illegal},
		{"the first shutdown saying already shutting down", fsm.Running, []lincheck.Op{
			op(lincheck.Shutdown, 0, 5, already(true)),
		}, porcupine.Illegal},
		{"two shutdowns both first", fsm.Running, []lincheck.Op{
			op(lincheck.Shutdown, 0, 5, already(false)),
			op(lincheck.Shutdown, 1, 6, already(false)),
		}, porcupine.Illegal},
		{"stopped before the shutdown", fsm.Running, []lincheck.Op{
			op(lincheck.Stop, 0, 20, lincheck.Outcome{}),
			op(lincheck.Status, 1, 2, in(fsm.Stopped)),
			op(lincheck.Shutdown, 3, 5, already(false)),
		}, porcupine.Illegal},
		{"running again after stopped", fsm.ShuttingDown, []lincheck.Op{
			op(lincheck.Stop, 0, 1, lincheck.Outcome{}),
			op(lincheck.Status, 2, 3, in(fsm.Running)),
		}, porcupine.Illegal},
		{"a marker drain observed as running with nothing concurrent", fsm.Running, []lincheck.Op{
			op(lincheck.MarkerDrain, 0, 5, in(fsm.Running)),
		}, porcupine.Illegal},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := lincheck.Check(tt.init, tt.ops, 10*time.Second)
			assert.Equal(t, tt.want, res.Verdict)
			assert.Equal(t, len(tt.ops), res.Ops)
		})
	}
}

// TestVisualizeWritesTheHistory: an Illegal history can be looked at.
func TestVisualizeWritesTheHistory(t *testing.T) {
	path := filepath.Join(t.TempDir(), "history.html")
	v, err := lincheck.Visualize(fsm.Running, []lincheck.Op{
		op(lincheck.Drain, 0, 5, answered(fsm.Draining)),
		op(lincheck.Turn, 6, 7, accepted),
	}, 10*time.Second, path)
	require.NoError(t, err)
	assert.Equal(t, porcupine.Illegal, v)
	assert.FileExists(t, path)
}

// TestPlantAcceptedAfterDrain: the planted turn makes an Ok history
// Illegal, whether it edits a refused turn or has to add one.
func TestPlantAcceptedAfterDrain(t *testing.T) {
	tests := []struct {
		name  string
		ops   []lincheck.Op
		at    int
		added bool
	}{
		{"edits a refused turn after the drain", []lincheck.Op{
			op(lincheck.Turn, 0, 3, refused), // concurrent with the drain: not a candidate
			op(lincheck.Drain, 1, 2, answered(fsm.Draining)),
			op(lincheck.Turn, 4, 5, refused),
			op(lincheck.Cancel, 6, 7, answered(fsm.Running)),
		}, 2, false},
		{"skips a turn a cancel may have let in", []lincheck.Op{
			op(lincheck.Drain, 0, 2, answered(fsm.Draining)),
			op(lincheck.MarkerCancel, 4, 10, unknown),
			op(lincheck.Turn, 5, 6, refused),
		}, 3, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.Equal(t, porcupine.Ok, lincheck.Check(fsm.Running, tt.ops, 10*time.Second).Verdict)
			planted, at, ok := lincheck.PlantAcceptedAfterDrain(tt.ops)
			require.True(t, ok)
			assert.Equal(t, tt.at, at)
			assert.Equal(t, tt.added, len(planted) == len(tt.ops)+1)
			assert.True(t, planted[at].Out.Accepted)
			assert.Equal(t, porcupine.Illegal, lincheck.Check(fsm.Running, planted, 10*time.Second).Verdict)
		})
	}
	_, _, ok := lincheck.PlantAcceptedAfterDrain([]lincheck.Op{op(lincheck.Turn, 0, 1, accepted)})
	assert.False(t, ok, "no drain: nothing to plant after")
}
