package notify

import (
	"context"
	"log/slog"
)

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

// Log is a Sink that writes one INFO line per message to a slog.Logger. It is
// safe for concurrent use.
type Log struct {
	logger *slog.Logger
}

// NewLog returns a Log writing to logger, or to slog.Default() when logger is
// nil.
func NewLog(logger *slog.Logger) *Log {
	if logger == nil {
		logger = slog.Default()
	}
	return &Log{logger: logger}
}

// Send logs m at INFO with its id, kind, target, shutdown id and text. It
// returns ctx.Err() without logging when ctx is already done.
func (l *Log) Send(ctx context.Context, m Message) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	l.logger.InfoContext(ctx, "notification", append(m.attrs(), "text", m.Text)...)
	return nil
}

// String returns "log", the sink's name in log lines.
func (l *Log) String() string { return "log" }
