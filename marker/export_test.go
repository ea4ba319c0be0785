package marker

import (
	"context"
	"log/slog"
	"time"
)

// WatchPollOnly is Watch without fsnotify (WatchFunc's pollOnly), for the
// tests and benchmarks that compare the two.
func WatchPollOnly(ctx context.Context, home string, interval time.Duration, logger *slog.Logger) <-chan struct{} {
	return watch(ctx, home, interval, logger, false)
}

// SetWatchAddedHook installs f to be called each time a watcher
// (re-)establishes its directory watch. Call it before Watch and restore
// (call the returned function) only after every watcher started meanwhile
// has closed its channel.
func SetWatchAddedHook(f func(dir string)) (restore func()) {
	old := testHookWatchAdded
	testHookWatchAdded = f
	return func() { testHookWatchAdded = old }
}

// ParseRequestedAt is the parser of requested_at.
func ParseRequestedAt(s string) (time.Time, bool) { return parseTime(s) }
