package notify

import "context"

// Sink delivers one message somewhere. Send returns nil once the message is
// delivered. Implementations must honour ctx: when it is done, Send returns
// promptly with an error. A Notifier calls Send from one goroutine per sink
// (from up to Concurrency() goroutines for a ConcurrentSink), so a plain
// Sink used by a single Notifier need not be safe for concurrent use.
type Sink interface {
	Send(ctx context.Context, m Message) error
}

// ConcurrentSink is a Sink that a Notifier may call from several goroutines
// at once: up to Concurrency() messages are in flight on it together, so one
// slow message does not hold back the next. Such a sink may receive messages
// out of order. A Concurrency below 1 counts as 1, above 64 as 64.
type ConcurrentSink interface {
	Sink
	Concurrency() int
}

// maxLanes caps how many goroutines a ConcurrentSink gets.
const maxLanes = 64

// Keeper is a Sink that keeps what it could not deliver, for a later try. A
// Notifier calls Keep with every message the sink failed to deliver, or that
// was still queued or in flight for it when a Flush or Close deadline
// passed, before it reports the message as resolved; Keep must not block for
// long (a file append is fine). Keep is called from the Notifier's
// goroutines and must be safe for concurrent use.
type Keeper interface {
	Sink
	Keep(msgs []Message) error
}

var (
	_ Sink           = (*Log)(nil)
	_ Sink           = (*Outbox)(nil)
	_ ConcurrentSink = (*Webhook)(nil)
	_ Keeper         = (*Webhook)(nil)
	_ Sink           = (*Recorder)(nil)
)
