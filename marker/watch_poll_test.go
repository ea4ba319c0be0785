package marker_test

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/quiesce-dev/quiesce/marker"
)

// TestWatchPollsWhileWatching: the poll fallback signals every interval
// even while the directory watch works, because a working watch can still
// miss a change (a queue overflow, a network file system written from
// another machine). With nothing changing in the home, signals keep
// coming.
func TestWatchPollsWhileWatching(t *testing.T) {
	added := make(chan string, 16)
	t.Cleanup(marker.SetWatchAddedHook(func(dir string) {
		select {
		case added <- dir:
		default:
		}
	}))
	home := filepath.Join(t.TempDir(), "home")
	require.NoError(t, os.Mkdir(home, 0o700))
	ch := startWatch(t, home, 10*time.Millisecond, nil)
	select {
	case dir := <-added:
		require.Equal(t, home, dir, "the home is watched")
	case <-time.After(signalTimeout):
		require.FailNow(t, "home not watched")
	}
	expectSignal(t, ch, "the initial signal")
	for i := range 3 {
		expectSignal(t, ch, fmt.Sprintf("poll signal %d with the watch in place and nothing changed", i))
	}
}
