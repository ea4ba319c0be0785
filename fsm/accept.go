package fsm

// Accept admits a new turn iff the state is running at the instant the
// in-flight count is incremented: one compare-and-swap on the gate word. It
// never blocks and never allocates. Every true result must be matched by
// exactly one Release.
func (m *Machine) Accept() bool {
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

// Release ends one accepted turn. It returns ErrNotAccepted, changing
// nothing, when no turn is in flight. When the count reaches zero it wakes
// every WaitIdle caller. It never blocks on I/O and never allocates.
func (m *Machine) Release() error {
	for {
		w := m.word.Load()
		if w < countUnit {
			return ErrNotAccepted
		}
		if m.word.CompareAndSwap(w, w-countUnit) {
			if w < 2*countUnit {
				m.idle() // the last turn ended
			}
			return nil
		}
	}
}
