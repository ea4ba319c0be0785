package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/quiesce-dev/quiesce/api"
	"github.com/quiesce-dev/quiesce/fsm"
	"github.com/quiesce-dev/quiesce/gateway"
)

// RefusalText is the message of a 503 "draining" refusal.
const RefusalText = "The gateway is draining for maintenance and is not starting new turns right now. " +
	"Please resend your message shortly."

// InterruptedText is the message of a 503 "interrupted" answer.
const InterruptedText = "The gateway shut down and cut this turn off. Please resend your message shortly."

// SpoolUnavailableText is the message of a 503 "spool_unavailable" answer.
const SpoolUnavailableText = "The event was NOT accepted: the gateway cannot write its event spool right now. " +
	"Nothing was recorded; retry the event later."

// DrainCancelledText is the message of a 409 "drain_cancelled" answer.
const DrainCancelledText = "The drain was cancelled during its announce window: nothing was written, " +
	"the gateway never closed its gate and is ready again."

// ShuttingDownText is the message of a 409 "shutting_down" answer.
const ShuttingDownText = "The gateway is shutting down and the shutdown wins: nothing was changed."

// Error is an error with an HTTP status and a code, returned by the
// request decoders and mapped from gateway errors by errorFor. Message is
// shown to the client; Err, if set, is only logged.
type Error struct {
	Status  int
	Code    string
	Message string
	State   fsm.State
	// Persisted and RequestID are set for marker_unwritable (ErrorBody).
	Persisted *bool
	RequestID string
	Err       error
}

// Error implements error.
func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s: %s: %v", e.Code, e.Message, e.Err)
	}
	return e.Code + ": " + e.Message
}

// Unwrap returns the underlying error.
func (e *Error) Unwrap() error { return e.Err }

func errorf(status int, code, format string, args ...any) *Error {
	return &Error{Status: status, Code: code, Message: fmt.Sprintf(format, args...)}
}

func badRequest(format string, args ...any) *Error {
	return errorf(http.StatusBadRequest, api.CodeBadRequest, format, args...)
}

// errorFor maps an error from the gateway or a decoder to an *Error. An
// unknown error becomes a 500 whose message says nothing about it.
func errorFor(err error) *Error {
	var e *Error
	var refused *gateway.RefusedError
	var unwritable *gateway.UnwritableError
	switch {
	case errors.As(err, &e):
		return e
	case errors.As(err, &unwritable):
		persisted := false
		return &Error{Status: http.StatusServiceUnavailable, Code: api.CodeMarkerUnwritable, Message: unwritableMessage(unwritable),
			State: unwritable.Result.State, Persisted: &persisted, RequestID: unwritable.Result.Drain.RequestID, Err: err}
	case errors.As(err, &refused):
		return &Error{Status: http.StatusServiceUnavailable, Code: api.CodeDraining, Message: RefusalText, State: refused.State, Err: err}
	case errors.Is(err, gateway.ErrRefused):
		return &Error{Status: http.StatusServiceUnavailable, Code: api.CodeDraining, Message: RefusalText, Err: err}
	case errors.Is(err, gateway.ErrSessionBusy):
		return &Error{Status: http.StatusConflict, Code: api.CodeSessionBusy, Message: "this session already has a turn running; wait for its reply", Err: err}
	case errors.Is(err, gateway.ErrRequestMismatch):
		return &Error{Status: http.StatusConflict, Code: api.CodeConflict, Message: mismatchMessage(err), Err: err}
	case errors.Is(err, gateway.ErrDrainCancelled):
		return &Error{Status: http.StatusConflict, Code: api.CodeDrainCancelled, Message: DrainCancelledText, Err: err}
	case errors.Is(err, gateway.ErrShuttingDown):
		return &Error{Status: http.StatusConflict, Code: api.CodeShuttingDown, Message: ShuttingDownText, Err: err}
	case errors.Is(err, gateway.ErrMarkerUnusable):
		return &Error{Status: http.StatusConflict, Code: api.CodeMarkerUnusable, Message: markerMessage(err), Err: err}
	case errors.Is(err, gateway.ErrSpoolUnavailable):
		return &Error{Status: http.StatusServiceUnavailable, Code: api.CodeSpoolUnavailable, Message: SpoolUnavailableText, Err: err}
	case errors.Is(err, gateway.ErrInvalid):
		// The gateway's invalid-input messages name only the field at fault.
		return &Error{Status: http.StatusBadRequest, Code: api.CodeBadRequest, Message: err.Error(), Err: err}
	case errors.Is(err, gateway.ErrInterrupted):
		return &Error{Status: http.StatusServiceUnavailable, Code: api.CodeInterrupted, Message: InterruptedText, Err: err}
	case errors.Is(err, gateway.ErrAgent):
		return &Error{Status: http.StatusBadGateway, Code: api.CodeAgentFailed, Message: agentFailedMessage(err), Err: err}
	default:
		return &Error{Status: http.StatusInternalServerError, Code: api.CodeInternal, Message: "internal error", Err: err}
	}
}

