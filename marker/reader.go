package marker

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// Reader reads the drain marker of one home with fixed settings and logs,
// once per distinct marker, why a marker is being ignored: "stale marker
// ignored" or "expired marker ignored" at WARN, with the home, request_id,
// the marker's epoch, the current epoch and the age (and the error, for an
// unusable marker that expired). A marker that is unusable (not a regular
// file, or unreadable) and so drains is logged once as "unusable marker
// drains" at WARN, with the home, the path and the error naming what is
// there; a regular file whose content cannot be understood, as
// "contentless marker drains". A marker is the same
// as long as its status, size, modification time and content are; a
// rewritten or touched marker is a new one.
//
// A Reader is safe for concurrent use and must not be copied after first
// use. The zero value reads home "" (the current directory); usually the
// fields are set once in a composite literal, and Home must not change
// after the first Read. Each Reader remembers only
// its own log state, so two Readers for two homes each log.
type Reader struct {
	// Home is the directory holding the marker.
	Home string
	// Epoch is this instance's epoch ("" disables the staleness check).
	Epoch string
	// MaxAge is the maximum age honoured; <= 0 means DefaultMaxAge.
	MaxAge time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Logger receives the warnings; nil means slog.Default().
	Logger *slog.Logger

	pathOnce sync.Once
	path     string // Path(Home), joined once

	mu     sync.Mutex
	last   fileKey // the marker version logged last
	logged bool    // whether last is set
}

// Read reads the marker as the package-level Read does, logging a stale,
// expired or unusable marker the first time this Reader sees it.
func (r *Reader) Read() State {
	now := time.Now
	if r.Now != nil {
		now = r.Now
	}
	r.pathOnce.Do(func() { r.path = Path(r.Home) })
	st, key, problem := read(r.path, now(), r.Epoch, r.MaxAge)
	if st.Status != Stale && st.Status != Expired && st.Status != Contentless && problem == nil {
		return st
	}

	r.mu.Lock()
	first := !r.logged || r.last != key
	r.last, r.logged = key, true
	r.mu.Unlock()
	if !first {
		return st
	}

	logger := r.Logger
	if logger == nil {
		logger = slog.Default()
	}
	maxAge := r.MaxAge
	if maxAge <= 0 {
		maxAge = DefaultMaxAge
	}
	if st.Status == Contentless && problem == nil {
		logger.Warn("contentless marker drains (fail safe); it never suppresses the broadcast",
			slog.String("home", r.Home),
			slog.String("path", Path(r.Home)),
			slog.Duration("age", st.Age),
			slog.Duration("max_age", maxAge),
		)
		return st
	}
	if st.Status == Contentless {
		logger.Warn("unusable marker drains",
			slog.String("home", r.Home),
			slog.String("path", Path(r.Home)),
			slog.Any("error", problem),
			slog.Duration("age", st.Age),
			slog.Duration("max_age", maxAge),
		)
		return st
	}
	msg := "stale marker ignored"
	if st.Status == Expired {
		msg = "expired marker ignored"
	}
	attrs := []slog.Attr{
		slog.String("home", r.Home),
		slog.String("request_id", st.Request.RequestID),
		slog.String("epoch", st.Request.Epoch),
		slog.String("current_epoch", r.Epoch),
		slog.Duration("age", st.Age),
		slog.Bool("age_from_mtime", st.AgeFromMtime),
		slog.Duration("max_age", maxAge),
	}
	if problem != nil {
		attrs = append(attrs, slog.Any("error", problem))
	}
	logger.LogAttrs(context.Background(), slog.LevelWarn, msg, attrs...)
	return st
}
