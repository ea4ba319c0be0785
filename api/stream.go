package api

// Server-sent events of a streamed turn (POST /v1/sessions/{id}/messages
// with Accept: text/event-stream): any number of "delta" events, then
// exactly one of "done", "failed" (its data an ErrorBody) or
// "interrupted".
const (
	EventDelta       = "delta"
	EventDone        = "done"
	EventFailed      = "failed"
	EventInterrupted = "interrupted"
)

// DeltaEvent is the data of a "delta" event: partial output.
type DeltaEvent struct {
	Text string `json:"text"`
}

// DoneEvent is the data of a "done" event: the whole reply.
type DoneEvent struct {
	Reply string `json:"reply"`
}

// InterruptedEvent is the data of an "interrupted" event: what the user
// is told when a forced shutdown cut the turn off.
type InterruptedEvent struct {
	Message string `json:"message"`
}
