package marker_test

import (
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/quiesce-dev/quiesce/marker"
)

func TestExpiryWarningLoggedOncePerMarker(t *testing.T) {
	logger, logs := newLogger()
	now := t0
	clock := func() time.Time { return now }

	home := t.TempDir()
	r := &marker.Reader{Home: home, Epoch: epochA, MaxAge: time.Hour, Now: clock, Logger: logger}
	_, err := marker.Write(home, marker.Request{Epoch: epochA, RequestedAt: t0.Add(-2 * time.Hour), RequestID: "old1"})
	require.NoError(t, err)

	require.Equal(t, marker.Expired, r.Read().Status)
	require.Equal(t, marker.Expired, r.Read().Status)
	require.Equal(t, 1, logs.countMsg(t, "expired marker ignored"), "two Reads of one marker log once")
	rec := logs.logRecords(t)[0]
	require.Equal(t, "WARN", rec["level"])
	require.Equal(t, home, rec["home"])
	require.Equal(t, "old1", rec["request_id"])
	require.Equal(t, epochA, rec["epoch"])
	require.Equal(t, float64(2*time.Hour), rec["age"])

	// A new marker (rewritten, still expired) logs again, once.
	_, err = marker.Write(home, marker.Request{Epoch: epochA, RequestedAt: t0.Add(-3 * time.Hour), RequestID: "old2"})
	require.NoError(t, err)
	r.Read()
	r.Read()
	require.Equal(t, 2, logs.countMsg(t, "expired marker ignored"))

	// Fresh markers are not logged.
	_, err = marker.Write(home, marker.Request{Epoch: epochA, RequestedAt: t0})
	require.NoError(t, err)
	require.Equal(t, marker.Active, r.Read().Status)
	require.Equal(t, 2, len(logs.logRecords(t)))

	// ... until they expire.
	now = t0.Add(2 * time.Hour)
	require.Equal(t, marker.Expired, r.Read().Status)
	require.Equal(t, 3, logs.countMsg(t, "expired marker ignored"))

	// A stale marker logs "stale marker ignored" once.
	_, err = marker.Write(home, marker.Request{Epoch: epochB, RequestedAt: now, RequestID: "stale1"})
	require.NoError(t, err)
	for range 3 {
		require.Equal(t, marker.Stale, r.Read().Status)
	}
	require.Equal(t, 1, logs.countMsg(t, "stale marker ignored"))

	// Two Readers for two homes in one process each log their own marker.
	logger2, logs2 := newLogger()
	homes := []string{t.TempDir(), t.TempDir()}
	var readers []*marker.Reader
	for _, h := range homes {
		_, err := marker.Write(h, marker.Request{Epoch: epochB, RequestedAt: t0})
		require.NoError(t, err)
		readers = append(readers, &marker.Reader{Home: h, Epoch: epochA, Now: clock, Logger: logger2})
	}
	for range 2 {
		for _, rd := range readers {
			require.Equal(t, marker.Stale, rd.Read().Status)
		}
	}
	recs := logs2.logRecords(t)
	require.Len(t, recs, 2)
	require.ElementsMatch(t, []any{homes[0], homes[1]}, []any{recs[0]["home"], recs[1]["home"]})
}

func TestReaderDefaultsAndConcurrency(t *testing.T) {
	home := t.TempDir()
	_, err := marker.Write(home, marker.Request{Epoch: epochB})
	require.NoError(t, err)
	logger, logs := newLogger()
	r := &marker.Reader{Home: home, Epoch: epochA, Logger: logger} // nil Now, zero MaxAge
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 20 {
				require.Equal(t, marker.Stale, r.Read().Status)
			}
		})
	}
	wg.Wait()
	require.Equal(t, 1, logs.countMsg(t, "stale marker ignored"), "logged once across goroutines")

	var zero marker.Reader // nil Logger → slog.Default(), home "" = current directory
	_ = zero.Read()
}
