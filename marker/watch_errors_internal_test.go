package marker

import (
	"errors"
	"fmt"
	"log/slog"
	"testing"

	"github.com/fsnotify/fsnotify"
	"github.com/stretchr/testify/assert"
)

// TestHandleErrorSignals: every error fsnotify reports makes the caller
// read the marker again: a queue overflow means events were lost, and any
// other error may have cost one.
func TestHandleErrorSignals(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
	}{
		{"queue overflow", fsnotify.ErrEventOverflow},
		{"wrapped queue overflow", fmt.Errorf("inotify: %w", fsnotify.ErrEventOverflow)},
		{"other error", errors.New("inotify read: input/output error")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var signals int
			w := &watcher{dir: t.TempDir(), logger: slog.New(slog.DiscardHandler), signal: func() { signals++ }, added: true}
			w.handleError(tc.err)
			assert.Equal(t, 1, signals, "one signal per error")
		})
	}
}
