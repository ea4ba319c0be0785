package gateway

import (
	"sync/atomic"

	"github.com/quiesce-dev/quiesce/fsm"
)

// transitions counts a Machine's committed transitions, for I1 samplers.
type transitions struct{ n atomic.Int64 }

// countTransitions subscribes a counter to m.
func countTransitions(m *fsm.Machine) *transitions {
	tc := &transitions{}
	m.Subscribe(func(fsm.Transition) { tc.n.Add(1) })
	return tc
}

// period is a snapshot with the transition count read before and after it.
type period struct {
	fsm.Snapshot
	k  int64
	ok bool // no transition was counted while the snapshot was read
}

// sample reads m's gate between two readings of the count.
func (tc *transitions) sample(m *fsm.Machine) period {
	k := tc.n.Load()
	s := m.Snapshot()
	return period{s, k, tc.n.Load() == k}
}

// rose reports an I1 violation between two samples: both in one
// non-running period, and more in flight in the later one. Observers run
// inside Fire before the next transition can commit, so at most one
// commit is uncounted at any time, and a commit always changes the state:
// equal counts and equal states mean no transition in between.
func rose(prev, cur period) bool {
	return prev.ok && cur.ok && prev.k == cur.k && prev.State == cur.State &&
		cur.State != fsm.Running && cur.InFlight > prev.InFlight
}
