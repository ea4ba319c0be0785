package marker_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/quiesce-dev/quiesce/internal/homefile"
	"github.com/quiesce-dev/quiesce/marker"
)

// signalTimeout bounds every wait for a watcher signal. Waits end as soon
// as the signal arrives; the timeout only turns a hang into a failure.
const signalTimeout = 5 * time.Second

// startWatch starts a watcher and registers its shutdown (cancel, then wait
// for the channel to close) as a cleanup.
func startWatch(t *testing.T, home string, interval time.Duration, logger *slog.Logger) <-chan struct{} {
	t.Helper()
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ch := marker.Watch(ctx, home, interval, logger)
	t.Cleanup(func() {
		cancel()
		waitClosed(t, ch)
	})
	return ch
}

// waitClosed drains ch until it is closed.
func waitClosed(t *testing.T, ch <-chan struct{}) {
	t.Helper()
	timeout := time.After(signalTimeout)
	for {
		select {
		case _, ok := <-ch:
			if !ok {
				return
			}
		case <-timeout:
			require.FailNow(t, "watch channel not closed after cancel")
		}
	}
}

// expectSignal waits for one signal.
func expectSignal(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case _, ok := <-ch:
		require.True(t, ok, "channel closed while waiting for %s", what)
	case <-time.After(signalTimeout):
		require.FailNow(t, "no signal", "waiting for %s", what)
	}
}

// signalUntil waits for signals until cond holds after one of them (the
// caller re-reads the marker on each signal, as the gateway does).
func signalUntil(t *testing.T, ch <-chan struct{}, what string, cond func() bool) {
	t.Helper()
	deadline := time.After(signalTimeout)
	for {
		select {
		case _, ok := <-ch:
			require.True(t, ok, "channel closed while waiting for %s", what)
			if cond() {
				return
			}
		case <-deadline:
			require.FailNow(t, "no signal", "waiting for %s", what)
		}
	}
}

// readID returns the request id of the marker in home ("" when none).
func readID(home string) string {
	return marker.Read(home, time.Now(), "", 0).Request.RequestID
}

func TestWatchInitialSignal(t *testing.T) {
	ch := startWatch(t, t.TempDir(), time.Hour, nil)
	require.Equal(t, 1, cap(ch))
	expectSignal(t, ch, "the initial signal")
}

// TestWatchSignalsOtherProcess: with the poll an hour away, changes made by
// other processes (a Write, a Clear, a shell's mv over the marker) are
// signalled by fsnotify.
func TestWatchSignalsOtherProcess(t *testing.T) {
	home := t.TempDir()
	h := startHelper(t, home)
	ch := startWatch(t, home, time.Hour, nil)
	expectSignal(t, ch, "the initial signal")

	require.Equal(t, "ok <nil>", h.do(t, "write w1"))
	signalUntil(t, ch, "another process's write", func() bool { return readID(home) == "w1" })

	require.Equal(t, "ok true <nil>", h.do(t, "clear"))
	signalUntil(t, ch, "another process's removal", func() bool {
		return marker.Read(home, time.Now(), "", 0).Status == marker.Absent
	})

	require.Equal(t, "ok <nil>", h.do(t, "write w2"))
	signalUntil(t, ch, "another process's rewrite", func() bool { return readID(home) == "w2" })

	// A rename over the existing marker by a shell arrives as CREATE.
	script := `printf '%s' "$1" > "$2/staging.tmp" && mv "$2/staging.tmp" "$2/` + marker.FileName + `"`
	out, err := exec.Command("sh", "-c", script, "sh", markerJSON("action", q("drain"), "request_id", q("sh1")), home).CombinedOutput()
	require.NoError(t, err, string(out))
	signalUntil(t, ch, "mv over the marker", func() bool { return readID(home) == "sh1" })

	out, err = exec.Command("rm", marker.Path(home)).CombinedOutput()
	require.NoError(t, err, string(out))
	signalUntil(t, ch, "rm of the marker", func() bool {
		return marker.Read(home, time.Now(), "", 0).Status == marker.Absent
	})
}

