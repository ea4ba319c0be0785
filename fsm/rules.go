package fsm

// Rule is one (event, state) cell of the lifecycle table: the state Event
// leads to from From, or the error that refuses it (Err non-nil; To is
// then From). A rule with To equal to From and no Err is an accepted
// repeat that changes nothing (a no-op).
type Rule struct {
	Event Event
	From  State
	To    State
	Err   error
}

// Transition reports whether the rule changes the state.
func (r Rule) Transition() bool { return r.Err == nil && r.To != r.From }

// Noop reports whether the rule is an accepted repeat that changes nothing.
func (r Rule) Noop() bool { return r.Err == nil && r.To == r.From }

// Rules returns the lifecycle table the machine is built from (the same
// one Describe draws): every (event, state) pair exactly once, in
// declaration order. The slice is the caller's: changing it changes
// nothing in the machine.
func Rules() []Rule {
	out := make([]Rule, len(rules))
	for i, r := range rules {
		out[i] = Rule{Event: r.event, From: r.from, To: r.to, Err: r.err}
	}
	return out
}
