package gateway

import (
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

// checkHomeBounded runs CheckHome on home, failing the test if it does not
// return within a bound (a FIFO must never block it).
func checkHomeBounded(t *testing.T, home string) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- CheckHome(home) }()
	select {
	case err := <-done:
		return err
	case <-time.After(10 * time.Second):
		require.Fail(t, "CheckHome blocked")
		return nil
	}
}

// newBounded runs New on home and closes what it opened, failing the test
// if it does not return within a bound.
func newBounded(t *testing.T, home string) error {
	t.Helper()
	done := make(chan error, 1)
	go func() {
		g, err := New(Config{Home: home, ProcRoot: t.TempDir(), WatchInterval: -1, Logger: quietLogger()})
		if err == nil {
			_ = g.Close()
		}
		done <- err
	}()
	select {
	case err := <-done:
		return err
	case <-time.After(10 * time.Second):
		require.Fail(t, "New blocked")
		return nil
	}
}

// TestCheckHomeAgreesWithNew: for every kind of home, CheckHome says what
// New would (nil, or the same sentinel naming the same path), without
// creating or changing anything in it; a FIFO never blocks it.
func TestCheckHomeAgreesWithNew(t *testing.T) {
	hostile := map[string]func(p string) error{
		"fifo":     func(p string) error { return syscall.Mkfifo(p, 0o600) },
		"dir":      func(p string) error { return os.Mkdir(p, 0o700) },
		"dangling": func(p string) error { return os.Symlink(p+".nowhere", p) },
	}
	type tc struct {
		name  string
		setup func(t *testing.T, home string) string // returns the path the error must name ("" for none)
		want  error                                  // nil, ErrHome
	}
	tests := []tc{
		{"Empty", func(t *testing.T, home string) string { return "" }, nil},
		{"WithFiles", func(t *testing.T, home string) string {
			for _, name := range []string{StateFileName, OutboxFileName, SpoolFileName, LockFileName, marker.LockFileName} {
				require.NoError(t, os.WriteFile(filepath.Join(home, name), nil, 0o600))
			}
			return ""
		}, nil},
		{"Missing", func(t *testing.T, home string) string {
			require.NoError(t, os.Remove(home))
			return ""
		}, nil},
		{"MissingTwoDeep", func(t *testing.T, home string) string { return "" }, nil},
		{"HomeIsAFile", func(t *testing.T, home string) string {
			require.NoError(t, os.Remove(home))
			require.NoError(t, os.WriteFile(home, nil, 0o600))
			return home
		}, ErrHome},
		{"ParentIsAFile", func(t *testing.T, home string) string {
			require.NoError(t, os.Remove(home))
			require.NoError(t, os.WriteFile(home, nil, 0o600))
			return home
		}, ErrHome},
	}
	for _, file := range []string{StateFileName, OutboxFileName, SpoolFileName, RejectedFileName, WebhookPendingFileName, LockFileName, marker.LockFileName} {
		for kind, mk := range hostile {
			tests = append(tests, tc{file + "/" + kind, func(t *testing.T, home string) string {
				p := filepath.Join(home, file)
				require.NoError(t, mk(p))
				return p
			}, ErrHome})
		}
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			home := filepath.Join(t.TempDir(), "home")
			require.NoError(t, os.Mkdir(home, 0o700))
			named := tt.setup(t, home)
			target := home
			switch tt.name {
			case "MissingTwoDeep":
				target = filepath.Join(home, "a", "b")
			case "ParentIsAFile":
				target = filepath.Join(home, "sub")
			}
			before := listTree(t, filepath.Dir(home))

			err := checkHomeBounded(t, target)
			if tt.want == nil {
				require.NoError(t, err)
			} else {
				require.ErrorIs(t, err, tt.want)
				assert.Contains(t, err.Error(), named, "the error names the path")
			}
			assert.Equal(t, before, listTree(t, filepath.Dir(home)), "CheckHome created or removed nothing")

			newErr := newBounded(t, target)
			if tt.want == nil {
				assert.NoError(t, newErr, "New agrees: it starts")
			} else {
				assert.ErrorIs(t, newErr, tt.want, "New agrees: %v", newErr)
			}
		})
	}
}

// listTree lists every path under root with its type.
func listTree(t *testing.T, root string) []string {
	t.Helper()
	var out []string
	require.NoError(t, filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		out = append(out, p+" "+d.Type().String())
		return nil
	}))
	return out
}

// TestCheckHomeHeldByALiveGateway: a home a live gateway holds is
// ErrLocked naming its pid (what New would say after its retries), and
// the probe does not disturb the live gateway.
func TestCheckHomeHeldByALiveGateway(t *testing.T) {
	f := newFixture(t, nil)
	err := checkHomeBounded(t, f.home)
	require.ErrorIs(t, err, ErrLocked)
	assert.Contains(t, err.Error(), "held by pid "+strconv.Itoa(os.Getpid()))
	assert.NotErrorIs(t, err, ErrHome)
	live, _, err := HomeLive(f.home)
	require.NoError(t, err)
	assert.True(t, live, "the gateway still holds its home")
}

// TestCheckHomeUnwritable: a home this user may not write is ErrHome
// naming it (New could not write gateway.lock there either).
func TestCheckHomeUnwritable(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("root may write any directory")
	}
	home := filepath.Join(t.TempDir(), "home")
	require.NoError(t, os.Mkdir(home, 0o500))
	err := checkHomeBounded(t, home)
	require.ErrorIs(t, err, ErrHome)
	assert.Contains(t, err.Error(), home)
	assert.ErrorIs(t, err, syscall.EACCES)
}
