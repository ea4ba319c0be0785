package server_test

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/quiesce-dev/quiesce/server"
)

// writeTokens writes content to a tokens file with the given mode.
func writeTokens(tb testing.TB, content string, mode os.FileMode) string {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), "tokens")
	require.NoError(tb, os.WriteFile(path, []byte(content), mode))
	require.NoError(tb, os.Chmod(path, mode)) // umask-proof
	return path
}

func TestLoadTokens(t *testing.T) {
	path := writeTokens(t, "# ops team\n\nops  ops-token-0123456789\n  # indented comment\nci\tci-token-0123456789abc\n", 0o600)
	tokens, err := server.LoadTokens(path)
	require.NoError(t, err)
	assert.Equal(t, 2, tokens.Len())
	for token, want := range map[string]string{"ops-token-0123456789": "ops", "ci-token-0123456789abc": "ci"} {
		got, ok := tokens.Lookup(token)
		assert.True(t, ok)
		assert.Equal(t, want, got)
	}
	for _, bad := range []string{"", "ops", "ops-token-012345678", "ops-token-01234567890", "OPS-TOKEN-0123456789"} {
		_, ok := tokens.Lookup(bad)
		assert.Falsef(t, ok, "token %q", bad)
	}
}

func TestLoadTokensPermissions(t *testing.T) {
	for _, mode := range []os.FileMode{0o644, 0o640, 0o604, 0o660, 0o606, 0o610} {
		t.Run(fmt.Sprintf("mode%04o", mode), func(t *testing.T) {
			path := writeTokens(t, "ops ops-token-0123456789\n", mode)
			_, err := server.LoadTokens(path)
			require.Error(t, err)
			assert.ErrorIs(t, err, server.ErrTokens)
			assert.Contains(t, err.Error(), path)
			assert.Contains(t, err.Error(), fmt.Sprintf("%04o", mode))
		})
	}
	for _, mode := range []os.FileMode{0o600, 0o400} {
		t.Run(fmt.Sprintf("mode%04o", mode), func(t *testing.T) {
			_, err := server.LoadTokens(writeTokens(t, "ops ops-token-0123456789\n", mode))
			assert.NoError(t, err)
		})
	}
}

func TestLoadTokensMalformed(t *testing.T) {
	tests := []struct {
		name, content string
		line          int
	}{
		{"OneField", "ops ops-token-0123456789\nlonely\n", 2},
		{"ThreeFields", "# c\n\nops ops-token-0123456789 extra\n", 3},
		{"ShortToken", "ops short\n", 1},
		{"Duplicate", "a same-token-0123456789\nb same-token-0123456789\n", 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := writeTokens(t, tt.content, 0o600)
			_, err := server.LoadTokens(path)
			require.Error(t, err)
			assert.ErrorIs(t, err, server.ErrTokens)
			assert.Contains(t, err.Error(), fmt.Sprintf("%s:%d:", path, tt.line))
		})
	}
	t.Run("NoTokens", func(t *testing.T) {
		path := writeTokens(t, "# nothing yet\n", 0o600)
		_, err := server.LoadTokens(path)
		assert.ErrorIs(t, err, server.ErrTokens)
	})
	t.Run("Missing", func(t *testing.T) {
		_, err := server.LoadTokens(filepath.Join(t.TempDir(), "tokens"))
		assert.ErrorIs(t, err, fs.ErrNotExist)
	})
	t.Run("Directory", func(t *testing.T) {
		dir := t.TempDir()
		require.NoError(t, os.Chmod(dir, 0o700))
		_, err := server.LoadTokens(dir)
		assert.ErrorIs(t, err, server.ErrTokens)
	})
}

func TestEnsureDevToken(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tokens")
	token, created, err := server.EnsureDevToken(path)
	require.NoError(t, err)
	assert.True(t, created)
	assert.GreaterOrEqual(t, len(token), server.MinTokenLength)
	fi, err := os.Stat(path)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), fi.Mode().Perm())

	tokens, err := server.LoadTokens(path)
	require.NoError(t, err)
	p, ok := tokens.Lookup(token)
	assert.True(t, ok)
	assert.Equal(t, server.DevPrincipal, p)

	again, created, err := server.EnsureDevToken(path)
	require.NoError(t, err)
	assert.False(t, created, "an existing file is kept")
	assert.Equal(t, token, again)

	t.Run("TooOpenIsNotReplaced", func(t *testing.T) {
		path := writeTokens(t, "ops ops-token-0123456789\n", 0o644)
		_, _, err := server.EnsureDevToken(path)
		assert.ErrorIs(t, err, server.ErrTokens)
		data, _ := os.ReadFile(path)
		assert.Equal(t, "ops ops-token-0123456789\n", string(data))
	})
	t.Run("Unique", func(t *testing.T) {
		other, _, err := server.EnsureDevToken(filepath.Join(t.TempDir(), "tokens"))
		require.NoError(t, err)
		assert.NotEqual(t, token, other)
	})
}

func TestReadClientToken(t *testing.T) {
	for name, content := range map[string]string{
		"Bare":       "\n# mine\nops-token-0123456789\n",
		"TokensFile": "ops ops-token-0123456789\nci ci-token-0123456789\n",
	} {
		t.Run(name, func(t *testing.T) {
			got, err := server.ReadClientToken(writeTokens(t, content, 0o600))
			require.NoError(t, err)
			assert.Equal(t, "ops-token-0123456789", got)
		})
	}
	t.Run("TooOpen", func(t *testing.T) {
		_, err := server.ReadClientToken(writeTokens(t, "ops-token-0123456789\n", 0o644))
		assert.ErrorIs(t, err, server.ErrTokens)
	})
	t.Run("Empty", func(t *testing.T) {
		_, err := server.ReadClientToken(writeTokens(t, "# none\n", 0o600))
		assert.True(t, errors.Is(err, server.ErrTokens) && strings.Contains(err.Error(), "no token"), "%v", err)
	})
}
