package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/quiesce-dev/quiesce/api"
	"github.com/quiesce-dev/quiesce/fsm"
	"github.com/quiesce-dev/quiesce/gateway"
)

// authedHandler handles a request that auth admitted; principal is the
// owner of its token.
type authedHandler func(w http.ResponseWriter, r *http.Request, principal string)

// auth admits a request that carries "Authorization: Bearer <token>" with
// a known token and hands its principal to next; anything else gets 401.
// The principal is passed as an argument, not in the request context, so
// admitting a request clones nothing.
func (s *Server) auth(next authedHandler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		scheme, token, ok := strings.Cut(headerValue(r.Header, "Authorization"), " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") {
			s.unauthorized(w, r, "missing bearer token (Authorization: Bearer <token>)")
			return
		}
		p, ok := s.tokens.Lookup(strings.TrimSpace(token))
		if !ok {
			s.unauthorized(w, r, "unknown bearer token")
			return
		}
		next(w, r, p)
	})
}

// headerValue is h.Get(key) for a key already in canonical form, as
// net/http stores every request header: the map read without Get's
// canonicalization of key, a scan of it on every call.
func headerValue(h http.Header, key string) string {
	if v := h[key]; len(v) > 0 {
		return v[0]
	}
	return ""
}

func (s *Server) unauthorized(w http.ResponseWriter, r *http.Request, msg string) {
	s.logger.Warn("unauthorized request", "method", r.Method, "route", r.URL.Path, "remote", r.RemoteAddr, "reason", msg)
	s.writeError(w, r, errorf(http.StatusUnauthorized, api.CodeUnauthorized, "%s", msg))
}

// logControl writes the one INFO line every control call gets.
func (s *Server) logControl(r *http.Request, principal, action, result string, args ...any) {
	s.logger.Info("control call", append([]any{"route", r.URL.Path, "action", action,
		"principal", principal, "result", result}, args...)...)
}

func (s *Server) handleDrain(w http.ResponseWriter, r *http.Request, principal string) {
	var body api.DrainBody
	if err := s.decode(w, r, &body, true); err != nil {
		s.logControl(r, principal, "drain", "bad_request")
		s.writeError(w, r, err)
		return
	}
	action := api.ActionDrain
	if body.Action != nil {
		action = *body.Action
	}
	announce, err := announceOf(body)
	switch {
	case err != nil:
		s.logControl(r, principal, action, "bad_request")
		s.writeError(w, r, err)
		return
	case body.AnnounceSeconds != nil && action != api.ActionDrain:
		s.logControl(r, principal, action, "bad_request")
		s.writeError(w, r, badRequest("announce_seconds is only for action %q", api.ActionDrain))
		return
	}
	switch action {
	case api.ActionDrain:
		res, err := s.gw.BeginDrain(r.Context(), gateway.DrainRequest{
			Principal:            principal,
			SuppressNotification: body.SuppressNotification,
			RequestID:            body.RequestID,
			Reason:               body.Reason,
			Announce:             announce,
		})
		if err != nil && r.Context().Err() != nil {
			// The client went away during the announce window: the drain
			// stays announced and takes effect at the window's end.
			s.logControl(r, principal, action, "client_gone", "announce", announce, "error", err)
			return
		}
		if err != nil {
			if u, ok := errors.AsType[*gateway.UnwritableError](err); ok {
				res := u.Result
				s.logControl(r, principal, action, api.CodeMarkerUnwritable, "request_id", res.Drain.RequestID,
					"suppress_notification", res.Drain.SuppressNotification, "reason", res.Drain.Reason,
					"state", res.State, "refreshed", res.Refreshed, "persisted", false, "error", err)
			} else {
				s.logControl(r, principal, action, errorFor(err).Code, "request_id", body.RequestID, "error", err)
			}
			s.writeError(w, r, err)
			return
		}
		s.logControl(r, principal, action, "ok", "request_id", res.Drain.RequestID,
			"suppress_notification", res.Drain.SuppressNotification, "reason", res.Drain.Reason, "state", res.State,
			"was_draining", res.WasDraining, "refreshed", res.Refreshed)
		writeJSON(w, http.StatusOK, DrainResponseOf(res))
	case api.ActionCancel:
		res, err := s.gw.CancelDrain(r.Context(), body.RequestID)
		if err != nil {
			s.logControl(r, principal, action, errorFor(err).Code, "request_id", body.RequestID, "error", err)
			s.writeError(w, r, err)
			return
		}
		s.logControl(r, principal, action, "ok", "was_draining", res.WasDraining, "state", res.State)
		writeJSON(w, http.StatusOK, api.CancelResponse{
			OK:           true,
			Action:       api.ActionCancel,
			WasDraining:  res.WasDraining,
			State:        res.State,
			ActiveAgents: res.ActiveAgents,
		})
	default:
		s.logControl(r, principal, action, "bad_request")
		s.writeError(w, r, badRequest("action must be %q or %q, not %q", api.ActionDrain, api.ActionCancel, action))
	}
}

