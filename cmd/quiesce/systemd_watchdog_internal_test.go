package main

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestSystemdNotifierWatchdogPingsAtHalfThePeriod: systemd kills a service
// whose WATCHDOG=1 does not arrive within WATCHDOG_USEC; the gateway pings
// every half period, so two pings arrive within one period and a
// half (a pinger at the full period would send only one, on the very edge
// of being late). The period is long enough that a busy machine's
// scheduling delay is small beside the half-period margin either way.
func TestSystemdNotifierWatchdogPingsAtHalfThePeriod(t *testing.T) {
	const period = 2 * time.Second
	rec := newRecorder()
	n := startSystemdNotifier(discardLogger(), rec.send, period, time.Second)
	defer n.close()
	window := time.After(period + period/2)
	for pings := 0; pings < 2; {
		select {
		case m := <-rec.msgs:
			require.Equal(t, "WATCHDOG=1", m)
			pings++
		case <-window:
			require.Failf(t, "watchdog pings too far apart",
				"%d WATCHDOG=1 within %v of a %v watchdog, want 2 (one every half period)", pings, period+period/2, period)
		}
	}
}
