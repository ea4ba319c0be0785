package marker_test

import (
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/quiesce-dev/quiesce/marker"
)

// FuzzRead writes arbitrary bytes as the marker and checks Read's
// invariants. The seed corpus is in testdata/fuzz/FuzzRead (valid, legacy,
// corrupt, array, null, non-UTF-8, naive time, ...); seeds run in plain
// go test. Fuzz with: go test -run=NONE -fuzz=FuzzRead ./marker
func FuzzRead(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		home := t.TempDir()
		require.NoError(t, os.WriteFile(marker.Path(home), data, 0o600))
		mtime := t0.Add(-30 * time.Minute)
		require.NoError(t, os.Chtimes(marker.Path(home), mtime, mtime))
		for _, epoch := range []string{"", epochA, epochB} {
			st := marker.Read(home, t0, epoch, time.Hour)
			checkInvariants(t, st)
			require.NotEqual(t, marker.Absent, st.Status)
			require.Equal(t, st, marker.Read(home, t0, epoch, time.Hour), "deterministic")
		}
		// Clear by the id Read reported removes exactly this marker.
		if st := marker.Read(home, t0, "", time.Hour); st.Status == marker.Active && st.Request.RequestID != "" {
			existed, err := marker.Clear(home, st.Request.RequestID)
			require.NoError(t, err)
			require.True(t, existed)
			require.Equal(t, marker.Absent, marker.Read(home, t0, "", time.Hour).Status)
		}
	})
}
