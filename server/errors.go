package server

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/quiesce-dev/quiesce/fsm"
	"github.com/quiesce-dev/quiesce/gateway"
)

// Error codes: the "error" field of every error body. Each code has one
// HTTP status (see Error).
const (
	CodeBadRequest       = "bad_request"        // 400
	CodeUnauthorized     = "unauthorized"       // 401
	CodeNotFound         = "not_found"          // 404
	CodeMethodNotAllowed = "method_not_allowed" // 405
	CodeConflict         = "conflict"           // 409: request id mismatch
	CodeSessionBusy      = "session_busy"       // 409: the session has a turn running
	CodeTooLarge         = "too_large"          // 413: body over MaxBodyBytes
	CodeInternal         = "internal"           // 500: logged, never echoed
	CodeAgentFailed      = "agent_failed"       // 502: the agent failed the turn
	CodeDraining         = "draining"           // 503: the gate refused a new turn
	CodeInterrupted      = "interrupted"        // 503: a shutdown cut the turn off
	CodeNotReady         = "not_ready"          // 503: /readyz while not running
)

// RefusalText is the message of a 503 "draining" refusal.
const RefusalText = "The gateway is draining for maintenance and is not starting new turns right now. " +
	"Please resend your message shortly."

// InterruptedText is the message of a 503 "interrupted" answer.
const InterruptedText = "The gateway shut down and cut this turn off. Please resend your message shortly."

// ErrorBody is the JSON body of every error response. State is set on
// 503 answers (the lifecycle state that refused the request).
type ErrorBody struct {
	Error   string    `json:"error"`
	Message string    `json:"message"`
	State   fsm.State `json:"state,omitempty"`
}

// Error is an error with an HTTP status and a code, returned by the
// request decoders and mapped from gateway errors by errorFor. Message is
// shown to the client; Err, if set, is only logged.
type Error struct {
	Status  int
	Code    string
	Message string
	State   fsm.State
	Err     error
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
	return errorf(http.StatusBadRequest, CodeBadRequest, format, args...)
}

// errorFor maps an error from the gateway or a decoder to an *Error. An
// unknown error becomes a 500 whose message says nothing about it.
func errorFor(err error) *Error {
	var e *Error
	var refused *gateway.RefusedError
	switch {
	case errors.As(err, &e):
		return e
	case errors.As(err, &refused):
		return &Error{Status: http.StatusServiceUnavailable, Code: CodeDraining, Message: RefusalText, State: refused.State, Err: err}
	case errors.Is(err, gateway.ErrRefused):
		return &Error{Status: http.StatusServiceUnavailable, Code: CodeDraining, Message: RefusalText, Err: err}
	case errors.Is(err, gateway.ErrSessionBusy):
		return &Error{Status: http.StatusConflict, Code: CodeSessionBusy, Message: "this session already has a turn running; wait for its reply", Err: err}
	case errors.Is(err, gateway.ErrRequestMismatch):
		return &Error{Status: http.StatusConflict, Code: CodeConflict, Message: "request_id is not the active drain's; nothing was changed", Err: err}
	case errors.Is(err, gateway.ErrInvalid):
		// The gateway's invalid-input messages name only the field at fault.
		return &Error{Status: http.StatusBadRequest, Code: CodeBadRequest, Message: err.Error(), Err: err}
	case errors.Is(err, gateway.ErrInterrupted):
		return &Error{Status: http.StatusServiceUnavailable, Code: CodeInterrupted, Message: InterruptedText, Err: err}
	case errors.Is(err, gateway.ErrAgent):
		return &Error{Status: http.StatusBadGateway, Code: CodeAgentFailed, Message: "the agent failed to answer this turn", Err: err}
	default:
		return &Error{Status: http.StatusInternalServerError, Code: CodeInternal, Message: "internal error", Err: err}
	}
}

// writeError answers with the JSON body for err. 5xx errors are logged
// with the real error; 503s carry Retry-After.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	e := errorFor(err)
	if e.Status >= 500 && e.Status != http.StatusServiceUnavailable {
		s.logger.Error("request failed", "method", r.Method, "path", r.URL.Path, "status", e.Status, "error", err)
	}
	switch e.Status {
	case http.StatusServiceUnavailable:
		w.Header().Set("Retry-After", strconv.Itoa(retryAfterSeconds(s.retryAfter)))
	case http.StatusUnauthorized:
		w.Header().Set("WWW-Authenticate", `Bearer realm="quiesce"`)
	}
	writeJSON(w, e.Status, ErrorBody{Error: e.Code, Message: e.Message, State: e.State})
}

func retryAfterSeconds(d time.Duration) int {
	secs := int((d + time.Second - 1) / time.Second)
	return max(secs, 1)
}

// writeJSON writes v as the JSON body with the given status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		// Only our own response types reach here; they always marshal.
		slog.Error("server: marshal response", "error", err)
		status = http.StatusInternalServerError
		body = []byte(`{"error":"internal","message":"internal error"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write(append(body, '\n'))
}
