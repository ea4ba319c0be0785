package gateway

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/quiesce-dev/quiesce/marker"
)

// TestSecondGatewayOnHomeRefused: one home, one gateway (I9): New on a
// home a live gateway holds fails with ErrLocked naming its pid, and
// changes nothing; after Close the home can be taken again.
func TestSecondGatewayOnHomeRefused(t *testing.T) {
	f := newFixture(t, nil)
	_, err := f.g.Event(t.Context(), "s", "acknowledged")
	require.NoError(t, err)
	before, err := os.ReadFile(filepath.Join(f.home, SpoolFileName))
	require.NoError(t, err)

	_, err = New(Config{Home: f.home, ProcRoot: f.procRoot, Logger: quietLogger()})
	require.ErrorIs(t, err, ErrLocked)
	assert.Contains(t, err.Error(), "pid "+strconv.Itoa(os.Getpid()))
	after, err := os.ReadFile(filepath.Join(f.home, SpoolFileName))
	require.NoError(t, err)
	assert.Equal(t, string(before), string(after), "the refused gateway erased nothing")

	live, pid, err := HomeLive(f.home)
	require.NoError(t, err)
	assert.True(t, live)
	assert.Equal(t, strconv.Itoa(os.Getpid()), pid)

	_, err = f.g.Shutdown(t.Context(), true)
	require.NoError(t, err)
	require.NoError(t, f.g.Close())
	live, _, err = HomeLive(f.home)
	require.NoError(t, err)
	assert.False(t, live, "a closed gateway's home is not live")
	g2, err := New(Config{Home: f.home, ProcRoot: f.procRoot, Logger: quietLogger()})
	require.NoError(t, err)
	require.NoError(t, g2.Close())
}

// TestRemovedLockFileDoesNotLetASecondGatewayIn: an operator "cleaning
// up" gateway.lock of a live gateway must not open the home to another.
func TestRemovedLockFileDoesNotLetASecondGatewayIn(t *testing.T) {
	f := newFixture(t, nil)
	require.NoError(t, os.Remove(filepath.Join(f.home, LockFileName)))
	_, err := New(Config{Home: f.home, ProcRoot: f.procRoot, Logger: quietLogger()})
	require.ErrorIs(t, err, ErrLocked)
	live, _, err := HomeLive(f.home)
	require.NoError(t, err)
	assert.True(t, live)
}

// TestLockProbeNeverFailsAStartingGateway: a client probing the lock (as
// local status does) while a gateway starts only delays the start.
func TestLockProbeNeverFailsAStartingGateway(t *testing.T) {
	home := t.TempDir()
	f, err := os.Open(home)
	require.NoError(t, err)
	require.NoError(t, syscall.Flock(int(f.Fd()), syscall.LOCK_SH)) // a probe in progress
	go func() {
		time.Sleep(100 * time.Millisecond)
		_ = f.Close() // the probe ends
	}()
	g, err := New(Config{Home: home, ProcRoot: t.TempDir(), Logger: quietLogger()})
	require.NoError(t, err, "the start retried the lock")
	require.NoError(t, g.Close())
}

// TestHostileHomeFilesRefused: a FIFO, directory or dangling symlink where
// a file of the home belongs makes New fail at once with ErrHome naming it.
func TestHostileHomeFilesRefused(t *testing.T) {
	kinds := map[string]func(path string) error{
		"fifo":     func(p string) error { return syscall.Mkfifo(p, 0o600) },
		"dir":      func(p string) error { return os.Mkdir(p, 0o700) },
		"dangling": func(p string) error { return os.Symlink(p+".nowhere", p) },
	}
	for _, file := range []string{OutboxFileName, SpoolFileName, RejectedFileName, StateFileName, LockFileName} {
		for kind, mk := range kinds {
			t.Run(file+"/"+kind, func(t *testing.T) {
				home := t.TempDir()
				path := filepath.Join(home, file)
				require.NoError(t, mk(path))
				done := make(chan error, 1)
				go func() {
					g, err := New(Config{Home: home, ProcRoot: t.TempDir(), Logger: quietLogger()})
					if err == nil {
						_ = g.Close()
					}
					done <- err
				}()
				select {
				case err := <-done:
					require.Error(t, err)
					assert.True(t, errors.Is(err, ErrHome), "err %v", err)
					assert.Contains(t, err.Error(), path)
				case <-time.After(10 * time.Second):
					require.Fail(t, "New blocked on a hostile file")
				}
			})
		}
	}
}

// TestTempFilesRemovedAtStart: leftovers of killed writers are removed.
func TestTempFilesRemovedAtStart(t *testing.T) {
	home := t.TempDir()
	for _, name := range []string{StateFileName + ".tmp-1", SpoolFileName + ".tmp-2", "unrelated.tmp-3", marker.FileName + ".tmp-4"} {
		require.NoError(t, os.WriteFile(filepath.Join(home, name), nil, 0o600))
	}
	g, err := New(Config{Home: home, ProcRoot: t.TempDir(), Logger: quietLogger()})
	require.NoError(t, err)
	defer g.Close()
	assert.NoFileExists(t, filepath.Join(home, StateFileName+".tmp-1"))
	assert.NoFileExists(t, filepath.Join(home, SpoolFileName+".tmp-2"))
	assert.NoFileExists(t, filepath.Join(home, marker.FileName+".tmp-4"), "the marker's too, under its lock")
	assert.FileExists(t, filepath.Join(home, "unrelated.tmp-3"), "only the home's own temp files")
}
