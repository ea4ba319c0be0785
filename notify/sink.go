package notify

import "context"

// Sink delivers one message somewhere. Send returns nil once the message is
// delivered. Implementations must honour ctx: when it is done, Send returns
// promptly with an error. A Notifier calls Send from one goroutine per sink,
// so a Sink used by a single Notifier need not be safe for concurrent use.
type Sink interface {
	Send(ctx context.Context, m Message) error
}

var (
	_ Sink = (*Log)(nil)
	_ Sink = (*Outbox)(nil)
	_ Sink = (*Webhook)(nil)
	_ Sink = (*Recorder)(nil)
)
