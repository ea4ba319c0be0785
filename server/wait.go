package server

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/quiesce-dev/quiesce/api"
	"github.com/quiesce-dev/quiesce/fsm"
)

// WaitChange is the value of status?wait= that long-polls for a change.
const WaitChange = "change"

// ChangeResponse is the body of GET /api/gateway/status?wait=change: the
// status, and whether it is another status than the caller's (Changed:
// its Seq differs from after) rather than the same one answered at the
// timeout.
type ChangeResponse struct {
	api.Status
	Changed bool `json:"changed"`
}

// handleWaitChange answers status?wait=change&after=<seq>[&timeout=]: it
// waits until the gateway's status has changed since the one whose Seq is
// after, or the timeout (as wait=idle: a Go duration or seconds, default
// DefaultWaitTimeout, capped at MaxWaitTimeout) passes, and answers 200
// with the status then and "changed" true or false.
//
// It answers at once, without waiting, in two cases: after is greater than
// the current Seq (the caller's status is from an earlier life of the
// gateway, whose counter started again: changed), and the gateway is
// stopped (terminal: nothing will change, so a wait would only hold the
// connection open while the server closes).
func (s *Server) handleWaitChange(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	rawAfter, rawTimeout := q.Get("after"), q.Get("timeout")
	if rawAfter == "" {
		s.writeError(w, r, badRequest("after is required with wait=change: the seq of the status you have"))
		return
	}
	after, err := parseSeq(rawAfter)
	if err != nil {
		s.writeError(w, r, badRequest("after: %v", err))
		return
	}
	timeout, err := waitTimeout(rawTimeout)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if st := s.gw.Status(); st.Seq < after || st.State == fsm.Stopped {
		writeJSON(w, http.StatusOK, ChangeResponse{Status: st, Changed: st.Seq != after})
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), timeout)
	defer cancel()
	st, _ := s.gw.WaitChange(ctx, after) // a timeout still answers the status then
	if r.Context().Err() != nil {
		return // the client went away
	}
	writeJSON(w, http.StatusOK, ChangeResponse{Status: st, Changed: st.Seq != after})
}

// parseSeq parses a status seq: a decimal unsigned integer, no sign.
func parseSeq(s string) (uint64, error) {
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%q is not a seq (a whole number from a status answer)", s)
	}
	return n, nil
}

// waitTimeout is a long-poll's ?timeout=: DefaultWaitTimeout when empty,
// capped at MaxWaitTimeout; a bad value is a 400.
func waitTimeout(raw string) (time.Duration, error) {
	if raw == "" {
		return DefaultWaitTimeout, nil
	}
	d, err := parseTimeout(raw)
	if err != nil {
		return 0, badRequest("timeout: %v", err)
	}
	return min(d, MaxWaitTimeout), nil
}
