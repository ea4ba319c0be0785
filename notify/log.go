package notify

import (
	"context"
	"fmt"
	"log/slog"
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
// returns an error wrapping ctx.Err() without logging when ctx is already done.
func (l *Log) Send(ctx context.Context, m Message) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("notify: log %s: %w", m.ID(), err)
	}
	l.logger.InfoContext(ctx, "notification", append(m.attrs(), "text", m.Text)...)
	return nil
}

// String returns "log", the sink's name in log lines.
func (l *Log) String() string { return "log" }