// TestWatchIgnoresOtherNames: chmod of the marker and changes to other
// files (temp files, the lock, unrelated names) do not signal.
func TestWatchIgnoresOtherNames(t *testing.T) {
	home := t.TempDir()
	_, err := marker.Write(home, marker.Request{})
	require.NoError(t, err)
	ch := startWatch(t, home, time.Hour, nil)
	expectSignal(t, ch, "the initial signal")

	require.NoError(t, os.Chmod(marker.Path(home), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(home, marker.FileName+homefile.TempInfix+"x"), []byte("x"), 0o600))
	require.NoError(t, os.Remove(filepath.Join(home, marker.FileName+homefile.TempInfix+"x")))
	require.NoError(t, os.WriteFile(filepath.Join(home, "gateway_state.json"), []byte("{}"), 0o600))
	require.NoError(t, os.WriteFile(filepath.Join(home, marker.LockFileName), []byte(""), 0o600))
	select {
	case <-ch:
		require.FailNow(t, "signal for an ignored event")
	case <-time.After(300 * time.Millisecond): // no signal is the expected outcome
	}

	require.NoError(t, os.Chmod(marker.Path(home), 0o600))
	_, err = marker.Write(home, marker.Request{RequestID: "after"})
	require.NoError(t, err)
	signalUntil(t, ch, "a real write", func() bool { return readID(home) == "after" })
}

// TestWatchCoalescesBurst: 100 rapid writes while nobody reads the channel
// never block the writer and leave at most one signal pending; the reader
// then sees a small number of signals, not 100.
func TestWatchCoalescesBurst(t *testing.T) {
	home := t.TempDir()
	ch := startWatch(t, home, time.Hour, nil)
	expectSignal(t, ch, "the initial signal")

	for i := range 100 {
		_, err := marker.Write(home, marker.Request{RequestID: fmt.Sprintf("burst%03d", i)})
		require.NoError(t, err)
		require.LessOrEqual(t, len(ch), 1)
	}
	signals := 0
	signalUntil(t, ch, "the burst", func() bool { signals++; return readID(home) == "burst099" })
	// Count what else is still coming: stop after a quiet spell.
	for quiet := false; !quiet; {
		select {
		case <-ch:
			signals++
		case <-time.After(300 * time.Millisecond):
			quiet = true
		}
	}
	t.Logf("100 writes gave %d signals", signals)
	require.LessOrEqual(t, signals, 20, "signals coalesce")
}

// TestWatchClosesOnCancelNoLeak: cancelling the context closes the channel
// and leaves no goroutine behind, whether fsnotify ran, polling only, or the
// home did not exist.
func TestWatchClosesOnCancelNoLeak(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	logger := slog.New(slog.DiscardHandler)
	ctx, cancel := context.WithCancel(context.Background())
	home := t.TempDir()
	chans := []<-chan struct{}{
		marker.Watch(ctx, home, time.Hour, logger),
		marker.Watch(ctx, filepath.Join(home, "missing"), 5*time.Millisecond, logger),
		marker.WatchPollOnly(ctx, home, 5*time.Millisecond, logger),
	}
	_, err := marker.Write(home, marker.Request{})
	require.NoError(t, err)
	for _, ch := range chans {
		expectSignal(t, ch, "a signal")
	}
	cancel()
	for _, ch := range chans {
		waitClosed(t, ch)
	}

	// A context that is already done: the channel closes too.
	done, cancelDone := context.WithCancel(context.Background())
	cancelDone()
	waitClosed(t, marker.Watch(done, home, time.Hour, logger))
}

