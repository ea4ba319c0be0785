package gateway

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/quiesce-dev/quiesce/api"
)

// rejectedIDs returns the event ids in home's rejected file, in order.
func rejectedIDs(t *testing.T, home string) []string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(home, RejectedFileName))
	if os.IsNotExist(err) {
		return nil
	}
	require.NoError(t, err)
	var ids []string
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		var r rejectedRecord
		if json.Unmarshal([]byte(line), &r) == nil && r.Event != nil {
			ids = append(ids, r.Event.ID)
		}
	}
	return ids
}

// spoolIDs returns the ids of the events pending in home's spool file.
func spoolIDs(t *testing.T, home string) []string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(home, SpoolFileName))
	require.NoError(t, err)
	pending, _, _, err := parseSpool(data)
	require.NoError(t, err)
	var ids []string
	for _, e := range pending {
		ids = append(ids, e.ID)
	}
	return ids
}

// writeRejected writes events as the rejected file of home.
func writeRejected(t *testing.T, home string, events ...spoolEntry) {
	t.Helper()
	var b strings.Builder
	for _, e := range events {
		line, err := json.Marshal(rejectedRecord{At: time.Now().UTC(), Reason: "test", Event: &e})
		require.NoError(t, err)
		b.Write(append(line, '\n'))
	}
	b.WriteString(`{"at":"2026-12-01T00:00:00Z","reason":"unparseable spool line","line":"\"{oops\""}` + "\n")
	require.NoError(t, os.WriteFile(filepath.Join(home, RejectedFileName), []byte(b.String()), 0o600))
}

// TestReplayRunsRejectedEventOnce: an event rejected after its retry
// window is moved back by ReplayEvents on a live gateway and then runs,
// once, with its event id; the rejected file keeps only what is not an
// event.
func TestReplayRunsRejectedEventOnce(t *testing.T) {
	agent := newEventAgent(map[string]int{"job": -1})
	f := newFixture(t, func(c *Config) {
		c.Agent = agent
		c.EventRetryFor = 20 * time.Millisecond
	})
	f.g.eventBackoffBase = time.Millisecond
	rec, err := f.g.Event(context.Background(), "s", "job")
	require.NoError(t, err)
	eventually(t, "the event rejected", func() bool { return f.g.spool.len() == 0 })
	require.Equal(t, []string{rec.ID}, rejectedIDs(t, f.home))

	agent.setFailFor("job", 0) // the upstream is fixed
	res, err := f.g.ReplayEvents(context.Background())
	require.NoError(t, err)
	assert.Equal(t, api.ReplayResult{Moved: 1, EventIDs: []string{rec.ID}}, res)
	eventually(t, "the replayed event completed", func() bool { n, _ := agent.completed(rec.ID); return n == 1 })
	eventually(t, "spool empty", func() bool { return f.g.spool.len() == 0 })
	assert.Empty(t, rejectedIDs(t, f.home))

	again, err := f.g.ReplayEvents(context.Background())
	require.NoError(t, err)
	assert.Equal(t, 0, again.Moved, "a second replay finds nothing")
	n, _ := agent.completed(rec.ID)
	assert.Equal(t, 1, n, "ran exactly once")
}

