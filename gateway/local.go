package gateway

import (
	"errors"
	"fmt"
	"io/fs"
	"strconv"
	"time"

	"github.com/quiesce-dev/quiesce/api"
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
	return DrainResult{Drain: info, WasDraining: was, Refreshed: refreshed}, nil
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

// Home conditions: what LocalStatus found holding a home.
const (
	// HomeRunning: a gateway holds the home's lock and its state file is
	// its own (names its pid).
	HomeRunning = "live"
	// HomeStarting: a gateway holds the lock but has not written its
	// state file yet (the file there is a previous gateway's, or none).
	HomeStarting = "starting"
	// HomeNotRunning: no process holds the lock; the state file, if any,
	// is what the last gateway wrote before it stopped or died.
	HomeNotRunning = "not_running"
)

// StateStarting is the State LocalStatus reports for HomeStarting: not a
// lifecycle state, the gateway has none on record yet.
const StateStarting fsm.State = "starting"

// HomeStatus is what a home tells, read by LocalStatus, about the gateway
// that holds it or last held it.
type HomeStatus struct {
	// Status is the state file's, judged by Condition: for HomeRunning its
	// State, turns and pid with the uptime counted to now; for
	// HomeStarting State is StateStarting and PID the lock holder's (0
	// when unknown yet); for HomeNotRunning the last recorded state and
	// pid, no turns in flight and no uptime. Live is Condition ==
	// HomeRunning or HomeStarting.
	api.Status
	// Condition is HomeRunning, HomeStarting or HomeNotRunning.
	Condition string
	// Addr is where the live gateway's HTTP API listens ("" if the state
	// file does not say).
	Addr string
	// StartedAt and UpdatedAt are the state file's: when its gateway
	// started, and when it last wrote the file (zero without a file).
	StartedAt time.Time
	UpdatedAt time.Time
}

// LocalStatus reads the status of the gateway whose home is home, from
// one consistent source: the home's lock says whether a gateway is live
// (and gateway.lock which pid holds it); the state file is taken as that
// gateway's only when it names the same pid, else the gateway is still
// starting. The marker is judged with this machine's epoch. Every file is
// opened without blocking: a FIFO, directory or symlink at gateway.lock or
// gateway_state.json is an error naming it. The error wraps
// fs.ErrNotExist when no gateway ever ran there.
func LocalStatus(home, procRoot string, maxAge time.Duration) (HomeStatus, error) {
	if procRoot == "" {
		procRoot = DefaultProcRoot
	}
	if maxAge <= 0 {
		maxAge = marker.DefaultMaxAge
	}
	live, lockPID, err := HomeLive(home)
	if err != nil {
		return HomeStatus{}, err
	}
	holder, _ := strconv.Atoi(lockPID)
	doc, err := readStateFile(home)
	noFile := errors.Is(err, fs.ErrNotExist)
	if err != nil && !noFile {
		return HomeStatus{}, err
	}
	if noFile && !live && holder == 0 {
		return HomeStatus{}, err
	}
	now := time.Now()
	drain := drainStatus(marker.Read(home, now, marker.ProcessEpoch(procRoot), maxAge), maxAge)
	announcing := live && doc.Drain != nil && !doc.Drain.AnnounceUntil.IsZero()
	if announcing { // the live gateway's announce window, as its state file shows it
		if drain == nil || (drain.Status != marker.Active.String() && drain.Status != marker.Contentless.String()) {
			drain = doc.Drain
		}
		drain.AnnounceUntil = doc.Drain.AnnounceUntil
	}
	hs := HomeStatus{
		Status: api.Status{
			Seq: doc.Seq, State: doc.GatewayState, StateSince: doc.StateSince, ActiveAgents: doc.ActiveAgents,
			Ready: live && doc.GatewayState == fsm.Running && !announcing, Drain: drain,
			Epoch: doc.Epoch, PID: doc.PID, OldestTurnSeconds: doc.OldestTurnSeconds, Live: live,
		},
		Addr: doc.Addr, StartedAt: doc.StartedAt, UpdatedAt: doc.UpdatedAt,
	}
	switch {
	case live && (!pidAlive(holder) || noFile || doc.PID != holder):
		// The lock is held but gateway.lock still names a process that is
		// gone (the new holder has not written its pid yet), or the state
		// file is not the holder's: a gateway is starting.
		hs.Condition, hs.State, hs.StateSince, hs.ActiveAgents, hs.OldestTurnSeconds = HomeStarting, StateStarting, time.Time{}, 0, 0
		hs.Ready = false
		hs.Seq, hs.Epoch, hs.Addr, hs.PID = 0, "", "", 0
		if pidAlive(holder) {
			hs.PID = holder
		}
	case live:
		hs.Condition = HomeRunning
		hs.UptimeSeconds = max(now.Sub(doc.StartedAt).Seconds(), 0)
	default:
		hs.Condition = HomeNotRunning
		hs.ActiveAgents, hs.OldestTurnSeconds = 0, 0
		if noFile {
			hs.PID = holder
		}
	}
	return hs, nil
}
