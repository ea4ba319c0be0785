package marker

import "time"

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
