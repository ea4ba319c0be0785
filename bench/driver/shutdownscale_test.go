package main

import (
	"context"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestShutdownScaleSmall runs make bench's shutdown at scale figure at 50
// turns: every client of the gateway is answered `interrupted` and every
// session is pinged (in the outbox, and through the webhook: delivered
// before the exit or kept for the next start), while the
// bare net/http server's clients get no answer at all. No duration is
// asserted: the bench run reports those.
func TestShutdownScaleSmall(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: builds quiesce and bench/bare and runs both")
	}
	const n = 50
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	dir := t.TempDir()
	e := &benchEnv{dir: dir, bins: map[string]string{}}
	for name, pkg := range map[string]string{"quiesce": "./cmd/quiesce", "bare": "./bench/bare"} {
		bin := filepath.Join(dir, name)
		cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, pkg)
		cmd.Dir = filepath.Join("..", "..")
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "go build %s: %s", pkg, out)
		e.bins[name] = bin
	}
	t.Cleanup(e.killAll)

	q, b, err := measureShutdownScale(ctx, e, n)
	require.NoError(t, err)
	t.Logf("quiesce: exit %v, last answer %v, %s, pinged outbox %d, webhook delivered %d kept %d",
		q.exit, q.lastAnswer, q.clientsText(), q.outbox, q.webhook, q.kept)
	t.Logf("bare: exit %v, last answer %v, %s", b.exit, b.lastAnswer, b.clientsText())

	assert.NoError(t, q.exitErr, "the gateway exits 0 after a forced shutdown")
	assert.Equal(t, n, q.interrupted, "every gateway client answered interrupted: %s", q.clientsText())
	assert.Equal(t, n, q.outbox, "every session pinged in the outbox")
	assert.Equal(t, n, q.webhookAll, "every session's ping delivered to the webhook or kept for the next start (delivered %d, kept %d)", q.webhook, q.kept)

	assert.Zero(t, b.interrupted+b.otherCount(), "bare's Shutdown answers none of its cut-off clients: %s", b.clientsText())
	assert.Equal(t, n, b.connErr+b.nothing, "bare's clients all see a connection error or nothing: %s", b.clientsText())
}
