package gateway

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/quiesce-dev/quiesce/marker"
	"github.com/quiesce-dev/quiesce/notify"
)

// TestSuppressOnlyForFreshCurrentEpochTrue: only a fresh marker of this
// epoch whose suppress_notification is JSON true skips the broadcast.
func TestSuppressOnlyForFreshCurrentEpochTrue(t *testing.T) {
	for _, tc := range []struct {
		name       string
		body       func(epoch string) string
		suppressed bool
	}{
		{"fresh true", func(e string) string { return markerJSON(e, "true", time.Now()) }, true},
		{"fresh false", func(e string) string { return markerJSON(e, "false", time.Now()) }, false},
		{"string true", func(e string) string { return markerJSON(e, `"true"`, time.Now()) }, false},
		{"number 1", func(e string) string { return markerJSON(e, `1`, time.Now()) }, false},
		{"other epoch", func(string) string { return markerJSON("boot-z:1", "true", time.Now()) }, false},
		{"legacy", func(string) string { return `{"action":"drain","suppress_notification":true}` }, false},
		{"expired", func(e string) string { return markerJSON(e, "true", time.Now().Add(-2*time.Hour)) }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, nil)
			require.NoError(t, os.WriteFile(marker.Path(f.home), []byte(tc.body(f.g.Epoch())), 0o600))
			f.g.Reconcile(context.Background())
			rep, _ := f.shutdown(t, false)
			assert.Equal(t, tc.suppressed, rep.Suppressed)
			want := 1
			if tc.suppressed {
				want = 0
			}
			assert.Equal(t, want, count(f.outbox(t), notify.KindShutdownBroadcast, notify.HomeTarget))
		})
	}
}

func markerJSON(epoch, suppress string, at time.Time) string {
	return `{"action":"drain","requested_at":"` + at.UTC().Format(time.RFC3339) + `","principal":"ops","epoch":"` +
		epoch + `","suppress_notification":` + suppress + `,"request_id":"r1"}`
}

// TestReconcileThatChangesNothingStaysCheap: the poll fallback runs a
// reconcile every second; with no marker and the gateway running it must
// not call into the state machine (looplab allocates on every Fire).
func TestReconcileThatChangesNothingStaysCheap(t *testing.T) {
	f := newFixture(t, nil)
	ctx := context.Background()
	f.g.Reconcile(ctx)
	tc := countTransitions(f.g.m)
	allocs := testing.AllocsPerRun(100, func() { f.g.Reconcile(ctx) })
	assert.Zero(t, tc.n.Load(), "no transition")
	// A Fire alone would cost looplab 18 allocations; the check of the
	// missing marker is one os.Lstat, whose path copy and *PathError cost
	// 3 (go1.26).
	assert.LessOrEqual(t, allocs, 3.0, "a no-op reconcile looks for the marker and does nothing else")
}
