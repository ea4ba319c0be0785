package marker_test

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/quiesce-dev/quiesce/marker"
)

// TestLockHeldElsewhereGivesUp: another process that holds the marker's
// lock and never lets go (a CLI stopped mid-write) makes Write, Clear and
// RemoveTemps give up with ErrBusy, nothing changed, instead of waiting
// for good (the gateway calls them under its control lock, which its
// shutdown needs too). Once the lock is free they work again.
func TestLockHeldElsewhereGivesUp(t *testing.T) {
	home := t.TempDir()
	_, err := marker.Write(home, marker.Request{Action: marker.ActionDrain, Principal: "first"})
	require.NoError(t, err)
	before, err := os.ReadFile(marker.Path(home))
	require.NoError(t, err)

	// flock locks belong to an open file description: this one conflicts
	// with the marker package's own, as another process's would.
	held, err := os.Open(filepath.Join(home, marker.LockFileName))
	require.NoError(t, err)
	defer held.Close()
	require.NoError(t, syscall.Flock(int(held.Fd()), syscall.LOCK_EX))

	ops := map[string]func() error{
		"write": func() error {
			_, err := marker.Write(home, marker.Request{Action: marker.ActionDrain, Principal: "second"})
			return err
		},
		"clear":        func() error { _, err := marker.Clear(home, ""); return err },
		"remove temps": func() error { _, err := marker.RemoveTemps(home); return err },
	}
	for name, op := range ops {
		done := make(chan error, 1)
		go func() { done <- op() }()
		select {
		case err := <-done:
			assert.Truef(t, errors.Is(err, marker.ErrBusy), "%s: %v", name, err)
			if err != nil {
				assert.Contains(t, err.Error(), marker.LockFileName, "%s: the error names the lock", name)
			}
		case <-time.After(10 * marker.LockWait):
			require.Failf(t, "waits for good", "%s still waits for a lock that is never released", name)
		}
	}
	after, err := os.ReadFile(marker.Path(home))
	require.NoError(t, err)
	assert.Equal(t, string(before), string(after), "nothing changed")

	require.NoError(t, syscall.Flock(int(held.Fd()), syscall.LOCK_UN))
	_, err = marker.Clear(home, "")
	require.NoError(t, err, "the lock is free again")
}
