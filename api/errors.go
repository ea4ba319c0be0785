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