// handleStatus answers the gateway's status. With ?wait=idle it first
// waits, on the gateway's idle signal, until no turn is in flight or the
// timeout (?timeout=, a Go duration or seconds; default
// DefaultWaitTimeout, capped at MaxWaitTimeout) passes, and then answers
// 200 with "idle" true or false. ?wait=change&after=<seq> waits for a
// change instead (handleWaitChange).
func (s *Server) handleStatus(w http.ResponseWriter, r *http.Request, _ string) {
	q := r.URL.Query()
	wait, rawTimeout := q.Get("wait"), q.Get("timeout")
	switch {
	case wait == "" && rawTimeout == "" && !q.Has("after"):
		writeJSON(w, http.StatusOK, api.StatusResponse{Status: s.gw.Status()})
		return
	case wait == WaitChange:
		s.handleWaitChange(w, r)
		return
	case wait != "idle" || q.Has("after"):
		s.writeError(w, r, badRequest("wait must be \"idle\" or \"change\" (timeout needs a wait, after needs wait=change)"))
		return
	}
	timeout, err := waitTimeout(rawTimeout)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), timeout)
	defer cancel()
	err = s.gw.WaitIdle(ctx)
	if r.Context().Err() != nil {
		return // the client went away
	}
	idle := err == nil
	writeJSON(w, http.StatusOK, api.StatusResponse{Status: s.gw.Status(), Idle: &idle})
}

// handleTurns answers the turns in flight (they name sessions: token
// only).
func (s *Server) handleTurns(w http.ResponseWriter, _ *http.Request, _ string) {
	turns := s.gw.Turns()
	if turns == nil {
		turns = []api.TurnInfo{}
	}
	writeJSON(w, http.StatusOK, api.TurnsResponse{Turns: turns})
}

// handleHistory answers the last lifecycle events (they name principals
// and request ids: token only).
func (s *Server) handleHistory(w http.ResponseWriter, _ *http.Request, _ string) {
	events := s.gw.History()
	if events == nil {
		events = []api.HistoryEntry{}
	}
	writeJSON(w, http.StatusOK, api.HistoryResponse{Events: events})
}

// parseTimeout accepts a Go duration ("30s") or whole seconds ("30"),
// greater than zero.
func parseTimeout(s string) (time.Duration, error) {
	d, err := time.ParseDuration(s)
	if err != nil {
		n, nerr := strconv.Atoi(s)
		if nerr != nil {
			return 0, fmt.Errorf("%q is neither a duration like 30s nor a number of seconds", s)
		}
		d = time.Duration(n) * time.Second
	}
	if d <= 0 {
		return 0, fmt.Errorf("%q must be greater than zero", s)
	}
	return d, nil
}

func (s *Server) handleShutdown(w http.ResponseWriter, r *http.Request, principal string) {
	var body api.ShutdownBody
	if err := s.decode(w, r, &body, true); err != nil {
		s.logControl(r, principal, "shutdown", "bad_request")
		s.writeError(w, r, err)
		return
	}
	start := s.gw.BeginShutdown(body.Force)
	st := s.gw.Status()
	s.logControl(r, principal, "shutdown", "ok", "force", start.Force, "shutdown_id", start.ID, "state", st.State,
		"already_shutting_down", start.AlreadyShuttingDown)
	writeJSON(w, http.StatusAccepted, api.ShutdownResponse{OK: true, ShutdownID: start.ID, Force: start.Force, State: st.State,
		AlreadyShuttingDown: start.AlreadyShuttingDown})
}

