package api

import "github.com/quiesce-dev/quiesce/fsm"

// ErrorBody is the JSON body of every error response. State is set on
// 503 answers (the lifecycle state that refused the request). A 503
// marker_unwritable also carries persisted (false: the drain is held in
// memory only) and the request_id of that drain, to refresh or cancel it.
type ErrorBody struct {
	Error     string    `json:"error"`
	Message   string    `json:"message"`
	State     fsm.State `json:"state,omitempty"`
	Persisted *bool     `json:"persisted,omitempty"`
	RequestID string    `json:"request_id,omitempty"`
}

// Error codes: the "error" field of every error body. Each code has one
// HTTP status (see server.Error); the server maps each error to one.
const (
	CodeBadRequest       = "bad_request"        // 400
	CodeUnauthorized     = "unauthorized"       // 401
	CodeNotFound         = "not_found"          // 404
	CodeMethodNotAllowed = "method_not_allowed" // 405
	CodeConflict         = "conflict"           // 409: request id mismatch
	CodeSessionBusy      = "session_busy"       // 409: the session has a turn running
	CodeMarkerUnusable   = "marker_unusable"    // 409: the drain marker path is not a usable file
	CodeShuttingDown     = "shutting_down"      // 409: drain or cancel after the shutdown began
	CodeDrainCancelled   = "drain_cancelled"    // 409: a cancel ended the drain's announce window
	CodeTooLarge         = "too_large"          // 413: body over server.MaxBodyBytes
	CodeInternal         = "internal"           // 500: logged, never echoed
	CodeAgentFailed      = "agent_failed"       // 502: the agent failed the turn
	CodeDraining         = "draining"           // 503: the gate refused a new turn
	CodeInterrupted      = "interrupted"        // 503: a shutdown cut the turn off
	CodeNotReady         = "not_ready"          // 503: /readyz while not running
	CodeSpoolUnavailable = "spool_unavailable"  // 503: the event could not be spooled, not accepted
	CodeMarkerUnwritable = "marker_unwritable"  // 503: the drain marker could not be written; draining in memory only
)
