package marker

import (
	"log/slog"
	"path/filepath"
	"testing"

	"github.com/fsnotify/fsnotify"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/quiesce-dev/quiesce/internal/homefile"
)

// TestHandleEventDoesNotAllocate: the per-event work of the watch loop
// (filtering and the non-blocking send) allocates nothing.
func TestHandleEventDoesNotAllocate(t *testing.T) {
	dir := t.TempDir()
	var signals int
	w := &watcher{dir: dir, logger: slog.New(slog.DiscardHandler), signal: func() { signals++ }, added: true}
	events := []fsnotify.Event{
		{Name: filepath.Join(dir, FileName), Op: fsnotify.Create},
		{Name: filepath.Join(dir, FileName), Op: fsnotify.Write},
		{Name: filepath.Join(dir, FileName), Op: fsnotify.Chmod},
		{Name: filepath.Join(dir, FileName+homefile.TempInfix+"0123456789abcdef"), Op: fsnotify.Create},
		{Name: filepath.Join(dir, "gateway_state.json"), Op: fsnotify.Rename},
	}
	allocs := testing.AllocsPerRun(1000, func() {
		for _, ev := range events {
			w.handleEvent(ev)
		}
	})
	require.Equalf(t, float64(0), allocs, "handleEvent allocates %v times per batch, want 0", allocs)
}

// TestHandleEventFilter: which events signal.
func TestHandleEventFilter(t *testing.T) {
	dir := t.TempDir()
	var signals int
	w := &watcher{dir: dir, logger: slog.New(slog.DiscardHandler), signal: func() { signals++ }, added: true}
	cases := []struct {
		ev     fsnotify.Event
		signal bool
	}{
		{fsnotify.Event{Name: filepath.Join(dir, FileName), Op: fsnotify.Create}, true},
		{fsnotify.Event{Name: filepath.Join(dir, FileName), Op: fsnotify.Write}, true},
		{fsnotify.Event{Name: filepath.Join(dir, FileName), Op: fsnotify.Remove}, true},
		{fsnotify.Event{Name: filepath.Join(dir, FileName), Op: fsnotify.Rename}, true},
		{fsnotify.Event{Name: filepath.Join(dir, FileName), Op: fsnotify.Chmod}, false},
		{fsnotify.Event{Name: filepath.Join(dir, FileName+homefile.TempInfix+"ab"), Op: fsnotify.Create}, false},
		{fsnotify.Event{Name: filepath.Join(dir, LockFileName), Op: fsnotify.Create}, false},
		{fsnotify.Event{Name: filepath.Join(dir, "x"+FileName), Op: fsnotify.Create}, false},
		{fsnotify.Event{Name: dir, Op: fsnotify.Chmod}, false},
		{fsnotify.Event{Name: dir, Op: fsnotify.Remove}, true},
	}
	for _, c := range cases {
		w.added, signals = true, 0
		w.handleEvent(c.ev)
		got := signals == 1
		assert.Equalf(t, c.signal, got, "%v: signal=%v, want %v", c.ev, got, c.signal)
		assert.Falsef(t, c.ev.Name == dir && c.ev.Has(fsnotify.Remove) && w.added, "%v: watch still marked as added", c.ev)
	}
}