func (s *Server) handleEvent(w http.ResponseWriter, r *http.Request, principal string) {
	var body api.EventBody
	if err := s.decode(w, r, &body, false); err != nil {
		s.writeError(w, r, err)
		return
	}
	if body.Session == "" || body.Text == "" {
		s.writeError(w, r, badRequest("session and text are required"))
		return
	}
	rec, err := s.gw.Event(r.Context(), body.Session, body.Text)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	s.logger.Info("event accepted", "principal", principal, "session", body.Session,
		"event_id", rec.ID, "spooled", rec.Spooled)
	writeJSON(w, http.StatusAccepted, rec)
}

// ReplayUnavailableText is the message of a 503 "spool_unavailable"
// answer to a replay.
const ReplayUnavailableText = "The rejected events were NOT replayed: the gateway cannot write its event spool or " +
	"rejected file right now (a full or read-only disk?). Nothing was moved; try again later."

// handleReplay moves the rejected internal events back into the spool.
func (s *Server) handleReplay(w http.ResponseWriter, r *http.Request, principal string) {
	var body api.ReplayBody
	if err := s.decode(w, r, &body, true); err != nil {
		s.logControl(r, principal, "replay", "bad_request")
		s.writeError(w, r, err)
		return
	}
	res, err := s.gw.ReplayEvents(r.Context())
	if err != nil {
		if errors.Is(err, gateway.ErrSpoolUnavailable) {
			err = &Error{Status: http.StatusServiceUnavailable, Code: api.CodeSpoolUnavailable, Message: ReplayUnavailableText, Err: err}
		}
		s.logControl(r, principal, "replay", errorFor(err).Code, "error", err)
		s.writeError(w, r, err)
		return
	}
	if res.EventIDs == nil {
		res.EventIDs = []string{}
	}
	s.logControl(r, principal, "replay", "ok", "moved", res.Moved, "event_ids", res.EventIDs, "unreplayable", res.Unreplayable)
	writeJSON(w, http.StatusOK, api.ReplayResponse{OK: true, ReplayResult: res})
}

// handleMessage runs a turn. The session is the {id} of
// MessagePathTemplate; the gateway checks it (gateway.ErrInvalid: a 400).
func (s *Server) handleMessage(w http.ResponseWriter, r *http.Request, _ string) {
	session := r.PathValue("id")
	var body api.MessageBody
	if err := s.decode(w, r, &body, false); err != nil {
		s.writeError(w, r, err)
		return
	}
	text := body.Text
	if text == "" {
		s.writeError(w, r, badRequest("text is required"))
		return
	}
	if wantsEventStream(r) {
		s.streamTurn(w, r, session, text)
		return
	}
	reply, err := s.gw.Turn(r.Context(), session, text)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, api.MessageResponse{Session: session, Reply: reply})
}

func (s *Server) handleHealthz(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, api.HealthResponse{OK: true})
}

// handleReadyz answers 200 only while the gateway is ready (Status.Ready:
// running, no drain being announced), so a load balancer stops routing to
// a draining gateway, and to one announcing a drain before its gate
// closes.
func (s *Server) handleReadyz(w http.ResponseWriter, r *http.Request) {
	st := s.gw.Status()
	body := api.ReadyResponse{OK: st.Ready, State: st.State, StateSince: st.StateSince,
		ActiveAgents: st.ActiveAgents, OldestTurnSeconds: st.OldestTurnSeconds, PID: st.PID, Seq: st.Seq,
		UptimeSeconds: st.UptimeSeconds}
	if !body.OK {
		body.Error, body.Message = api.CodeNotReady, notReadyMessage(st)
		w.Header().Set("Retry-After", strconv.Itoa(retryAfterSeconds(s.retryAfter)))
		writeJSON(w, http.StatusServiceUnavailable, body)
		return
	}
	writeJSON(w, http.StatusOK, body)
}

// notReadyMessage says why /readyz fails: a drain being announced (the
// gate still open, and when it closes), or the state.
func notReadyMessage(st api.Status) string {
	if st.State == fsm.Running && st.Drain != nil && !st.Drain.AnnounceUntil.IsZero() {
		return fmt.Sprintf("the gateway is announcing a drain: it still accepts turns, but closes its gate at %s",
			st.Drain.AnnounceUntil.Format(time.RFC3339Nano))
	}
	return fmt.Sprintf("the gateway is %s and not accepting new turns", st.State)
}
