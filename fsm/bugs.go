package fsm

// Names of the planted bugs (see bugs_on.go); inert in a normal build.
const (
	bugSplitGate           = "split-gate"            // Accept checks, then increments, in two steps
	bugResumeAfterShutdown = "resume-after-shutdown" // resume leads out of shutting_down
	bugDoubleRelease       = "double-release"        // one Release ends two turns
	bugRepeatNotification  = "repeat-notification"   // a repeated drain tells observers again
)

// activeRules returns the rules, altered by a planted bug when one is set.
func activeRules() []rule {
	if plantedBug != bugResumeAfterShutdown {
		return rules
	}
	rs := append([]rule(nil), rules...)
	for i, r := range rs {
		if r.event == Resume && r.from == ShuttingDown {
			rs[i] = rule{Resume, ShuttingDown, Running, nil}
		}
	}
	return rs
}