// ActiveRequestIDer is implemented by a gateway.ErrRequestMismatch error
// that knows the request id of the active drain; the 409 then names it.
// ActiveRequestID returns "" when there is no active id to name.
type ActiveRequestIDer interface {
	error
	ActiveRequestID() string
}

// mismatchMessage is the message of a 409 "conflict": it names the active
// drain's request id when err carries one (ActiveRequestIDer).
func mismatchMessage(err error) string {
	if a, ok := errors.AsType[ActiveRequestIDer](err); ok {
		if id := a.ActiveRequestID(); id != "" {
			return fmt.Sprintf("request_id is not the active drain's (the active request_id is %q); nothing was changed", id)
		}
	}
	return "request_id is not the active drain's; nothing was changed"
}

// unwritableMessage is the message of a 503 "marker_unwritable": the
// marker's path, the cause, what the gateway did and what to do.
func unwritableMessage(e *gateway.UnwritableError) string {
	return fmt.Sprintf("The drain marker %s could not be written: %s. The gateway closed its gate anyway and is %s, "+
		"but this drain is held in memory only (persisted: false): a restart of the gateway forgets it. "+
		"Free space or make the home writable, then drain again with request_id %q to persist it, or cancel it.",
		e.Path, e.Cause(), e.Result.State, e.Result.Drain.RequestID)
}

// markerMessage is the message of a 409 "marker_unusable": what the
// gateway's error says about the marker path (the path and what is there,
// e.g. "/home/q/drain.json is a FIFO", from markerDetail) and what to do.
func markerMessage(err error) string {
	const todo = "Nothing was changed: quiesce only replaces or removes a regular file it can read. " +
		"Look at what is there, move it aside, and retry."
	if d := markerDetail(err); d != "" {
		return "The drain marker cannot be used: " + d + ". " + todo
	}
	return "The drain marker path holds something that is not a usable regular file. " + todo
}

// markerDetail returns the innermost description in err's tree: the text
// of the deepest error that wraps another, less the wrapped text when it
// starts with it ("<sentinel>: <path> is a FIFO" gives "<path> is a
// FIFO"). That is where the marker and homefile packages name the path
// and what is there, without the prefixes of the layers above. It returns
// "" when err wraps only sentinels, or when the description still starts
// with a package prefix ("marker: lock: ..."): that is not a path's
// description but an internal error, which is not echoed.
func markerDetail(err error) string {
	var best string
	bestDepth := -1
	var walk func(e error, depth int)
	walk = func(e error, depth int) {
		var children []error
		switch u := e.(type) {
		case interface{ Unwrap() error }:
			if c := u.Unwrap(); c != nil {
				children = []error{c}
			}
		case interface{ Unwrap() []error }:
			children = u.Unwrap()
		}
		if len(children) > 0 && depth > bestDepth {
			text := e.Error()
			for _, c := range children {
				text = strings.TrimPrefix(text, c.Error()+": ")
			}
			best, bestDepth = text, depth
		}
		for _, c := range children {
			walk(c, depth+1)
		}
	}
	walk(err, 0)
	if bestDepth == 0 || hasPackagePrefix(best) { // no inner detail, or an internal one
		return ""
	}
	return best
}

// hasPackagePrefix reports whether text starts like a Go error of a
// package: a lower-case word and a colon ("marker: ...").
func hasPackagePrefix(text string) bool {
	word, _, ok := strings.Cut(text, ": ")
	if !ok || word == "" {
		return false
	}
	for _, r := range word {
		if r < 'a' || r > 'z' {
			return false
		}
	}
	return true
}

