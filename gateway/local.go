package gateway

import (
	"errors"
	"fmt"
	"time"

	"github.com/quiesce-dev/quiesce/fsm"
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
// drain in memory). An announce (req.Announce) gives ErrInvalid: only a
// live gateway can fail /readyz while its gate stays open.
func LocalDrain(home, procRoot string, req DrainRequest) (DrainResult, error) {
	if procRoot == "" {
		procRoot = DefaultProcRoot
	}
	if err := checkDrainRequest(req); err != nil {
		return DrainResult{}, err
	}
	if req.Announce != 0 {
		return DrainResult{}, fmt.Errorf("%w: announce needs the live gateway's API (its /readyz must fail while the gate stays open)", ErrInvalid)
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
	drain := drainStatus(marker.Read(home, now, epoch, maxAge), maxAge)
	announcing := live && doc.Drain != nil && !doc.Drain.AnnounceUntil.IsZero()
	if announcing { // the live gateway's announce window, as its state file shows it
		if drain == nil || (drain.Status != marker.Active.String() && drain.Status != marker.Contentless.String()) {
			drain = doc.Drain
		}
		drain.AnnounceUntil = doc.Drain.AnnounceUntil
	}
	return Status{
		State:             doc.GatewayState,
		StateSince:        doc.StateSince,
		Ready:             live && doc.GatewayState == fsm.Running && !announcing,
		ActiveAgents:      doc.ActiveAgents,
		Drain:             drain,
		Epoch:             doc.Epoch,
		PID:               doc.PID,
		UptimeSeconds:     doc.UpdatedAt.Sub(doc.StartedAt).Seconds(),
		OldestTurnSeconds: doc.OldestTurnSeconds,
		Live:              live,
	}, nil
}
