package server

import (
	"time"

	"github.com/quiesce-dev/quiesce/api"
	"github.com/quiesce-dev/quiesce/gateway"
)

// MaxAnnounceSeconds is the largest announce_seconds a drain accepts.
const MaxAnnounceSeconds = float64(gateway.MaxAnnounce / time.Second)

// announceOf checks a drain body's announce_seconds and returns it as a
// duration (0 when absent).
func announceOf(body api.DrainBody) (time.Duration, error) {
	if body.AnnounceSeconds == nil {
		return 0, nil
	}
	secs := *body.AnnounceSeconds
	if !(secs >= 0 && secs <= MaxAnnounceSeconds) {
		return 0, badRequest("announce_seconds must be a number of seconds from 0 to %v, not %v", MaxAnnounceSeconds, secs)
	}
	return time.Duration(secs * float64(time.Second)), nil
}

// DrainResponseOf is the API's answer for what gateway.BeginDrain (or
// gateway.LocalDrain, whose State and ActiveAgents are zero) did, so the
// CLI's local drain prints the same JSON as the API.
func DrainResponseOf(res gateway.DrainResult) api.DrainResponse {
	return api.DrainResponse{
		OK:                   true,
		Action:               api.ActionDrain,
		RequestedAt:          res.Drain.RequestedAt,
		Draining:             true,
		SuppressNotification: res.Drain.SuppressNotification,
		Principal:            res.Drain.Principal,
		RequestID:            res.Drain.RequestID,
		State:                res.State,
		ActiveAgents:         res.ActiveAgents,
		WasDraining:          res.WasDraining,
		Refreshed:            res.Refreshed,
		Reason:               res.Drain.Reason,
		Persisted:            res.Drain.Persisted,
		ExpiresAt:            res.Drain.ExpiresAt,
	}
}
