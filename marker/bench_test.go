package marker_test

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/quiesce-dev/quiesce/marker"
)

// Latency benchmark settings: 200 trials per mode, both modes polling every
// benchPollInterval (so the poll-only figures are about half of it).
const (
	benchTrials       = 200
	benchPollInterval = 20 * time.Millisecond
)

// BenchmarkWatchLatency measures, in one run, how long after the rename of
// a new marker into place the reconcile loop (signal, then Read) sees it:
// with fsnotify, and with the poll only. It reports the median and p99 in
// µs for each mode and the poll/notify ratio of the medians. The poll runs
// every 20 ms here, so that one run takes about benchTrials × 20 ms (b.N
// is ignored; use -benchtime=1x): its ratio understates fsnotify's gain
// over the default 1 s poll, which `make bench`'s driver measures against
// the real binary and a 1 s poll loop.
func BenchmarkWatchLatency(b *testing.B) {
	notify := renameLatencies(b, marker.Watch)
	poll := renameLatencies(b, marker.WatchPollOnly)
	nMed, nP99 := percentile(notify, 50), percentile(notify, 99)
	pMed, pP99 := percentile(poll, 50), percentile(poll, 99)
	b.ReportMetric(us(nMed), "notify-median-µs")
	b.ReportMetric(us(nP99), "notify-p99-µs")
	b.ReportMetric(us(pMed), "poll-median-µs")
	b.ReportMetric(us(pP99), "poll-p99-µs")
	b.ReportMetric(float64(pMed)/float64(nMed), "poll20ms/notify-median")
	b.ReportMetric(0, "ns/op") // one op is the whole experiment; not meaningful
}

type watchFunc func(ctx context.Context, home string, interval time.Duration, logger *slog.Logger) <-chan struct{}

// renameLatencies runs benchTrials trials of: stage a marker under another
// name, wait a random fraction of the poll interval (so renames land at a
// random phase of the ticker), rename it over the marker, then wait for
// signals until Read reports the new request id.
func renameLatencies(b *testing.B, watch watchFunc) []time.Duration {
	b.Helper()
	home := b.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	ch := watch(ctx, home, benchPollInterval, slog.New(slog.DiscardHandler))
	defer func() {
		cancel()
		for range ch {
		}
	}()
	<-ch // the initial signal
	staging := filepath.Join(home, "staging.tmp")
	lat := make([]time.Duration, 0, benchTrials)
	for i := range benchTrials {
		id := fmt.Sprintf("%016x", i)
		data := markerJSON("action", q("drain"), "epoch", q(epochA), "request_id", q(id),
			"requested_at", q(time.Now().UTC().Format(time.RFC3339Nano)))
		require.NoError(b, os.WriteFile(staging, []byte(data), 0o600))
		time.Sleep(rand.N(benchPollInterval))
		select { // drop a pending tick: it predates the rename
		case <-ch:
		default:
		}
		start := time.Now()
		require.NoError(b, os.Rename(staging, marker.Path(home)))
		for seen := false; !seen; {
			select {
			case <-ch:
				seen = marker.Read(home, time.Now(), epochA, 0).Request.RequestID == id
			case <-time.After(5 * time.Second):
				require.Fail(b, fmt.Sprintf("trial %d: no signal", i))
			}
		}
		lat = append(lat, time.Since(start))
	}
	return lat
}

// percentile returns the p-th percentile (nearest rank) of d.
func percentile(d []time.Duration, p int) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	idx := (len(s)*p+99)/100 - 1
	return s[max(0, min(idx, len(s)-1))]
}

func us(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }

// BenchmarkRead measures one Read of an active marker.
func BenchmarkRead(b *testing.B) {
	home := b.TempDir()
	_, err := marker.Write(home, marker.Request{Epoch: epochA, Principal: "ops", SuppressNotification: true})
	require.NoError(b, err)
	now := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		st := marker.Read(home, now, epochA, 0)
		require.Equal(b, marker.Status(marker.Active), st.Status, st.Status)
	}
}

// BenchmarkWrite measures one Write (lock, temp file, two fsyncs, rename).
func BenchmarkWrite(b *testing.B) {
	home := b.TempDir()
	b.ReportAllocs()
	for b.Loop() {
		_, err := marker.Write(home, marker.Request{Epoch: epochA})
		require.NoError(b, err)
	}
}
