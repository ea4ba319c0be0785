package homefile_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/quiesce-dev/quiesce/internal/homefile"
)

// TestIsNotExist: a path that cannot exist because a component of it is a
// regular file (ENOTDIR: a home given as a file's path) does not exist,
// like a missing file (ENOENT); other errors are not "does not exist".
func TestIsNotExist(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	require.NoError(t, os.WriteFile(file, []byte("x"), 0o600))
	under := filepath.Join(file, ".drain_request.json")

	_, err := os.Lstat(under)
	assert.True(t, homefile.IsNotExist(err), "lstat under a file: %v", err)
	_, _, _, err = homefile.ReadFile(under, 10)
	assert.True(t, homefile.IsNotExist(err), "ReadFile under a file: %v", err)
	_, err = homefile.Open(under, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	assert.True(t, homefile.IsNotExist(err), "Open for append under a file: %v", err)
	_, err = homefile.Open(filepath.Join(dir, "missing"), os.O_RDONLY, 0)
	assert.True(t, homefile.IsNotExist(err), "missing: %v", err)

	require.NoError(t, os.Mkdir(filepath.Join(dir, "adir"), 0o700))
	_, err = homefile.Open(filepath.Join(dir, "adir"), os.O_RDONLY, 0)
	assert.False(t, homefile.IsNotExist(err), "a directory exists: %v", err)
	assert.False(t, homefile.IsNotExist(nil))
}
