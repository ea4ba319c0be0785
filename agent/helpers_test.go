package agent

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// errInterrupted stands for the cause the gateway cancels a turn with
// when a shutdown cuts it off.
var errInterrupted = errors.New("turn interrupted by shutdown")

// quietLogger logs only with go test -v.
func quietLogger() *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// eventually polls cond for up to 10 s and fails with what if it never
// holds.
func eventually(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			require.Fail(tb, fmt.Sprintf("timed out waiting for %s", what))
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// recv receives from ch, failing after 15 s rather than hanging.
func recv[T any](tb testing.TB, ch <-chan T) T {
	tb.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(15 * time.Second):
		require.Fail(tb, "timed out")
		panic("unreachable")
	}
}
