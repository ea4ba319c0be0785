package gateway

import (
	"fmt"
	"strings"
	"time"
	"unicode"

	"github.com/quiesce-dev/quiesce/api"
	"github.com/quiesce-dev/quiesce/internal/randid"
	"github.com/quiesce-dev/quiesce/marker"
)

// nextRequest is the marker request that req makes, given active, the
// drain request in effect (ok false: none). A req whose RequestID names
// active refreshes it (see DrainRequest); any other replaces it. The
// result is complete (action, time, id filled in), so it is also what a
// drain held in memory records when the write fails.
func nextRequest(active marker.Request, ok bool, req DrainRequest, now time.Time, epoch string) (next marker.Request, refreshed bool) {
	if ok && req.RequestID != "" && req.RequestID == active.RequestID {
		next, refreshed = active, true
		if next.Principal == "" {
			next.Principal = req.Principal
		}
		next.Reason = fitReason(next.Reason) // a hand-written marker's may not fit
	} else {
		next = marker.Request{Principal: req.Principal, RequestID: req.RequestID}
	}
	if req.SuppressNotification != nil {
		next.SuppressNotification = *req.SuppressNotification
	}
	if req.Reason != nil {
		next.Reason = *req.Reason
	}
	next.Action = marker.ActionDrain
	next.RequestedAt = now.UTC()
	next.Epoch = epoch
	if next.RequestID == "" {
		next.RequestID = randid.New()
	}
	return next, refreshed
}

// fitReason makes a reason read from a marker one marker.CheckReason
// accepts: invalid UTF-8 and characters that are not printable become
// spaces, and it is cut to marker.MaxReasonLen characters.
func fitReason(reason string) string {
	if marker.CheckReason(reason) == nil {
		return reason
	}
	var b strings.Builder
	n := 0
	for _, r := range strings.ToValidUTF8(reason, " ") {
		if n == marker.MaxReasonLen {
			break
		}
		if !unicode.IsPrint(r) {
			r = ' '
		}
		b.WriteRune(r)
		n++
	}
	return b.String()
}

// activeRequest returns the drain request in effect given the marker
// reading st and mem, the drain held in memory (nil: none): mem when set
// (it is newer than the marker, see currentUnpersisted), else an active
// marker's request.
func activeRequest(st marker.State, mem *marker.Request) (marker.Request, bool) {
	if mem != nil {
		return *mem, true
	}
	return st.Request, st.Status == marker.Active
}

// checkDrainRequest refuses a reason marker.CheckReason refuses, with
// ErrInvalid.
func checkDrainRequest(req DrainRequest) error {
	if req.Reason == nil {
		return nil
	}
	if err := marker.CheckReason(*req.Reason); err != nil {
		return fmt.Errorf("%w: %s", ErrInvalid, strings.TrimPrefix(err.Error(), marker.ErrInvalidRequest.Error()+": "))
	}
	return nil
}

// currentUnpersisted returns the drain held in memory, dropping it first
// (so it no longer drains) when a marker written since supersedes it (an
// active marker requested at or after it: a local drain or another
// process wrote one) or when it is older than the max age, as a marker
// would expire. st is the marker as just read. The caller holds ctlMu.
func (g *Gateway) currentUnpersisted(st marker.State) *marker.Request {
	mem := g.unpersisted.Load()
	if mem == nil {
		return nil
	}
	switch {
	case st.Status == marker.Active && !st.Request.RequestedAt.Before(mem.RequestedAt):
		g.log.Info("drain held in memory superseded by a newer drain marker",
			"request_id", mem.RequestID, "marker_request_id", st.Request.RequestID)
	case g.cfg.Now().Sub(mem.RequestedAt) > g.cfg.MaxAge:
		g.log.Warn("drain held in memory expired (the marker could not be written, and it was not refreshed)",
			"request_id", mem.RequestID, "requested_at", mem.RequestedAt, "max_age", g.cfg.MaxAge)
	default:
		return mem
	}
	g.unpersisted.Store(nil)
	return nil
}

// drainView is the API's view of the drain: the drain in effect
// (drainInEffect) with the open announce window, if any (withAnnounce).
func (g *Gateway) drainView(st marker.State) *api.DrainInfo {
	return g.withAnnounce(g.drainInEffect(st))
}

// drainInEffect is the drain held in memory (persisted false) if there is
// one, else the marker reading st.
func (g *Gateway) drainInEffect(st marker.State) *api.DrainInfo {
	mem := g.unpersisted.Load()
	if mem == nil {
		return drainStatus(st, g.cfg.MaxAge)
	}
	status := marker.Active
	if g.cfg.Now().Sub(mem.RequestedAt) > g.cfg.MaxAge {
		status = marker.Expired // until the next reconcile drops it
	}
	info := drainInfo(*mem, status)
	info.Persisted = false
	info.ExpiresAt = mem.RequestedAt.Add(g.cfg.MaxAge).UTC()
	return &info
}

// suppresses reports whether the home broadcast is suppressed, given the
// marker reading st: by the drain held in memory when there is one (the
// operator asked this very process), else by the marker (State.Suppresses).
func (g *Gateway) suppresses(st marker.State) bool {
	if mem := g.unpersisted.Load(); mem != nil {
		return mem.SuppressNotification
	}
	return st.Suppresses()
}

// drainAttrs are the log attributes of a drain request.
func drainAttrs(d *api.DrainInfo) []any {
	if d == nil {
		return nil
	}
	return []any{"request_id", d.RequestID, "principal", d.Principal, "reason", d.Reason,
		"suppress_notification", d.SuppressNotification, "persisted", d.Persisted}
}
