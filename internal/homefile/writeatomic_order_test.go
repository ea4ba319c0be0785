package homefile_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/quiesce-dev/quiesce/internal/homefile"
)

// TestWriteAtomicSyncsBeforeRename: the temp file is fsynced while it is
// still the temp file, before the rename makes it the target. Renamed
// first, a power loss between the rename and the fsync can leave an empty
// or partial target where the old content was.
func TestWriteAtomicSyncsBeforeRename(t *testing.T) {
	for _, tc := range []struct {
		name  string
		write func(string, []byte, os.FileMode) error
	}{
		{"WriteAtomic", homefile.WriteAtomic},
		{"WriteAtomicNoDirSync", homefile.WriteAtomicNoDirSync},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			p := filepath.Join(dir, "state.json")
			require.NoError(t, os.WriteFile(p, []byte("old"), 0o600))
			var fileSyncs int
			homefile.SetSyncHook(func(path string) {
				if !strings.HasPrefix(path, p+homefile.TempInfix) {
					return
				}
				fileSyncs++
				_, err := os.Lstat(path)
				assert.NoError(t, err, "the temp file is fsynced before it is renamed")
				data, err := os.ReadFile(p)
				assert.NoError(t, err)
				assert.Equal(t, "old", string(data), "the target still holds the old content at the fsync")
			})
			t.Cleanup(func() { homefile.SetSyncHook(nil) })
			require.NoError(t, tc.write(p, []byte("new"), 0o600))
			require.Equal(t, 1, fileSyncs, "one fsync of the content")
			data, err := os.ReadFile(p)
			require.NoError(t, err)
			require.Equal(t, "new", string(data))
		})
	}
}
