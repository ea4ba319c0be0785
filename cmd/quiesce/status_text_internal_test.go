package main

import (
	"bytes"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/quiesce-dev/quiesce/api"
	"github.com/quiesce-dev/quiesce/fsm"
	"github.com/quiesce-dev/quiesce/gateway"
)

// TestStatusTextDrainLines shows the drain lines of 'quiesce status' that
// OPERATIONS.md documents, each only in its own case: NOT PERSISTED for
// an active drain held in memory, "none on disk" for a live local gateway
// that drains with no marker, ANNOUNCED during an announce window, and
// the expiry of an active request only (a stale or expired one does not
// drain, so it does not expire either).
func TestStatusTextDrainLines(t *testing.T) {
	at := time.Date(2026, 12, 7, 3, 48, 30, 0, time.UTC)
	expires, until := at.Add(time.Hour), at.Add(2*time.Second)
	drain := func(status string, persisted bool) *api.DrainInfo {
		return &api.DrainInfo{Status: status, Persisted: persisted, RequestID: "maint-42", Principal: "ops",
			RequestedAt: at, ExpiresAt: expires}
	}
	live := &localStatus{Home: "/var/lib/quiesce", Condition: gateway.HomeRunning}
	dead := &localStatus{Home: "/var/lib/quiesce", Condition: gateway.HomeNotRunning}
	const (
		notPersisted = "NOT PERSISTED: the marker could not be written"
		noneOnDisk   = "none on disk: the gateway drains, but no marker is in /var/lib/quiesce"
		announced    = "ANNOUNCED: /readyz fails, turns are still accepted; the gate closes at 2026-12-07T03:48:32Z"
		expiry       = ", expires 2026-12-07T04:48:30Z"
	)
	all := []string{notPersisted, noneOnDisk, announced, expiry}
	for _, tc := range []struct {
		name string
		v    statusView
		want []string
	}{
		{"Persisted", statusView{Status: api.Status{State: fsm.Draining, Drain: drain("active", true)}}, []string{expiry}},
		{"InMemoryOnly", statusView{Status: api.Status{State: fsm.Draining, Drain: drain("active", false)}}, []string{expiry, notPersisted}},
		{"Stale", statusView{Status: api.Status{State: fsm.Running, Drain: drain("stale", true)}}, nil},
		{"Expired", statusView{Status: api.Status{State: fsm.Running, Drain: drain("expired", true)}}, nil},
		{"LocalLiveNoMarker", statusView{Status: api.Status{State: fsm.Draining}, local: live}, []string{noneOnDisk}},
		{"LocalDeadNoMarker", statusView{Status: api.Status{State: fsm.Draining}, local: dead}, nil},
		{"LocalLiveRunning", statusView{Status: api.Status{State: fsm.Running}, local: live}, nil},
		{"Announcing", statusView{Status: api.Status{State: fsm.Running, Drain: &api.DrainInfo{Status: gateway.DrainStatusAnnouncing,
			RequestID: "w-1", AnnounceUntil: until}}}, []string{announced}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var b bytes.Buffer
			printStatus(&b, tc.v)
			out := b.String()
			for _, line := range all {
				if slices.Contains(tc.want, line) {
					assert.Contains(t, out, line)
				} else {
					assert.NotContains(t, out, line)
				}
			}
		})
	}
}
