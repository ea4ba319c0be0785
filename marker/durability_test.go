package marker_test

import (
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/quiesce-dev/quiesce/internal/homefile"
	"github.com/quiesce-dev/quiesce/marker"
)

// syncRecorder records the paths homefile fsyncs while a test runs.
func syncRecorder(t *testing.T) func() []string {
	var mu sync.Mutex
	var synced []string
	homefile.SetSyncHook(func(p string) {
		mu.Lock()
		synced = append(synced, p)
		mu.Unlock()
	})
	t.Cleanup(func() { homefile.SetSyncHook(nil) })
	return func() []string {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(synced)
	}
}

// TestWriteAndClearAreDurable: Write fsyncs the new marker and then the
// home directory (the rename), and Clear fsyncs the home directory after
// the removal, so neither can be undone by a crash after it returned.
func TestWriteAndClearAreDurable(t *testing.T) {
	home := t.TempDir()
	synced := syncRecorder(t)
	_, err := marker.Write(home, marker.Request{Principal: "ops"})
	require.NoError(t, err)
	got := synced()
	require.Len(t, got, 2, "file then directory: %v", got)
	assert.True(t, strings.HasPrefix(got[0], filepath.Join(home, marker.FileName)+homefile.TempInfix), "the marker's temp file first: %v", got)
	assert.Equal(t, home, got[1], "then the home directory: %v", got)

	existed, err := marker.Clear(home, "")
	require.NoError(t, err)
	require.True(t, existed)
	got = synced()[2:]
	assert.Equal(t, []string{home}, got, "the removal is made durable")
}
