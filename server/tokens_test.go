package server_test

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/quiesce-dev/quiesce/internal/homefile"
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

// tokensCall runs f in a goroutine and fails the test if it has not
// returned within a generous deadline (it would block on a FIFO).
func tokensCall(t *testing.T, what string, f func() error) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- f() }()
	select {
	case err := <-done:
		return err
	case <-time.After(10 * time.Second):
		require.Fail(t, fmt.Sprintf("%s had not returned after 10s: blocked opening a FIFO?", what))
		return nil
	}
}

// TestTokensFileFIFOFailsWithoutBlocking shows that a FIFO at the tokens
// path, or a symlink to one, is an ErrTokens error naming the file from
// LoadTokens, ReadClientToken and EnsureDevToken, which never block on it
// and leave it in place.
func TestTokensFileFIFOFailsWithoutBlocking(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "tokens")
	require.NoError(t, syscall.Mkfifo(fifo, 0o600))
	link := filepath.Join(dir, "tokens-link")
	require.NoError(t, os.Symlink(fifo, link))
	for _, path := range []string{fifo, link} {
		for name, call := range map[string]func() error{
			"LoadTokens":      func() error { _, err := server.LoadTokens(path); return err },
			"ReadClientToken": func() error { _, err := server.ReadClientToken(path); return err },
			"EnsureDevToken":  func() error { _, _, err := server.EnsureDevToken(path); return err },
		} {
			err := tokensCall(t, name+"("+path+")", call)
			require.Errorf(t, err, "%s(%s)", name, path)
			assert.ErrorIsf(t, err, server.ErrTokens, "%s(%s)", name, path)
			assert.Containsf(t, err.Error(), path, "%s names the file", name)
			assert.Containsf(t, err.Error(), "FIFO", "%s says what it is", name)
		}
	}
	fi, err := os.Lstat(fifo)
	require.NoError(t, err)
	assert.True(t, fi.Mode()&fs.ModeNamedPipe != 0, "the FIFO is left alone")
}

// TestTokensFileSymlinkIsFollowed shows that a tokens file reached through
// a symlink (a mounted secret) is read, with the target's mode checked.
func TestTokensFileSymlinkIsFollowed(t *testing.T) {
	target := writeTokens(t, "ops ops-token-0123456789\n", 0o600)
	link := filepath.Join(t.TempDir(), "tokens")
	require.NoError(t, os.Symlink(target, link))
	tokens, err := server.LoadTokens(link)
	require.NoError(t, err)
	assert.Equal(t, 1, tokens.Len())

	open := writeTokens(t, "ops ops-token-0123456789\n", 0o644)
	openLink := filepath.Join(t.TempDir(), "tokens")
	require.NoError(t, os.Symlink(open, openLink))
	_, err = server.LoadTokens(openLink)
	assert.ErrorIs(t, err, server.ErrTokens)
	assert.Contains(t, err.Error(), openLink)
	assert.Contains(t, err.Error(), "0644")
}

// TestTokensFileOverLimitIsRefused shows that a tokens file over
// MaxTokensFileBytes is refused (it is read no further).
func TestTokensFileOverLimitIsRefused(t *testing.T) {
	content := "ops ops-token-0123456789\n" + strings.Repeat("# padding\n", server.MaxTokensFileBytes/10+1)
	path := writeTokens(t, content, 0o600)
	_, err := server.LoadTokens(path)
	assert.ErrorIs(t, err, server.ErrTokens)
	assert.Contains(t, err.Error(), path)
	_, err = server.ReadClientToken(path)
	assert.ErrorIs(t, err, server.ErrTokens)
}

// TestEnsureDevTokenWritesAtomically shows that EnsureDevToken writes the
// tokens file through homefile.WriteAtomic (a fsynced temp file renamed
// over the path, then the directory fsynced) and first removes a temp
// file a killed earlier call left behind.
func TestEnsureDevTokenWritesAtomically(t *testing.T) {
	var synced []string
	homefile.SetSyncHook(func(path string) { synced = append(synced, path) })
	t.Cleanup(func() { homefile.SetSyncHook(nil) })

	dir := t.TempDir()
	path := filepath.Join(dir, "tokens")
	stale := path + homefile.TempInfix + "0123456789abcdef"
	require.NoError(t, os.WriteFile(stale, []byte("dev half-written"), 0o600))

	_, created, err := server.EnsureDevToken(path)
	require.NoError(t, err)
	require.True(t, created)
	require.Len(t, synced, 2, "a temp file and the directory were fsynced: %v", synced)
	assert.True(t, strings.HasPrefix(synced[0], path+homefile.TempInfix), "temp file fsynced: %s", synced[0])
	assert.Equal(t, dir, synced[1], "directory fsynced after the rename")
	_, err = os.Lstat(stale)
	assert.True(t, errors.Is(err, fs.ErrNotExist), "the stale temp file is removed: %v", err)
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	require.Len(t, entries, 1, "only the tokens file is left")
	assert.Equal(t, "tokens", entries[0].Name())
}

