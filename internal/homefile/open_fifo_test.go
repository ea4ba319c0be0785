package homefile_test

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/quiesce-dev/quiesce/internal/homefile"
)

// TestOpenNeverBlocksOnAFIFO: Open of a FIFO with no process at its other
// end returns at once, refused, for reading and for writing. The open runs
// under a deadline, so an Open that blocks fails this test by assertion;
// the test then opens the other end itself to release the stuck open.
func TestOpenNeverBlocksOnAFIFO(t *testing.T) {
	for _, tc := range []struct {
		name string
		flag int
	}{
		{"read", os.O_RDONLY},
		{"append", os.O_WRONLY | os.O_APPEND | os.O_CREATE},
		{"rdwr", os.O_RDWR | os.O_CREATE},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "outbox.jsonl")
			require.NoError(t, syscall.Mkfifo(p, 0o600))
			require.ErrorIs(t, openWithin(t, p, tc.flag), homefile.ErrNotRegular)
		})
	}
}

// openWithin runs homefile.Open(p, flag) under a deadline and returns its
// error: an Open that blocks (a FIFO with no process at its other end)
// fails the test by assertion, after the test opens the other end itself
// to release the stuck open.
func openWithin(t *testing.T, p string, flag int) error {
	t.Helper()
	done := make(chan error, 1) // the Open's result; buffered so a late one never blocks
	go func() {
		f, err := homefile.Open(p, flag, 0o600)
		if f != nil {
			_ = f.Close()
		}
		done <- err
	}()
	select {
	case err := <-done:
		return err
	case <-time.After(5 * time.Second):
		// O_RDWR on a FIFO never blocks on Linux and is the other end of
		// both a blocked reader and a blocked writer.
		if other, err := os.OpenFile(p, os.O_RDWR, 0); err == nil {
			defer other.Close()
		}
		<-done
		require.FailNow(t, "Open blocked", "%s, flag %#x", p, flag)
		return nil
	}
}
