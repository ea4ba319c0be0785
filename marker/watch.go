package marker

import (
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/fsnotify/fsnotify"
)

// DefaultWatchInterval is the poll interval Watch uses when given an
// interval <= 0.
const DefaultWatchInterval = time.Second

// markerOps are the fsnotify operations on the marker's name that signal.
// An atomic replace arrives as Create of the target name; Chmod is ignored.
const markerOps = fsnotify.Create | fsnotify.Write | fsnotify.Remove | fsnotify.Rename

// testHookWatchAdded, when set (by tests, before Watch), is called from the
// watch goroutine each time the home directory watch is (re-)established.
var testHookWatchAdded func(dir string)

// Watch returns a channel that delivers a coalesced "reconcile now" signal
// for the drain marker in home. The channel has capacity 1 and the sender
// never blocks: signals that arrive while one is pending merge into it, so
// after receiving one the caller should Read the marker once.
//
// A signal is sent once immediately (already pending when Watch returns),
// on every fsnotify event on the marker's name in home (create, write,
// rename, remove; chmod and other names, such as the writer's temporary
// files, are ignored), and every interval as a poll fallback (interval <= 0
// means DefaultWatchInterval) for lost watches, queue overflows and file
// systems without notifications. The directory watch is in place before
// Watch returns, so a change made after Watch returns is signalled.
//
// If fsnotify cannot start or the home cannot be watched (it does not exist,
// say), Watch logs one WARN and keeps polling, retrying the watch on every
// tick; when the watched home is removed or moved away, it is re-watched
// once it exists again. logger nil means slog.Default().
//
// When ctx is done, Watch stops its goroutine, releases the fsnotify
// watcher and closes the channel. Between events and ticks it does no work.
func Watch(ctx context.Context, home string, interval time.Duration, logger *slog.Logger) <-chan struct{} {
	return watch(ctx, home, interval, logger, true)
}

// WatchFunc is Watch calling fn where Watch would signal, in the watch
// goroutine itself: once as soon as the directory watch is in place, then
// on every event on the marker's name and every tick, one call at a time
// (events that arrive during a call wait in the kernel's queue). It blocks
// until ctx is done and returns after the last call, with the fsnotify
// watcher released. Calling fn directly saves the wake-up of a second
// goroutine on every event and every tick.
//
// With pollOnly it never starts fsnotify: fn is called at the start and
// every interval only. That is for file systems whose change notifications
// cannot be trusted, such as a network mount written from another
// machine; the reaction is then bounded by interval.
func WatchFunc(ctx context.Context, home string, interval time.Duration, logger *slog.Logger, pollOnly bool, fn func()) {
	w := newWatcher(home, interval, logger, !pollOnly, fn)
	w.ensureWatch()
	fn()
	w.run(ctx)
}

// watcher is the state of one Watch goroutine; only that goroutine touches
// it after setup.
type watcher struct {
	dir      string // the cleaned home, as fsnotify names it in events
	interval time.Duration
	logger   *slog.Logger
	notify   bool   // use fsnotify (false: poll only)
	signal   func() // called for every event and tick

	fw     *fsnotify.Watcher // nil when fsnotify is not running
	added  bool              // whether dir is currently watched
	warned bool              // whether the "polling only" warning was logged since the watch last worked
}

// watch is Watch with fsnotify optional (notify false: poll only): a
// watcher whose signal queues on a channel of capacity 1 unless a signal
// is already pending.
func watch(ctx context.Context, home string, interval time.Duration, logger *slog.Logger, notify bool) <-chan struct{} {
	out := make(chan struct{}, 1)
	w := newWatcher(home, interval, logger, notify, func() {
		select {
		case out <- struct{}{}:
		default:
		}
	})
	w.ensureWatch()
	w.signal() // the initial reconcile
	go func() {
		defer close(out)
		w.run(ctx)
	}()
	return out
}

func newWatcher(home string, interval time.Duration, logger *slog.Logger, notify bool, signal func()) *watcher {
	if interval <= 0 {
		interval = DefaultWatchInterval
	}
	if logger == nil {
		logger = slog.Default()
	}
	return &watcher{dir: filepath.Clean(home), interval: interval, logger: logger, notify: notify, signal: signal}
}

// run is the watch loop; it returns once ctx is done.
func (w *watcher) run(ctx context.Context) {
	defer w.closeNotify()
	ticker := time.NewTicker(w.interval)
	defer ticker.Stop()

	for {
		var events <-chan fsnotify.Event
		var errs <-chan error
		if w.fw != nil {
			events, errs = w.fw.Events, w.fw.Errors
		}
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-events:
			if !ok {
				w.lost(errors.New("fsnotify event channel closed"))
				continue
			}
			w.handleEvent(ev)
		case err, ok := <-errs:
			if !ok {
				w.lost(errors.New("fsnotify error channel closed"))
				continue
			}
			w.handleError(err)
		case <-ticker.C:
			w.signal()
			if !w.added {
				w.ensureWatch()
			}
		}
	}
}

// handleEvent signals for events on the marker's name and notices the loss
// of the directory watch. It does not allocate.
func (w *watcher) handleEvent(ev fsnotify.Event) {
	if ev.Name == w.dir {
		// The home itself was removed or moved away: fsnotify has dropped
		// the watch. The marker went with it; re-watch on a later tick.
		if ev.Op&(fsnotify.Remove|fsnotify.Rename) != 0 {
			w.added = false
			w.signal()
		}
		return
	}
	if ev.Op&markerOps != 0 && filepath.Base(ev.Name) == FileName {
		w.signal()
	}
}

// handleError handles an error reported by fsnotify. An overflow means
// events were lost, so the marker is re-read.
func (w *watcher) handleError(err error) {
	w.signal()
	if errors.Is(err, fsnotify.ErrEventOverflow) {
		w.logger.Debug("marker: fsnotify queue overflow", slog.String("home", w.dir))
		return
	}
	w.logger.Warn("marker: fsnotify error", slog.String("home", w.dir), slog.Any("error", err))
}

// lost drops a failed fsnotify watcher; the next tick starts a new one.
func (w *watcher) lost(err error) {
	w.closeNotify()
	w.warnOnce(err)
	w.signal()
}

// ensureWatch starts fsnotify if needed and watches the home directory,
// logging the first failure since the watch last worked.
func (w *watcher) ensureWatch() {
	if !w.notify {
		return
	}
	if w.fw == nil {
		fw, err := fsnotify.NewWatcher()
		if err != nil {
			w.warnOnce(err)
			return
		}
		w.fw = fw
	}
	if err := w.fw.Add(w.dir); err != nil {
		w.warnOnce(err)
		return
	}
	w.added = true
	if w.warned {
		w.warned = false
		w.logger.Info("marker: watching home for changes again", slog.String("home", w.dir))
	}
	if hook := testHookWatchAdded; hook != nil {
		hook(w.dir)
	}
}

// warnOnce logs that changes are only polled, once until the watch works.
func (w *watcher) warnOnce(err error) {
	if w.warned {
		return
	}
	w.warned = true
	w.logger.Warn("marker: cannot watch home for changes; polling",
		slog.String("home", w.dir), slog.Duration("interval", w.interval), slog.Any("error", err))
}

// closeNotify stops fsnotify, waiting for its goroutine to end.
func (w *watcher) closeNotify() {
	if w.fw != nil {
		_ = w.fw.Close()
		w.fw = nil
	}
	w.added = false
}
