//go:build quiesce_plantedbugs

package fsm

import "runtime"

// Accept and Release as in accept.go, with the planted gate bugs the
// property tests must catch (QUIESCE_PLANTED_BUG; see planted_test.go).
// This file is only in test binaries built with -tags quiesce_plantedbugs,
// so the real Accept and Release carry no test branch.

// Accept admits a new turn iff the state is running (see accept.go), or,
// with the split-gate bug, checks and increments in two separate steps.
func (m *Machine) Accept() bool {
	if plantedBug == bugSplitGate {
		if !wordRunning(m.word.Load()) {
			return false
		}
		runtime.Gosched()
		m.word.Add(countUnit)
		return true
	}
	for {
		w := m.word.Load()
		if !wordRunning(w) {
			return false
		}
		if m.word.CompareAndSwap(w, w+countUnit) {
			return true
		}
	}
}

// Release ends one accepted turn (see accept.go), or, with the
// double-release bug, two.
func (m *Machine) Release() error {
	dec := uint64(countUnit)
	for {
		w := m.word.Load()
		if wordCount(w) == 0 {
			return ErrNotAccepted
		}
		if plantedBug == bugDoubleRelease && wordCount(w) >= 2 {
			dec = 2 * countUnit
		}
		nw := w - dec
		if m.word.CompareAndSwap(w, nw) {
			if wordCount(nw) == 0 {
				m.idle()
			}
			return nil
		}
	}
}
