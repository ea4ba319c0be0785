package gateway

import (
	"os"
	"runtime"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/quiesce-dev/quiesce/notify"
)

// New starts the notifier's sink goroutines and opens the outbox; a
// Gateway that is Closed without having run its shutdown sequence leaks
// both (Close only closes the spool and the lock).
func TestCloseWithoutShutdownLeaksNoGoroutines(t *testing.T) {
	home, proc := t.TempDir(), t.TempDir()
	writeProcRoot(t, proc, "boot-a", 100)
	before := runtime.NumGoroutine()
	for range 20 {
		g, err := New(Config{Home: home, ProcRoot: proc, WatchInterval: -1, Logger: quietLogger(),
			Sinks: []notify.Sink{notify.NewLog(quietLogger())}})
		require.NoError(t, err)
		require.NoError(t, g.Close())
	}
	eventually(t, "the notifier goroutines of closed gateways gone", func() bool {
		return runtime.NumGoroutine()-before <= 2
	})
}

func TestCloseWithoutShutdownLeaksNoFDs(t *testing.T) {
	home, proc := t.TempDir(), t.TempDir()
	writeProcRoot(t, proc, "boot-a", 100)
	fds := func() int { e, _ := os.ReadDir("/proc/self/fd"); return len(e) }
	before := fds()
	for range 20 {
		g, err := New(Config{Home: home, ProcRoot: proc, WatchInterval: -1, Logger: quietLogger()})
		require.NoError(t, err)
		require.NoError(t, g.Close())
	}
	require.LessOrEqual(t, fds()-before, 1, "fds leaked by New+Close")
}
