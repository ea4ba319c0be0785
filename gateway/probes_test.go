package gateway

// Tests found by planting bugs one at a time: each fails on a realistic
// bug the rest of the suite let through.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/quiesce-dev/quiesce/internal/homefile"
	"github.com/quiesce-dev/quiesce/notify"
)

// a completion record refused by a full disk (write fails, truncate
// works) must still become durable at close, so the event does not come
// back after a restart.
func TestSpoolCompletionRefusedByAFullDiskIsRecordedAtClose(t *testing.T) {
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("no tmpfs: %v %s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("umount", "-l", dir).Run() })
	f := &spoolFixture{dir: dir, path: filepath.Join(dir, SpoolFileName), rejected: filepath.Join(dir, RejectedFileName)}
	s, err := openSpool(f.path, f.rejected, quietLogger())
	require.NoError(t, err)
	// Pad the one event so the file ends exactly on a page boundary: the
	// completion record then needs a new page, which the full disk refuses.
	e := event("s", "")
	line, _ := json.Marshal(spoolRecord{spoolEntry: e})
	e.Text = strings.Repeat("x", 4096-len(line)-1)
	require.NoError(t, s.add(e))
	fi, err := os.Stat(f.path)
	require.NoError(t, err)
	require.Equal(t, int64(4096), fi.Size())
	filler, err := os.Create(filepath.Join(dir, "filler"))
	require.NoError(t, err)
	for _, size := range []int{64 << 10, 4 << 10, 512, 64, 1} {
		chunk := make([]byte, size)
		for {
			if _, err := filler.Write(chunk); err != nil {
				require.True(t, errors.Is(err, syscall.ENOSPC), "%v", err)
				break
			}
		}
	}
	_ = filler.Close()
	require.Error(t, s.complete(e.ID), "the completion record did not fit")
	require.NoError(t, os.Remove(filepath.Join(dir, "filler")))
	require.NoError(t, s.close())
	s, err = openSpool(f.path, f.rejected, quietLogger())
	require.NoError(t, err)
	defer s.close()
	assert.Empty(t, s.entries(), "the completed event must not run again after a restart")
}

// a last line that is a complete event missing only its newline must
// not have the next event glued onto it.
func TestSpoolLastLineWithoutNewlineIsKept(t *testing.T) {
	f := newSpoolFixture(t)
	a := event("s", "a")
	line, _ := json.Marshal(spoolRecord{spoolEntry: a})
	require.NoError(t, os.WriteFile(f.path, line, 0o600)) // no trailing newline
	s := f.open(t)
	require.NoError(t, s.add(event("s", "b")))
	require.NoError(t, s.close())
	s = f.open(t)
	assert.Equal(t, []string{"a", "b"}, texts(s.entries()))
	_, err := os.Stat(f.rejected)
	assert.True(t, os.IsNotExist(err), "nothing rejected")
}

// the backoff schedule is 200ms doubling, capped at 30s.
func TestEventBackoffSchedule(t *testing.T) {
	want := []time.Duration{200 * time.Millisecond, 400 * time.Millisecond, 800 * time.Millisecond,
		1600 * time.Millisecond, 3200 * time.Millisecond, 6400 * time.Millisecond, 12800 * time.Millisecond,
		25600 * time.Millisecond, 30 * time.Second, 30 * time.Second}
	for i, w := range want {
		assert.Equal(t, w, eventBackoff(i+1), "after failure %d", i+1)
	}
	assert.Equal(t, eventBackoffMax, eventBackoff(64), "no overflow")
}

// an agent that answers cancellation with ctx.Err() (context.Canceled,
// as net/http and most libraries do) is still reported as interrupted.
func TestInterruptReportedWhateverTheAgentReturns(t *testing.T) {
	started := make(chan struct{}, 1)
	f := newFixture(t, func(c *Config) {
		c.Agent = AgentFunc(func(ctx context.Context, _ Turn) (string, error) {
			started <- struct{}{}
			<-ctx.Done()
			return "", ctx.Err()
		})
	})
	out := make(chan error, 1)
	go func() { _, err := f.g.Turn(context.Background(), "alice", "hi"); out <- err }()
	<-started
	_, _ = f.shutdown(t, true)
	err := recv(t, out)
	assert.ErrorIs(t, err, ErrInterrupted)
	assert.NotErrorIs(t, err, ErrAgent, "a forced interrupt is not an agent failure (502)")
}

// gate first, then the session slot: a turn for a busy session while
// draining is refused (503 draining), not 409 session_busy.
func TestGateBeforeSessionSlot(t *testing.T) {
	f := newFixture(t, nil)
	first := f.startTurn(t, "alice", "one")
	_, err := f.g.BeginDrain(context.Background(), DrainRequest{Principal: "ops"})
	require.NoError(t, err)
	_, err = f.g.Turn(context.Background(), "alice", "two")
	assert.ErrorIs(t, err, ErrRefused)
	assert.NotErrorIs(t, err, ErrSessionBusy)
	f.agent.finish("alice")
	require.NoError(t, recv(t, first).err)
}

// BeginShutdown returns only once the broadcast is recorded.
func TestBroadcastRecordedWhenBeginShutdownReturns(t *testing.T) {
	f := newFixture(t, nil)
	homefile.SetSyncHook(func(p string) {
		if strings.HasSuffix(p, OutboxFileName) {
			time.Sleep(300 * time.Millisecond) // a slow disk
		}
	})
	defer homefile.SetSyncHook(nil)
	st := f.g.BeginShutdown(false)
	require.False(t, st.AlreadyShuttingDown)
	assert.Equal(t, 1, count(f.outbox(t), notify.KindShutdownBroadcast, notify.HomeTarget),
		"the broadcast is in the outbox when BeginShutdown (and the 202) returns")
}

// a surviving same-epoch marker holds spooled events at start: none
// runs before the first reconcile has drained the gateway.
func TestSpooledEventsWaitForTheFirstReconcile(t *testing.T) {
	f := newFixture(t, nil)
	_, err := f.g.BeginDrain(context.Background(), DrainRequest{Principal: "ops"})
	require.NoError(t, err)
	r, err := f.g.Event(context.Background(), "s", "queued")
	require.NoError(t, err)
	require.True(t, r.Spooled)
	_, _ = f.shutdown(t, false)
	require.NoError(t, f.g.Close())

	agent := newGatedAgent()
	f2 := newFixture(t, func(c *Config) { c.Home, c.ProcRoot, c.Agent = f.home, f.procRoot, agent })
	time.Sleep(100 * time.Millisecond)
	assert.Empty(t, agent.startedTexts(), "no event starts while the surviving marker drains")
	assert.Equal(t, "draining", string(f2.g.State()))
	assert.Equal(t, 1, f2.g.spool.len())
}

// was_draining reports whether an active drain request was replaced.
func TestBeginDrainReportsWasDraining(t *testing.T) {
	f := newFixture(t, nil)
	ctx := context.Background()
	r, err := f.g.BeginDrain(ctx, DrainRequest{Principal: "ops"})
	require.NoError(t, err)
	assert.False(t, r.WasDraining, "first drain replaced nothing")
	r, err = f.g.BeginDrain(ctx, DrainRequest{Principal: "ops"})
	require.NoError(t, err)
	assert.True(t, r.WasDraining, "second drain replaced the first")
	_, err = f.g.CancelDrain(ctx, "")
	require.NoError(t, err)
	r, err = f.g.BeginDrain(ctx, DrainRequest{Principal: "ops"})
	require.NoError(t, err)
	assert.False(t, r.WasDraining, "after a cancel nothing was active")
}

// ST2/ST3: gateway_state.json carries exactly the documented field names.
func TestStateFileFieldNames(t *testing.T) {
	f := newFixture(t, nil)
	out := f.startTurn(t, "alice", "hi")
	f.g.SetListenAddr("127.0.0.1:8470")
	f.g.state.writeNow()
	data, err := os.ReadFile(filepath.Join(f.home, StateFileName))
	require.NoError(t, err)
	var doc map[string]json.RawMessage
	require.NoError(t, json.Unmarshal(data, &doc))
	var keys []string
	for k := range doc {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	assert.Equal(t, []string{"active_agents", "addr", "drain", "epoch", "gateway_state", "oldest_turn_seconds", "pid", "seq", "started_at", "state_since", "updated_at"}, keys)
	assert.JSONEq(t, `"127.0.0.1:8470"`, string(doc["addr"]))
	assert.JSONEq(t, fmt.Sprint(f.g.Status().Seq), string(doc["seq"]), "the seq the write ended")
	assert.JSONEq(t, "1", string(doc["active_agents"]))
	assert.JSONEq(t, `"running"`, string(doc["gateway_state"]))
	f.agent.finish("alice")
	recv(t, out)
}