// expected503 reports whether a 503 code is a lifecycle answer, not a
// fault worth an ERROR log line.
func expected503(code string) bool {
	return code == api.CodeDraining || code == api.CodeInterrupted || code == api.CodeNotReady
}

// writeError answers with the JSON body for err. 5xx errors other than
// the lifecycle's expected 503s are logged with the real error; 503s carry
// Retry-After.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	e := errorFor(err)
	if e.Status >= 500 && !expected503(e.Code) {
		s.logger.Error("request failed", "method", r.Method, "path", r.URL.Path, "status", e.Status, "error", err)
	}
	switch e.Status {
	case http.StatusServiceUnavailable:
		w.Header().Set("Retry-After", strconv.Itoa(retryAfterSeconds(s.retryAfter)))
	case http.StatusUnauthorized:
		w.Header().Set("WWW-Authenticate", `Bearer realm="quiesce"`)
	}
	writeJSON(w, e.Status, api.ErrorBody{Error: e.Code, Message: e.Message, State: e.State, Persisted: e.Persisted, RequestID: e.RequestID})
}

func retryAfterSeconds(d time.Duration) int {
	secs := int((d + time.Second - 1) / time.Second)
	return max(secs, 1)
}

// writeJSON writes v as the JSON body with the given status: the bytes of
// json.Marshal and a newline, encoded into a pooled buffer and written in
// one Write.
func writeJSON(w http.ResponseWriter, status int, v any) {
	jb := jsonBufs.Get().(*jsonBuf)
	defer jb.release()
	jb.write(w, status, v)
}

// write encodes v into jb and writes it to w with status.
func (jb *jsonBuf) write(w http.ResponseWriter, status int, v any) {
	body := internalErrorBody
	if err := jb.enc.Encode(v); err != nil {
		// Only our own response types reach here; they always marshal.
		slog.Error("server: marshal response", "error", err)
		status = http.StatusInternalServerError
	} else {
		body = jb.buf.Bytes()
	}
	writeBody(w, status, body)
}

// writeBody writes the JSON body with status, in one Write.
func writeBody(w http.ResponseWriter, status int, body []byte) {
	h := w.Header()
	// The header values are shared, never-modified slices: Set would
	// allocate one per call. Their capacity is their length, so an Add
	// copies instead of writing into them.
	h["Content-Type"] = contentTypeJSON
	h["X-Content-Type-Options"] = noSniff
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

var (
	internalErrorBody = []byte(`{"error":"internal","message":"internal error"}` + "\n")
	contentTypeJSON   = []string{"application/json"}
	noSniff           = []string{"nosniff"}
)

// jsonBuf is a reusable buffer with an Encoder writing into it.
// json.Encoder.Encode writes what json.Marshal returns and a newline, and
// only once v has been encoded whole.
type jsonBuf struct {
	buf bytes.Buffer
	enc *json.Encoder
}

// maxPooledJSON is the largest response buffer kept for reuse.
const maxPooledJSON = 64 << 10

var jsonBufs = sync.Pool{New: func() any {
	jb := &jsonBuf{}
	jb.enc = json.NewEncoder(&jb.buf)
	return jb
}}

func (jb *jsonBuf) release() {
	if jb.buf.Cap() > maxPooledJSON {
		return
	}
	jb.buf.Reset()
	jsonBufs.Put(jb)
}

// agentFailedMessage is the message of a 502 "agent_failed": it names the
// upstream's HTTP status when an http agent's upstream answered with an
// error, says so when it answered 200 with something that is not a reply,
// and that it timed out or did not answer otherwise; nothing else of the
// error is shown. docs/API.md lists every form (TestAgentFailedMessagesDocumented).
func agentFailedMessage(err error) string {
	const msg = "the agent failed to answer this turn"
	var ae *gateway.AgentError
	switch {
	case !errors.As(err, &ae) || !ae.Upstream:
		return msg
	case ae.Status == http.StatusOK:
		return msg + ": the upstream agent answered 200 OK with a body that is not a reply"
	case ae.Status != 0:
		return fmt.Sprintf("%s: the upstream agent answered %d %s", msg, ae.Status, http.StatusText(ae.Status))
	case ae.Timeout > 0:
		return fmt.Sprintf("%s: the upstream agent timed out after %v", msg, ae.Timeout)
	default:
		return msg + ": the upstream agent did not answer"
	}
}
