// Package lincheck checks what clients of a quiesce gateway saw for
// linearizability against a sequential model of its lifecycle, with
// github.com/anishathalye/porcupine. It is a test-only helper (test-only
// helpers live under internal/testing/ or in _test files); the end-to-end
// recorder that drives the real binary is cmd/quiesce/linearizability_test.go.
// docs/RELIABILITY.md "Linearizability" reports its runs.
//
// The model is one object, the lifecycle: a state (running, draining,
// shutting_down, stopped) that turns, drains, cancels and shutdowns act on
// through the lifecycle's rules: fsm.Rules(), the one table the machine
// runs and the diagrams are drawn from (fsm's TestRulesAreWhatTheMachineDoes
// checks the machine against it).
// A turn changes no state: it is accepted iff the state is running at its
// linearisation point (I4). Every operation takes effect at one instant
// between its call and its return as the client saw them; an operation
// whose outcome the client does not know (no answer, or an effect never
// observed) may take effect anywhere after its call and matches any output.
//
// Nothing is partitioned (the lifecycle is one object), so a history must be
// kept small enough for the checker to answer: cut a long run into windows
// that each start from a state observed while nothing was in flight.
package lincheck

import (
	"fmt"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/quiesce-dev/quiesce/fsm"
)

// Kind is what an operation did, as the client issued it.
type Kind int

// The operations a client of the gateway issues.
const (
	// Turn is POST /v1/sessions/{id}/messages.
	Turn Kind = iota + 1
	// Status is GET /api/gateway/status.
	Status
	// Drain is POST /api/gateway/drain {"action":"drain"}.
	Drain
	// Cancel is POST /api/gateway/drain {"action":"cancel"}.
	Cancel
	// MarkerDrain is another process renaming a drain marker into the home.
	MarkerDrain
	// MarkerCancel is another process removing the drain marker.
	MarkerCancel
	// Shutdown is POST /api/gateway/shutdown without force.
	Shutdown
	// Stop is the gateway's own stop at the end of the shutdown sequence,
	// which no client issues: a recorder adds it as an operation from the
	// shutdown's call to the moment the process had exited.
	Stop
)

var kindNames = map[Kind]string{
	Turn: "turn", Status: "status", Drain: "drain", Cancel: "cancel",
	MarkerDrain: "marker-drain", MarkerCancel: "marker-cancel", Shutdown: "shutdown", Stop: "stop",
}

// String names k.
func (k Kind) String() string {
	if s, ok := kindNames[k]; ok {
		return s
	}
	return fmt.Sprintf("kind(%d)", int(k))
}

// ChangesState reports whether an operation of kind k can change the
// lifecycle state (turns and status reads cannot).
func (k Kind) ChangesState() bool { return k != Turn && k != Status }

// Outcome is what the client saw an operation return.
type Outcome struct {
	// Unknown: the client does not know the outcome (the request got no
	// answer, or a marker change was never observed). Any output matches.
	Unknown bool
	// Accepted: for Turn, answered 200 (false: 503 refused); for Drain and
	// Cancel, answered 200 (false: 409 shutting_down).
	Accepted bool
	// Already is Shutdown's already_shutting_down.
	Already bool
	// State is the state in the answer (Status; Drain and Cancel when
	// accepted) or the state a status read showed once a marker change had
	// taken effect (MarkerDrain, MarkerCancel).
	State fsm.State
}

// String describes o for a report.
func (o Outcome) String() string {
	switch {
	case o.Unknown:
		return "?"
	case o.State != "":
		return fmt.Sprintf("accepted=%v state=%s", o.Accepted, o.State)
	default:
		return fmt.Sprintf("accepted=%v already=%v", o.Accepted, o.Already)
	}
}

// Op is one operation as one client saw it. Call and Return are instants
// on one monotonic clock (nanoseconds from any origin shared by the
// history), Call <= Return.
type Op struct {
	Client       int
	Kind         Kind
	Call, Return int64
	Out          Outcome
}

