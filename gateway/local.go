package gateway

import (
	"errors"
	"fmt"
	"time"

	"github.com/quiesce-dev/quiesce/internal/homefile"
	"github.com/quiesce-dev/quiesce/marker"
)

// LocalDrain writes the drain marker in home directly (the CLI without a
// URL): the same marker a running gateway's BeginDrain writes, stamped with
// this machine's epoch from procRoot, with the same refresh rule (a
// request naming the active marker's request id refreshes it, see
// DrainRequest). The gateway's watcher picks it up. The result's State and
// ActiveAgents are left zero (no gateway was asked), and its expiry is
// judged with marker.DefaultMaxAge. A reason marker.CheckReason refuses
// gives ErrInvalid; a marker path that is not a regular file gives
// ErrMarkerUnusable; a marker that cannot be written (a full disk, a
// read-only home) gives an error wrapping ErrMarkerUnwritable and its
// cause: nothing is drained then (only a live gateway's API can hold a
// drain in memory).
func LocalDrain(home, procRoot string, req DrainRequest) (DrainResult, error) {
	if procRoot == "" {
		procRoot = DefaultProcRoot
	}
	if err := checkDrainRequest(req); err != nil {
		return DrainResult{}, err
	}
	now := time.Now()
	epoch := marker.ProcessEpoch(procRoot)
	var was, refreshed bool
	_, written, err := marker.Edit(home, now, epoch, marker.DefaultMaxAge, func(prev marker.State) (marker.Request, error) {
		active, ok := activeRequest(prev, nil)
		was = prev.Drains()
		next, ref := nextRequest(active, ok, req, now, epoch)
		refreshed = ref
		return next, nil
	})
	switch {
	case err == nil:
	case errors.Is(err, homefile.ErrNotRegular) || errors.Is(err, marker.ErrUnusable):
		return DrainResult{}, markerError("drain", err)
	case errors.Is(err, marker.ErrInvalidRequest): // not expected: the request was checked
		return DrainResult{}, fmt.Errorf("%w: %w", ErrInvalid, err)
	default:
		return DrainResult{}, fmt.Errorf("gateway: drain: %w: %s: %w", ErrMarkerUnwritable, marker.Path(home), err)
	}
	info := drainInfo(written, marker.Active)
	info.ExpiresAt = written.RequestedAt.Add(marker.DefaultMaxAge).UTC()
	return DrainResult{Drain: info, WasDraining: was, Refreshed: refreshed, ExpiresAt: info.ExpiresAt}, nil
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