// TestWatchPollsWithoutNotify: when the home cannot be watched (it does not
// exist), signals still come from the poll, the failure is logged once, and
// the watch starts once the home appears.
func TestWatchPollsWithoutNotify(t *testing.T) {
	added := make(chan string, 16)
	t.Cleanup(marker.SetWatchAddedHook(func(dir string) {
		select {
		case added <- dir:
		default:
		}
	}))
	logger, logs := newLogger()
	home := filepath.Join(t.TempDir(), "home")
	ch := startWatch(t, home, 10*time.Millisecond, logger)
	for i := range 5 {
		expectSignal(t, ch, fmt.Sprintf("poll signal %d", i))
	}
	const warn = "marker: cannot watch home for changes; polling"
	require.Equal(t, 1, logs.countMsg(t, warn), "logged once, not per tick")

	require.NoError(t, os.Mkdir(home, 0o700))
	select {
	case dir := <-added:
		require.Equal(t, home, dir)
	case <-time.After(signalTimeout):
		require.FailNow(t, "home not watched after it appeared")
	}
	_, err := marker.Write(home, marker.Request{RequestID: "late"})
	require.NoError(t, err)
	signalUntil(t, ch, "a write after the home appeared", func() bool { return readID(home) == "late" })
	require.Equal(t, 1, logs.countMsg(t, warn))
	require.Equal(t, 1, logs.countMsg(t, "marker: watching home for changes again"))
}

// TestWatchReaddsRemovedHome: when the watched home is removed, the watcher
// signals, and re-watches the home once it exists again.
func TestWatchReaddsRemovedHome(t *testing.T) {
	added := make(chan string, 16)
	t.Cleanup(marker.SetWatchAddedHook(func(dir string) {
		select {
		case added <- dir:
		default:
		}
	}))
	home := filepath.Join(t.TempDir(), "home")
	require.NoError(t, os.Mkdir(home, 0o700))
	ch := startWatch(t, home, 20*time.Millisecond, nil)
	require.Len(t, added, 1, "watched before Watch returned")
	<-added

	_, err := marker.Write(home, marker.Request{RequestID: "r1"})
	require.NoError(t, err)
	signalUntil(t, ch, "the write", func() bool { return readID(home) == "r1" })

	require.NoError(t, os.RemoveAll(home))
	signalUntil(t, ch, "the removal", func() bool {
		return marker.Read(home, time.Now(), "", 0).Status == marker.Absent
	})
	require.NoError(t, os.Mkdir(home, 0o700))
	select {
	case <-added:
	case <-time.After(signalTimeout):
		require.FailNow(t, "home not re-watched")
	}
	_, err = marker.Write(home, marker.Request{RequestID: "r2"})
	require.NoError(t, err)
	signalUntil(t, ch, "a write in the re-created home", func() bool { return readID(home) == "r2" })
}

// TestWatchPollOnlyNeverWatches: WatchFunc with pollOnly never sets up a
// directory watch, and still signals a marker written by another writer
// within its interval.
func TestWatchPollOnlyNeverWatches(t *testing.T) {
	var added atomic.Int32
	t.Cleanup(marker.SetWatchAddedHook(func(string) { added.Add(1) }))
	home := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	ch := make(chan struct{}, 64)
	done := make(chan struct{})
	go func() {
		defer close(done)
		marker.WatchFunc(ctx, home, 10*time.Millisecond, slog.New(slog.DiscardHandler), true, func() { ch <- struct{}{} })
	}()
	defer func() {
		cancel()
		<-done
	}()
	expectSignal(t, ch, "initial")
	_, err := marker.Write(home, marker.Request{RequestID: "polled"})
	require.NoError(t, err)
	signalUntil(t, ch, "the poll sees the write", func() bool { return readID(home) == "polled" })
	require.Zero(t, added.Load(), "no fsnotify watch")
}

// TestWatchFuncCallsInItsOwnGoroutine: WatchFunc calls fn once the watch is
// in place, again for a marker written after that, and returns, its
// goroutine and watcher gone, once ctx is done.
func TestWatchFuncCallsInItsOwnGoroutine(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	home := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	calls := make(chan struct{}, 64)
	done := make(chan struct{})
	go func() {
		defer close(done)
		marker.WatchFunc(ctx, home, time.Hour, slog.New(slog.DiscardHandler), false, func() { calls <- struct{}{} })
	}()
	expectSignal(t, calls, "initial call")
	_, err := marker.Write(home, marker.Request{RequestID: "func"})
	require.NoError(t, err)
	expectSignal(t, calls, "a call for the write (the poll is an hour away)")
	cancel()
	select {
	case <-done:
	case <-time.After(signalTimeout):
		require.FailNow(t, "WatchFunc did not return after cancel")
	}
}
