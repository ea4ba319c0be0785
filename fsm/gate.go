package fsm

// The gate word packs the lifecycle state, a transition generation and the
// in-flight count into one uint64 so that "the state is running" and
// "count++" are one compare-and-swap:
//
//	bits 0-1   state index (States order)
//	bits 2-23  generation: incremented on every transition (wraps)
//	bits 24-63 in-flight count
const (
	stateBits = 2
	genBits   = 22
	stateMask = 1<<stateBits - 1
	genShift  = stateBits
	genMask   = (1<<genBits - 1) << genShift
	countUnit = 1 << (stateBits + genBits)
)

func wordState(w uint64) State  { return States[w&stateMask] }
func wordCount(w uint64) int    { return int(w / countUnit) }
func wordGen(w uint64) uint64   { return (w & genMask) >> genShift }
func wordRunning(w uint64) bool { return w&stateMask == 0 } // Running is index 0
func nextGen(w uint64) uint64   { return (w + 1<<genShift) & genMask }
func withState(w uint64, s State) uint64 {
	return w&^(stateMask|genMask) | nextGen(w) | stateIndex(s)
}

// Snapshot is one atomic reading of the gate: state, in-flight count and
// the generation of the transition that produced the state.
type Snapshot struct {
	State      State
	InFlight   int
	Generation uint64
}

func snapshotOf(w uint64) Snapshot {
	return Snapshot{State: wordState(w), InFlight: wordCount(w), Generation: wordGen(w)}
}
