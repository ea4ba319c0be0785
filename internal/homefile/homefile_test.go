package homefile_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/quiesce-dev/quiesce/internal/homefile"
)

// hostile lays out one non-regular file of each kind in dir and returns
// their paths by kind.
func hostile(t *testing.T, dir string) map[string]string {
	t.Helper()
	paths := map[string]string{
		"directory":        filepath.Join(dir, "adir"),
		"fifo":             filepath.Join(dir, "afifo"),
		"dangling symlink": filepath.Join(dir, "dangling"),
		"symlink to file":  filepath.Join(dir, "link"),
	}
	require.NoError(t, os.Mkdir(paths["directory"], 0o700))
	require.NoError(t, syscall.Mkfifo(paths["fifo"], 0o600))
	require.NoError(t, os.Symlink(filepath.Join(dir, "nowhere"), paths["dangling symlink"]))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "real"), []byte("x"), 0o600))
	require.NoError(t, os.Symlink(filepath.Join(dir, "real"), paths["symlink to file"]))
	return paths
}

func TestOpenRefusesNonRegularFilesWithoutBlocking(t *testing.T) {
	dir := t.TempDir()
	flags := map[string]int{
		"read":   os.O_RDONLY,
		"append": os.O_WRONLY | os.O_APPEND | os.O_CREATE,
		"rdwr":   os.O_RDWR | os.O_CREATE,
	}
	for kind, p := range hostile(t, dir) {
		for fname, flag := range flags {
			t.Run(kind+"/"+fname, func(t *testing.T) {
				err := openWithin(t, p, flag)
				require.Error(t, err)
				assert.True(t, errors.Is(err, homefile.ErrNotRegular), "err %v", err)
				assert.Contains(t, err.Error(), p, "the error names the file")
			})
		}
	}
}

func TestOpenRegularFileIsBlockingAgain(t *testing.T) {
	p := filepath.Join(t.TempDir(), "f")
	f, err := homefile.Open(p, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	require.NoError(t, err)
	defer f.Close()
	_, err = f.WriteString("hello\n")
	require.NoError(t, err)
	data, _, truncated, err := homefile.ReadFile(p, 3)
	require.NoError(t, err)
	assert.Equal(t, "hel", string(data))
	assert.True(t, truncated)
}

// TestReadFileLimit: a file of up to limit bytes is read whole; only a
// longer one is cut to limit and reported truncated (a marker, state or
// tokens file of exactly the limit is not refused as too large).
func TestReadFileLimit(t *testing.T) {
	const limit = 8
	for _, tc := range []struct {
		size      int
		truncated bool
	}{
		{0, false}, {limit - 1, false}, {limit, false}, {limit + 1, true}, {2 * limit, true},
	} {
		p := filepath.Join(t.TempDir(), "f")
		content := strings.Repeat("x", tc.size)
		require.NoError(t, os.WriteFile(p, []byte(content), 0o600))
		data, fi, truncated, err := homefile.ReadFile(p, limit)
		require.NoError(t, err, "size %d", tc.size)
		assert.Equal(t, tc.truncated, truncated, "size %d", tc.size)
		assert.Equal(t, content[:min(tc.size, limit)], string(data), "size %d", tc.size)
		assert.Equal(t, int64(tc.size), fi.Size(), "size %d", tc.size)
	}
}

func TestWriteAtomicReplacesAndSyncs(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "state.json")
	var synced []string
	homefile.SetSyncHook(func(path string) { synced = append(synced, path) })
	t.Cleanup(func() { homefile.SetSyncHook(nil) })
	require.NoError(t, homefile.WriteAtomic(p, []byte("one"), 0o600))
	require.NoError(t, homefile.WriteAtomic(p, []byte("two"), 0o644))
	data, err := os.ReadFile(p)
	require.NoError(t, err)
	assert.Equal(t, "two", string(data))
	fi, err := os.Stat(p)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o644), fi.Mode().Perm())
	require.Len(t, synced, 4, "each write fsyncs its temp file and the directory")
	assert.True(t, strings.HasPrefix(synced[0], p+homefile.TempInfix), "file fsync first: %v", synced)
	assert.Equal(t, dir, synced[1], "then the directory: %v", synced)
	entries, _ := os.ReadDir(dir)
	assert.Len(t, entries, 1, "no temp file left")
}

// TestWriteAtomicNoDirSyncSyncsOnlyTheFile: the content is fsynced before
// the rename (no torn or empty file even after a power loss); the
// directory is not.
func TestWriteAtomicNoDirSyncSyncsOnlyTheFile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "gateway_state.json")
	var synced []string
	homefile.SetSyncHook(func(path string) { synced = append(synced, path) })
	t.Cleanup(func() { homefile.SetSyncHook(nil) })
	require.NoError(t, homefile.WriteAtomicNoDirSync(p, []byte("one"), 0o600))
	data, err := os.ReadFile(p)
	require.NoError(t, err)
	assert.Equal(t, "one", string(data))
	require.Len(t, synced, 1, "one fsync: %v", synced)
	assert.True(t, strings.HasPrefix(synced[0], p+homefile.TempInfix), "of the temp file, before the rename: %v", synced)
	entries, _ := os.ReadDir(dir)
	assert.Len(t, entries, 1, "no temp file left")
}

func TestWriteAtomicLeavesNonRegularTargetsAlone(t *testing.T) {
	dir := t.TempDir()
	for kind, p := range hostile(t, dir) {
		t.Run(kind, func(t *testing.T) {
			err := homefile.WriteAtomic(p, []byte("x"), 0o600)
			assert.True(t, errors.Is(err, homefile.ErrNotRegular), "err %v", err)
		})
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		assert.NotContains(t, e.Name(), homefile.TempInfix)
	}
}

func TestRemoveTempsRemovesOnlyNamedTargets(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{"a.json.tmp-1", "a.json.tmp-2", "b.jsonl.tmp-3", "c.tmp-4", "a.json", "a.jsonx.tmp-5"} {
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), nil, 0o600))
	}
	assert.Equal(t, 3, homefile.RemoveTemps(dir, "a.json", "b.jsonl"))
	entries, _ := os.ReadDir(dir)
	var left []string
	for _, e := range entries {
		left = append(left, e.Name())
	}
	assert.ElementsMatch(t, []string{"a.json", "a.jsonx.tmp-5", "c.tmp-4"}, left)
}

// TestWriteAtomicRemovesItsTempFileWhenTheWriteFails: a write that fails
// half-way (here EFBIG, under a 16-byte file-size limit) leaves no temp
// file behind and the target untouched.
func TestWriteAtomicRemovesItsTempFileWhenTheWriteFails(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "state.json")
	require.NoError(t, os.WriteFile(p, []byte("old"), 0o600))
	var old syscall.Rlimit
	require.NoError(t, syscall.Getrlimit(syscall.RLIMIT_FSIZE, &old))
	require.NoError(t, syscall.Setrlimit(syscall.RLIMIT_FSIZE, &syscall.Rlimit{Cur: 16, Max: old.Max}))
	err := homefile.WriteAtomic(p, make([]byte, 4096), 0o600)
	require.NoError(t, syscall.Setrlimit(syscall.RLIMIT_FSIZE, &old))
	require.Error(t, err)
	entries, _ := os.ReadDir(dir)
	require.Len(t, entries, 1, "only the target: %v", entries)
	data, err := os.ReadFile(p)
	require.NoError(t, err)
	assert.Equal(t, "old", string(data))
}
