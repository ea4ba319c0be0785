package fsm

// The gate word packs the lifecycle state and the in-flight count into one
// uint64 so that "the state is running" and "count++" are one
// compare-and-swap:
//
//	bits 0-1   state index (States order)
//	bits 2-63  in-flight count
const (
	stateBits = 2
	stateMask = 1<<stateBits - 1
	countUnit = 1 << stateBits
)

func wordState(w uint64) State  { return States[w&stateMask] }
func wordCount(w uint64) int    { return int(w / countUnit) }
func wordRunning(w uint64) bool { return w&stateMask == 0 } // Running is index 0
func withState(w uint64, s State) uint64 {
	return w&^stateMask | stateIndex(s)
}

// Snapshot is one atomic reading of the gate: state and in-flight count.
type Snapshot struct {
	State    State
	InFlight int
}

func snapshotOf(w uint64) Snapshot {
	return Snapshot{State: wordState(w), InFlight: wordCount(w)}
}