// TestLocalReplayOnStoppedHome: on a home no gateway holds, LocalReplay
// moves the rejected events into the spool (leaving what is not an
// event), and the next gateway started there runs each once. While a
// gateway holds the home, it refuses and changes nothing.
func TestLocalReplayOnStoppedHome(t *testing.T) {
	home := t.TempDir()
	a := spoolEntry{ID: "ev-a", Session: "s1", Text: "a", At: time.Now().UTC()}
	b := spoolEntry{ID: "ev-b", Session: "s2", Text: "b", At: time.Now().UTC()}
	writeRejected(t, home, a, b)

	res, err := LocalReplay(home, nil)
	require.NoError(t, err)
	assert.Equal(t, api.ReplayResult{Moved: 2, EventIDs: []string{"ev-a", "ev-b"}, Unreplayable: 1}, res)
	assert.Empty(t, rejectedIDs(t, home))
	assert.Equal(t, []string{"ev-a", "ev-b"}, spoolIDs(t, home))
	data, err := os.ReadFile(filepath.Join(home, RejectedFileName))
	require.NoError(t, err)
	assert.Contains(t, string(data), "oops", "the line that is not an event stays")
	_, err = os.Stat(filepath.Join(home, LockFileName))
	assert.True(t, os.IsNotExist(err), "a local replay does not pose as a gateway in gateway.lock")

	agent := newEventAgent(map[string]int{})
	procRoot := t.TempDir()
	writeProcRoot(t, procRoot, "boot-a", 100)
	g, err := New(Config{Home: home, ProcRoot: procRoot, Agent: agent, WatchInterval: -1, Logger: quietLogger()})
	require.NoError(t, err)
	t.Cleanup(func() { _ = g.Close() })
	require.NoError(t, g.Start(context.Background()))
	eventually(t, "both events completed", func() bool {
		na, _ := agent.completed("ev-a")
		nb, _ := agent.completed("ev-b")
		return na == 1 && nb == 1
	})

	writeRejected(t, home, spoolEntry{ID: "ev-c", Session: "s3", Text: "c", At: time.Now().UTC()})
	_, err = LocalReplay(home, nil)
	require.ErrorIs(t, err, ErrLocked, "a live gateway holds the home")
	assert.Equal(t, []string{"ev-c"}, rejectedIDs(t, home), "nothing changed")

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, err = g.Shutdown(ctx, false)
	require.NoError(t, err)
	na, _ := agent.completed("ev-a")
	assert.Equal(t, 1, na, "ran exactly once")
}

// TestReplayCutOffByACrashRunsOnce: a replay that a crash cut off after
// its spool append, before its rewrite of the rejected file, leaves the
// event in both files. Replaying again does not add it twice; starting a
// gateway there runs it once and takes it out of the rejected file, so
// no later replay can run it again.
func TestReplayCutOffByACrashRunsOnce(t *testing.T) {
	home := t.TempDir()
	e := spoolEntry{ID: "ev-x", Session: "s", Text: "x", At: time.Now().UTC()}
	line, err := json.Marshal(spoolRecord{spoolEntry: e})
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(home, SpoolFileName), append(line, '\n'), 0o600))

	t.Run("replay again", func(t *testing.T) {
		s, err := openSpool(filepath.Join(home, SpoolFileName), filepath.Join(home, RejectedFileName), quietLogger())
		require.NoError(t, err)
		writeRejected(t, home, e) // the crash's leftover, as if written before the open
		res, err := s.replayRejected()
		require.NoError(t, err)
		assert.Equal(t, []string{"ev-x"}, res.EventIDs)
		assert.Equal(t, []string{"ev-x"}, spoolIDs(t, home), "in the spool once")
		assert.Empty(t, rejectedIDs(t, home))
		require.NoError(t, s.close())
	})

	t.Run("start", func(t *testing.T) {
		writeRejected(t, home, e)
		agent := newEventAgent(map[string]int{})
		procRoot := t.TempDir()
		writeProcRoot(t, procRoot, "boot-a", 100)
		g, err := New(Config{Home: home, ProcRoot: procRoot, Agent: agent, WatchInterval: -1, Logger: quietLogger()})
		require.NoError(t, err)
		t.Cleanup(func() { _ = g.Close() })
		assert.Empty(t, rejectedIDs(t, home), "settled before any event runs")
		require.NoError(t, g.Start(context.Background()))
		eventually(t, "the event completed", func() bool { n, _ := agent.completed("ev-x"); return n == 1 })
		res, err := g.ReplayEvents(context.Background())
		require.NoError(t, err)
		assert.Equal(t, 0, res.Moved)
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		_, err = g.Shutdown(ctx, false)
		require.NoError(t, err)
		n, _ := agent.completed("ev-x")
		assert.Equal(t, 1, n, "ran exactly once")
	})
}
