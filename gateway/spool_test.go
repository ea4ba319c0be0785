package gateway

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/quiesce-dev/quiesce/internal/homefile"
	"github.com/quiesce-dev/quiesce/internal/logbuf"
	"github.com/quiesce-dev/quiesce/internal/randid"
)

// spoolFixture opens a spool in a temp home, logging into a buffer.
type spoolFixture struct {
	dir, path, rejected string
	log                 *logbuf.Buffer
}

func newSpoolFixture(t *testing.T) *spoolFixture {
	dir := t.TempDir()
	return &spoolFixture{dir: dir, path: filepath.Join(dir, SpoolFileName),
		rejected: filepath.Join(dir, RejectedFileName), log: &logbuf.Buffer{}}
}

func (f *spoolFixture) open(t *testing.T) *spool {
	t.Helper()
	s, err := openSpool(f.path, f.rejected, bufLogger(f.log))
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.close() })
	return s
}

func event(session, text string) spoolEntry {
	return spoolEntry{ID: randid.New(), Session: session, Text: text, At: time.Now().UTC()}
}

func texts(entries []spoolEntry) []string {
	var out []string
	for _, e := range entries {
		out = append(out, e.Text)
	}
	return out
}

// breakWrites swaps the spool's append handle for a read-only one, so
// every write fails (as on a full disk), and returns the function that
// restores a working handle.
func breakWrites(t *testing.T, s *spool) (restore func()) {
	t.Helper()
	good := s.f
	ro, err := os.Open(s.path)
	require.NoError(t, err)
	s.f = ro
	return func() {
		_ = ro.Close()
		if s.f == ro {
			s.f = good
		}
	}
}

func TestSpoolEventLeavesOnlyWhenCompleted(t *testing.T) {
	f := newSpoolFixture(t)
	s := f.open(t)
	a, b := event("s", "a"), event("s", "b")
	require.NoError(t, s.add(a))
	require.NoError(t, s.add(b))
	require.NoError(t, s.close())

	s = f.open(t)
	require.Equal(t, []string{"a", "b"}, texts(s.entries()), "both still pending after a restart")
	require.NoError(t, s.complete(a.ID))
	require.NoError(t, s.close())

	s = f.open(t)
	require.Equal(t, []string{"b"}, texts(s.entries()), "a completed event never comes back")
}

// TestSpoolTornTailCutBeforeNextAppend: a crash or full disk mid-append
// leaves a partial line; the next event must not be glued onto it (it
// would then be skipped at boot), and the partial line is moved to the
// rejected file with a log line.
func TestSpoolTornTailCutBeforeNextAppend(t *testing.T) {
	f := newSpoolFixture(t)
	s := f.open(t)
	require.NoError(t, s.add(event("s", "before")))
	require.NoError(t, s.close())
	fh, err := os.OpenFile(f.path, os.O_WRONLY|os.O_APPEND, 0)
	require.NoError(t, err)
	_, err = fh.WriteString(`{"id":"torn","session":"s","te`)
	require.NoError(t, err)
	require.NoError(t, fh.Close())

	s = f.open(t)
	require.NoError(t, s.add(event("s", "after")))
	require.NoError(t, s.close())
	s = f.open(t)
	assert.Equal(t, []string{"before", "after"}, texts(s.entries()))
	rejected, err := os.ReadFile(f.rejected)
	require.NoError(t, err)
	assert.Contains(t, string(rejected), `\"id\":\"torn\"`, "the torn line is kept in the rejected file")
	assert.Contains(t, f.log.String(), "spool line rejected")
}

// TestSpoolFailedAppendDoesNotPoisonNextEvent: the append fails after a
// partial write (ENOSPC); the failed event is not accepted, and the next
// event after the disk recovers is intact.
func TestSpoolFailedAppendDoesNotPoisonNextEvent(t *testing.T) {
	f := newSpoolFixture(t)
	s := f.open(t)
	require.NoError(t, s.add(event("s", "one")))
	// The partial line a short write leaves behind, then the write error.
	fh, err := os.OpenFile(f.path, os.O_WRONLY|os.O_APPEND, 0)
	require.NoError(t, err)
	_, err = fh.WriteString(`{"id":"half","sess`)
	require.NoError(t, err)
	require.NoError(t, fh.Close())
	restore := breakWrites(t, s)
	require.Error(t, s.add(event("s", "refused")), "a failed append is an error, never an acknowledgement")
	restore()
	require.NoError(t, s.add(event("s", "two")))
	assert.Equal(t, []string{"one", "two"}, texts(s.entries()))
	require.NoError(t, s.close())

	data, err := os.ReadFile(f.path)
	require.NoError(t, err)
	assert.NotContains(t, string(data), "half", "the torn tail was cut before the next append")
	s = f.open(t)
	assert.Equal(t, []string{"one", "two"}, texts(s.entries()))
}

