package notify

import "context"

// Sink delivers one message somewhere. Send returns nil once the message is
// delivered. Implementations must honour ctx: when it is done, Send returns
// promptly with an error. A Notifier calls Send from one goroutine per sink,
// so a Sink used by a single Notifier need not be safe for concurrent use.
type Sink interface {
	Send(ctx context.Context, m Message) error
}

// ConcurrentSink is a Sink that may be called from several goroutines at
// once: up to Concurrency() messages in flight on it together. A
// Concurrency below 1 counts as 1, above 64 as 64.
type ConcurrentSink interface {
	Sink
	Concurrency() int
}

// maxLanes caps how many goroutines a ConcurrentSink gets.
const maxLanes = 64

var (
	_ Sink           = (*Log)(nil)
	_ Sink           = (*Outbox)(nil)
	_ ConcurrentSink = (*Webhook)(nil)
	_ Sink           = (*Recorder)(nil)
)
