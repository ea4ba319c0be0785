package homefile

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestLexists(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	require.NoError(t, os.WriteFile(file, nil, 0o600))
	dangling := filepath.Join(dir, "dangling")
	require.NoError(t, os.Symlink(filepath.Join(dir, "nowhere"), dangling))
	fifo := filepath.Join(dir, "fifo")
	require.NoError(t, syscall.Mkfifo(fifo, 0o600))
	long := filepath.Join(dir, strings.Repeat("d", 200), strings.Repeat("e", 200), strings.Repeat("f", 200))
	require.NoError(t, os.MkdirAll(long, 0o700))
	for _, tc := range []struct {
		name string
		path string
		want bool
	}{
		{"regular file", file, true},
		{"directory", dir, true},
		{"dangling symlink (not followed)", dangling, true},
		{"FIFO (never opened)", fifo, true},
		{"missing", filepath.Join(dir, "missing"), false},
		{"under a file (ENOTDIR)", filepath.Join(file, "x"), false},
		{"longer than the stack buffer", long, true},
		{"longer and missing", filepath.Join(long, "missing"), false},
		{"a NUL in the name", file + "\x00x", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Lexists(tc.path)
			if tc.name == "a NUL in the name" {
				require.Error(t, err, "os.Lstat refuses it")
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
		})
	}
}

// TestLexistsAllocatesNothing: the poll fallback's check of a missing
// marker costs no allocation.
func TestLexistsAllocatesNothing(t *testing.T) {
	missing := filepath.Join(t.TempDir(), ".drain_request.json")
	if ok, _, done := lexistsNoAlloc(missing); !done || ok {
		t.Skip("no allocation-free fstatat on this platform")
	}
	allocs := testing.AllocsPerRun(100, func() { _, _ = Lexists(missing) })
	require.Zero(t, allocs)
}