// TestTokensReload shows that Reload replaces the tokens with those of a
// file that passes every check, and that a file failing one keeps the old
// tokens working and returns an error naming the file.
func TestTokensReload(t *testing.T) {
	const (
		oldToken = "old-token-0123456789"
		newToken = "new-token-0123456789"
	)
	tests := []struct {
		name    string
		content string // "" with mode 0: no file at all
		mode    os.FileMode
		ok      bool   // the new file is taken
		reason  string // in the error when !ok
	}{
		{name: "Good", content: "ops " + newToken + "\nci ci-token-0123456789abc\n", mode: 0o600, ok: true},
		{name: "OwnerReadOnly", content: "ops " + newToken + "\n", mode: 0o400, ok: true},
		{name: "GroupReadable", content: "ops " + newToken + "\n", mode: 0o640, reason: "0640"},
		{name: "WorldReadable", content: "ops " + newToken + "\n", mode: 0o604, reason: "0604"},
		{name: "Malformed", content: "ops " + newToken + " extra\n", mode: 0o600, reason: ":1:"},
		{name: "ShortToken", content: "ops short\n", mode: 0o600, reason: "shorter"},
		{name: "NoTokens", content: "# emptied\n", mode: 0o600, reason: "no tokens"},
		{name: "Missing", reason: "no such file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tokens, err := server.LoadTokens(writeTokens(t, "ops "+oldToken+"\n", 0o600))
			require.NoError(t, err)
			path := filepath.Join(t.TempDir(), "tokens")
			if tt.mode != 0 {
				path = writeTokens(t, tt.content, tt.mode)
			}

			n, err := tokens.Reload(path)

			if tt.ok {
				require.NoError(t, err)
				assert.Equal(t, strings.Count(tt.content, "\n"), n, "tokens held")
				p, ok := tokens.Lookup(newToken)
				assert.True(t, ok && p == "ops", "the new token authenticates ops: (%q, %v)", p, ok)
				_, ok = tokens.Lookup(oldToken)
				assert.False(t, ok, "the old token no longer authenticates")
				return
			}
			require.Error(t, err)
			assert.Contains(t, err.Error(), path, "the error names the file")
			assert.Contains(t, err.Error(), tt.reason, "the error says why")
			assert.Equal(t, 1, n, "tokens held")
			p, ok := tokens.Lookup(oldToken)
			assert.True(t, ok && p == "ops", "the old token still authenticates ops: (%q, %v)", p, ok)
			_, ok = tokens.Lookup(newToken)
			assert.False(t, ok, "the refused file's token does not authenticate")
		})
	}
}

// TestTokensReplaceZeroAndNil shows that the zero Tokens authenticates
// nobody until it is given a set, and that Replace(nil) empties it.
func TestTokensReplaceZeroAndNil(t *testing.T) {
	var tokens server.Tokens
	_, ok := tokens.Lookup("ops-token-0123456789")
	assert.False(t, ok)
	tokens.Replace(server.NewTokens(map[string]string{"ops": "ops-token-0123456789"}))
	p, ok := tokens.Lookup("ops-token-0123456789")
	assert.True(t, ok && p == "ops")
	tokens.Replace(nil)
	assert.Equal(t, 0, tokens.Len())
	_, ok = tokens.Lookup("ops-token-0123456789")
	assert.False(t, ok)
}

// TestTokensReloadConcurrentLookup reloads while lookups run (under -race:
// no data race). A token both generations hold authenticates throughout,
// so a request made during a rotation never finds no tokens at all, and
// the token of a refused file never authenticates.
func TestTokensReloadConcurrentLookup(t *testing.T) {
	const (
		tokenA    = "token-a-0123456789"
		tokenB    = "token-b-0123456789"
		tokenKeep = "token-keep-0123456789"
		tokenBad  = "token-bad-0123456789"
	)
	pathA := writeTokens(t, "ops "+tokenA+"\nkeep "+tokenKeep+"\n", 0o600)
	pathB := writeTokens(t, "ops "+tokenB+"\nkeep "+tokenKeep+"\n", 0o600)
	bad := writeTokens(t, "evil "+tokenBad+"\nkeep "+tokenKeep+"\n", 0o644)
	tokens, err := server.LoadTokens(pathA)
	require.NoError(t, err)

	const readers, reloads = 4, 200
	stop := make(chan struct{})       // closed when the reloads are done
	errs := make(chan error, readers) // one result per reader
	for range readers {
		go func() {
			for {
				select {
				case <-stop:
					errs <- nil
					return
				default:
				}
				if p, ok := tokens.Lookup(tokenKeep); !ok || p != "keep" {
					errs <- fmt.Errorf("the token both files hold looked up to (%q, %v)", p, ok)
					return
				}
				if _, ok := tokens.Lookup(tokenBad); ok {
					errs <- fmt.Errorf("the refused file's token authenticated")
					return
				}
			}
		}()
	}
	for i := range reloads {
		path := pathA
		if i%2 == 1 {
			path = pathB
		}
		_, err := tokens.Reload(path)
		require.NoError(t, err)
		_, err = tokens.Reload(bad)
		require.Error(t, err, "a group-readable file is refused")
	}
	close(stop)
	for range readers {
		select {
		case err := <-errs:
			require.NoError(t, err)
		case <-time.After(10 * time.Second):
			require.Fail(t, "a reader did not stop within 10s")
		}
	}
	_, ok := tokens.Lookup(tokenB)
	assert.True(t, ok, "the last good file (B) is in use")
	_, ok = tokens.Lookup(tokenA)
	assert.False(t, ok, "the earlier file (A) is not")
}
