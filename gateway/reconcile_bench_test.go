package gateway

import (
	"context"
	"testing"
)

// BenchmarkReconcileNoop is the poll fallback's work on an idle gateway: a
// reconcile that finds no marker while running and changes nothing.
func BenchmarkReconcileNoop(b *testing.B) {
	f := newFixture(b, nil)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		f.g.Reconcile(ctx)
	}
}
