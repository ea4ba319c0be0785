package gateway

import (
	"errors"
	"time"

	"github.com/quiesce-dev/quiesce/marker"
)

// LocalDrain writes the drain marker in home directly (the CLI without a
// URL): the same marker a running gateway's BeginDrain writes, stamped with
// this machine's epoch from procRoot. The gateway's watcher picks it up.
func LocalDrain(home, procRoot string, req DrainRequest) (DrainInfo, error) {
	if procRoot == "" {
		procRoot = DefaultProcRoot
	}
	written, err := marker.Write(home, marker.Request{
		Action:               marker.ActionDrain,
		RequestedAt:          time.Now(),
		Principal:            req.Principal,
		Epoch:                marker.ProcessEpoch(procRoot),
		SuppressNotification: req.SuppressNotification,
		RequestID:            req.RequestID,
	})
	if err != nil {
		return DrainInfo{}, markerError("drain", err)
	}
	return drainInfo(written, marker.Active), nil
}

// LocalCancel removes the drain marker in home (only if its request id
// matches, when requestID is set; else ErrRequestMismatch). It reports
// whether a marker existed.
func LocalCancel(home, requestID string) (wasDraining bool, err error) {
	existed, err := marker.Clear(home, requestID)
	if errors.Is(err, marker.ErrRequestMismatch) {
		active := marker.Read(home, time.Now(), "", marker.DefaultMaxAge).Request.RequestID
		return true, &MismatchError{Active: active}
	}
	if err != nil {
		return false, markerError("cancel drain", err)
	}
	return existed, nil
}

// LocalStatus reads the status of the gateway whose home is home from its
// state file and the marker, judged with this machine's epoch. Live tells
// whether a gateway holds the home's lock now: if not, the state file is
// what a gateway that is gone last wrote. The error wraps fs.ErrNotExist
// when no gateway ever ran there.
func LocalStatus(home, procRoot string, maxAge time.Duration) (Status, error) {
	if procRoot == "" {
		procRoot = DefaultProcRoot
	}
	if maxAge <= 0 {
		maxAge = marker.DefaultMaxAge
	}
	doc, err := readStateFile(home)
	if err != nil {
		return Status{}, err
	}
	live, _, err := HomeLive(home)
	if err != nil {
		return Status{}, err
	}
	epoch := marker.ProcessEpoch(procRoot)
	now := time.Now()
	return Status{
		State:             doc.GatewayState,
		StateSince:        doc.StateSince,
		ActiveAgents:      doc.ActiveAgents,
		Drain:             drainStatus(marker.Read(home, now, epoch, maxAge), maxAge),
		Epoch:             doc.Epoch,
		PID:               doc.PID,
		UptimeSeconds:     doc.UpdatedAt.Sub(doc.StartedAt).Seconds(),
		OldestTurnSeconds: doc.OldestTurnSeconds,
		Live:              live,
	}, nil
}