// TestSpoolUnrecordedCompletionNeverReplays: the completion record cannot
// be written (home briefly unwritable); the event must still never run
// again after a clean restart once the home is writable again.
func TestSpoolUnrecordedCompletionNeverReplays(t *testing.T) {
	f := newSpoolFixture(t)
	s := f.open(t)
	a, b := event("s", "a"), event("t", "b")
	require.NoError(t, s.add(a))
	require.NoError(t, s.add(b))
	restore := breakWrites(t, s)
	require.Error(t, s.complete(a.ID))
	assert.Equal(t, []string{"b"}, texts(s.entries()), "not pending in this process")
	restore()
	require.NoError(t, s.close(), "close records what the disk refused")
	s = f.open(t)
	assert.Equal(t, []string{"b"}, texts(s.entries()), "a finished event never runs again")
}

func TestSpoolUnparseableLinesRejectedWithLogLine(t *testing.T) {
	f := newSpoolFixture(t)
	good := event("s", "ok")
	var buf bytes.Buffer
	buf.WriteString("not json\n")
	buf.WriteString(`{"id":"x"}` + "\n") // no session
	buf.WriteString(`{"id":"y","session":"s","text":"t","at":"2026-01-01T00:00:00Z","extra":1}` + "\n")
	line, _ := jsonLine(spoolRecord{spoolEntry: good})
	buf.Write(line)
	require.NoError(t, os.WriteFile(f.path, buf.Bytes(), 0o600))
	s := f.open(t)
	assert.Equal(t, []string{"ok"}, texts(s.entries()))
	rejected, err := os.ReadFile(f.rejected)
	require.NoError(t, err)
	assert.Equal(t, 3, strings.Count(string(rejected), "\n"), "each bad line kept: %s", rejected)
	assert.Equal(t, 3, strings.Count(f.log.String(), "spool line rejected"))
	data, err := os.ReadFile(f.path)
	require.NoError(t, err)
	assert.NotContains(t, string(data), "not json", "the spool was compacted")
}

func TestSpoolCompactsAfterManyCompletions(t *testing.T) {
	f := newSpoolFixture(t)
	s := f.open(t)
	for i := range compactAfter + 1 {
		e := event("s", "e")
		require.NoError(t, s.add(e), i)
		require.NoError(t, s.complete(e.ID), i)
	}
	fi, err := os.Stat(f.path)
	require.NoError(t, err)
	assert.Less(t, fi.Size(), int64(4096), "the log does not grow without bound")
}

// bufLogger logs text lines into buf.
func bufLogger(buf *logbuf.Buffer) *slog.Logger {
	return slog.New(slog.NewTextHandler(buf, nil))
}

// jsonLine is one spool line.
func jsonLine(r spoolRecord) ([]byte, error) {
	b, err := json.Marshal(r)
	return append(b, '\n'), err
}

// TestSpoolAppendAndCompletionAreFsynced: an event is on disk (fsync)
// before add returns, and so is its completion record.
func TestSpoolAppendAndCompletionAreFsynced(t *testing.T) {
	f := newSpoolFixture(t)
	s := f.open(t)
	var synced []string
	homefile.SetSyncHook(func(p string) { synced = append(synced, p) })
	t.Cleanup(func() { homefile.SetSyncHook(nil) })
	e := event("s", "durable")
	require.NoError(t, s.add(e))
	assert.Equal(t, []string{f.path}, synced, "add fsyncs the spool")
	require.NoError(t, s.complete(e.ID))
	assert.Equal(t, []string{f.path, f.path}, synced, "complete fsyncs the spool")
}
