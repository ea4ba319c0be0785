package server

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"

	"github.com/quiesce-dev/quiesce/api"
	"github.com/quiesce-dev/quiesce/gateway"
)

// wantsEventStream reports whether the client asked for server-sent events.
func wantsEventStream(r *http.Request) bool {
	return strings.Contains(headerValue(r.Header, "Accept"), "text/event-stream")
}

// streamTurn runs a turn and answers it as server-sent events. The gate
// and session rules are those of a JSON turn: a refusal or a busy
// session is answered as the usual JSON error before any stream starts;
// the stream starts once the turn has been accepted, and every event is
// flushed as it is written. A client that goes away cancels the turn
// (its request context) and frees the session.
func (s *Server) streamTurn(w http.ResponseWriter, r *http.Request, session, text string) {
	rc := http.NewResponseController(w)
	started := false
	reply, err := s.gw.Stream(r.Context(), gateway.TurnRequest{
		Session: session,
		Text:    text,
		Started: func() {
			h := w.Header()
			h.Set("Content-Type", "text/event-stream")
			h.Set("Cache-Control", "no-store")
			h.Set("X-Accel-Buffering", "no") // proxies: do not buffer the stream
			w.WriteHeader(http.StatusOK)
			_ = rc.Flush()
			started = true
		},
		Delta: func(t string) {
			writeEvent(w, api.EventDelta, api.DeltaEvent{Text: t})
			_ = rc.Flush()
		},
	})
	if !started {
		s.writeError(w, r, err)
		return
	}
	switch {
	case err == nil:
		writeEvent(w, api.EventDone, api.DoneEvent{Reply: reply})
	case errors.Is(err, gateway.ErrInterrupted):
		writeEvent(w, api.EventInterrupted, api.InterruptedEvent{Message: gateway.InterruptMessage(session)})
	default:
		e := errorFor(err)
		if e.Status >= 500 {
			s.logger.Warn("streamed turn failed", "session", session, "error", err)
		}
		writeEvent(w, api.EventFailed, api.ErrorBody{Error: e.Code, Message: e.Message})
	}
	_ = rc.Flush()
}

// writeEvent writes one server-sent event whose data is v as JSON (one
// line: JSON escapes newlines).
func writeEvent(w http.ResponseWriter, event string, v any) {
	data, _ := json.Marshal(v) // our own event types always marshal
	_, _ = w.Write([]byte("event: " + event + "\ndata: " + string(data) + "\n\n"))
}