// String describes op for a report.
func (op Op) String() string {
	var out string
	switch {
	case op.Out.Unknown:
		out = "?"
	case op.Kind == Turn:
		out = map[bool]string{true: "accepted", false: "refused"}[op.Out.Accepted]
	case op.Kind == Shutdown:
		out = fmt.Sprintf("already_shutting_down=%v", op.Out.Already)
	case op.Kind == Stop:
		out = "stopped"
	case (op.Kind == Drain || op.Kind == Cancel) && !op.Out.Accepted:
		out = "refused"
	default:
		out = string(op.Out.State)
	}
	return fmt.Sprintf("client %d %s [%d, %d] -> %s", op.Client, op.Kind, op.Call, op.Return, out)
}

// Rule returns where event ev leads from state s by fsm.Rules(), and
// whether s refuses it (then next is s).
func Rule(ev fsm.Event, s fsm.State) (next fsm.State, refused bool) {
	for _, r := range fsm.Rules() {
		if r.Event == ev && r.From == s {
			if r.Err != nil {
				return s, true
			}
			return r.To, false
		}
	}
	return s, true
}

// events maps the operations that fire a lifecycle event to it.
var events = map[Kind]fsm.Event{
	Drain: fsm.Drain, MarkerDrain: fsm.Drain,
	Cancel: fsm.Resume, MarkerCancel: fsm.Resume,
	Shutdown: fsm.Shutdown,
}

// Step is the sequential model: it reports whether an operation of kind k
// can return out when it takes effect in state s, and the state after it.
//
//   - Turn: accepted iff s is running; the state does not change.
//   - Status: answers s.
//   - Drain, Cancel (the API): refused with 409 iff the table refuses
//     drain/resume in s (shutdown wins); else 200 with the state they lead to.
//   - MarkerDrain, MarkerCancel (the file, by another process): the state
//     drain/resume lead to (unchanged where refused) is the one observed.
//   - Shutdown: leads to shutting_down; already_shutting_down iff s was
//     shutting_down.
//   - Stop: leads from shutting_down to stopped; in any other state the
//     history is wrong (the gateway stops only at the end of a shutdown).
func Step(s fsm.State, k Kind, out Outcome) (ok bool, next fsm.State) {
	switch k {
	case Turn:
		return out.Unknown || out.Accepted == (s == fsm.Running), s
	case Status:
		return out.Unknown || out.State == s, s
	case Drain, Cancel:
		next, refused := Rule(events[k], s)
		switch {
		case out.Unknown:
			return true, next
		case refused:
			return !out.Accepted, s
		default:
			return out.Accepted && out.State == next, next
		}
	case MarkerDrain, MarkerCancel:
		next, _ := Rule(events[k], s)
		return out.Unknown || out.State == next, next
	case Shutdown:
		next, refused := Rule(fsm.Shutdown, s)
		if refused {
			return out.Unknown, s
		}
		return out.Unknown || out.Already == (s == fsm.ShuttingDown), next
	case Stop:
		next, refused := Rule(fsm.Stop, s)
		return !refused, next
	default:
		return false, s
	}
}

// Model returns the porcupine model of the lifecycle starting in init.
// Inputs are Kind, outputs Outcome, states fsm.State.
func Model(init fsm.State) porcupine.Model {
	return porcupine.Model{
		Init: func() any { return init },
		Step: func(state, input, output any) (bool, any) {
			return Step(state.(fsm.State), input.(Kind), output.(Outcome))
		},
		Equal: func(a, b any) bool { return a.(fsm.State) == b.(fsm.State) },
		Hash: func(state any) uint64 {
			for i, s := range fsm.States {
				if s == state.(fsm.State) {
					return uint64(i)
				}
			}
			return uint64(len(fsm.States))
		},
		DescribeOperation: func(input, output any) string {
			return fmt.Sprintf("%s -> %s", input.(Kind), output.(Outcome))
		},
		DescribeState: func(state any) string { return string(state.(fsm.State)) },
	}
}

