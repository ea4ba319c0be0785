package main

import (
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
)

// TestSystemdNotifierWatchdogPingsAtHalfThePeriod: systemd kills a service
// whose WATCHDOG=1 does not arrive within WATCHDOG_USEC; the gateway pings
// every half period, so a ping has arrived by half the period and two by
// the whole of it (a pinger at the full period would send its first only
// on the very edge of being late). The pinger's ticker runs on the fake
// clock of a synctest bubble: the counts are exact, whatever the machine's
// load.
func TestSystemdNotifierWatchdogPingsAtHalfThePeriod(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const period = 2 * time.Second
		rec := newRecorder()
		n := startSystemdNotifier(discardLogger(), rec.send, period, time.Second)
		defer n.close()
		pings := func() int {
			synctest.Wait() // the pinger has sent what is due and waits again
			got := 0
			for {
				select {
				case m := <-rec.msgs:
					assert.Equal(t, "WATCHDOG=1", m)
					got++
				default:
					return got
				}
			}
		}
		assert.Zero(t, pings(), "no ping at the start")
		time.Sleep(period/2 - time.Nanosecond)
		assert.Zero(t, pings(), "no ping before the first half period")
		time.Sleep(time.Nanosecond)
		assert.Equal(t, 1, pings(), "a ping at half the watchdog period")
		time.Sleep(period / 2)
		assert.Equal(t, 1, pings(), "the next at the full period: two within one period")
		time.Sleep(3 * period / 2)
		assert.Equal(t, 3, pings(), "one every half period")
	})
}