// Operations converts ops to porcupine's form.
func Operations(ops []Op) []porcupine.Operation {
	out := make([]porcupine.Operation, len(ops))
	for i, op := range ops {
		out[i] = porcupine.Operation{ClientId: op.Client, Input: op.Kind, Call: op.Call, Output: op.Out, Return: op.Return}
	}
	return out
}

// Result is one check of one history.
type Result struct {
	Verdict porcupine.CheckResult // Ok, Illegal, or Unknown (timed out)
	Ops     int                   // operations checked
	Took    time.Duration         // checking time
}

// Check checks ops, a history starting in state init, for
// linearizability against Model(init), giving up after timeout (then the
// verdict is Unknown; 0 means no limit).
func Check(init fsm.State, ops []Op, timeout time.Duration) Result {
	start := time.Now()
	v := porcupine.CheckOperationsTimeout(Model(init), Operations(ops), timeout)
	return Result{Verdict: v, Ops: len(ops), Took: time.Since(start)}
}

// Visualize checks ops as Check does and writes porcupine's HTML view of
// the history and of the longest linearizations it found to path (for a
// history that came back Illegal: where the model got stuck).
func Visualize(init fsm.State, ops []Op, timeout time.Duration, path string) (porcupine.CheckResult, error) {
	model := Model(init)
	v, info := porcupine.CheckOperationsVerbose(model, Operations(ops), timeout)
	if err := porcupine.VisualizePath(model, info, path); err != nil {
		return v, fmt.Errorf("lincheck: visualize: %w", err)
	}
	return v, nil
}

// PlantAcceptedAfterDrain returns a copy of ops with one violation of I1
// planted, and the index of the operation it changed or added: a turn
// accepted after a drain's answer, while nothing could have cancelled
// that drain. It prefers to edit a refused turn that started after a
// drain's 200 (state draining), when no other operation that can change
// the state overlaps the stretch from that drain's call to the turn's
// return, so the drain is the last change before the turn in every
// linearisation: the turn is now answered 200. When no turn fits, it adds
// one, starting and returning 1 ns after a drain answered (intervals are
// closed: at the same instant it would be concurrent with the drain). A history
// that was Ok must be Illegal with it. ok is false when no drain fits.
func PlantAcceptedAfterDrain(ops []Op) (planted []Op, at int, ok bool) {
	var changers []int
	for i, op := range ops {
		if op.Kind.ChangesState() {
			changers = append(changers, i)
		}
	}
	// alone reports whether no changer but d overlaps [from, to].
	alone := func(d int, from, to int64) bool {
		for _, j := range changers {
			if j != d && ops[j].Call <= to && ops[j].Return >= from {
				return false
			}
		}
		return true
	}
	isDrain := func(op Op) bool {
		return op.Kind == Drain && !op.Out.Unknown && op.Out.Accepted && op.Out.State == fsm.Draining
	}
	planted = append([]Op(nil), ops...)
	for i, tr := range ops {
		if tr.Kind != Turn || tr.Out.Unknown || tr.Out.Accepted {
			continue
		}
		for _, d := range changers {
			if isDrain(ops[d]) && ops[d].Return < tr.Call && alone(d, ops[d].Call, tr.Return) {
				planted[i].Out.Accepted = true
				return planted, i, true
			}
		}
	}
	for _, d := range changers {
		if at := ops[d].Return + 1; isDrain(ops[d]) && alone(d, ops[d].Call, at) {
			planted = append(planted, Op{Client: ops[d].Client, Kind: Turn, Call: at, Return: at, Out: Outcome{Accepted: true}})
			return planted, len(planted) - 1, true
		}
	}
	return nil, -1, false
}
