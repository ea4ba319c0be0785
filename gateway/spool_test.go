package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
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

// A spool line longer than the parser's limit must never make the spool
// drop it and every later event: Event refuses texts that could not fit,
// and a spool that holds such a line anyway is refused at start, naming
// the file, with nothing deleted.
func TestSpoolNeverDropsEventsAfterAnOverlongLine(t *testing.T) {
	home, proc := t.TempDir(), t.TempDir()
	writeProcRoot(t, proc, "boot-a", 100)
	cfg := Config{Home: home, ProcRoot: proc, Agent: newGatedAgent(), WatchInterval: -1, Logger: quietLogger()}
	g, err := New(cfg)
	require.NoError(t, err)
	_, err = g.Event(context.Background(), "a", strings.Repeat("x", maxEventText+1))
	require.ErrorIs(t, err, ErrInvalid)
	_, err = g.Event(context.Background(), "b", "small")
	require.NoError(t, err)
	require.NoError(t, g.Close())

	path := filepath.Join(home, SpoolFileName)
	before, err := os.ReadFile(path)
	require.NoError(t, err)
	long := `{"id":"big","session":"a","text":"` + strings.Repeat("x", maxSpoolLine) + `","at":"2026-01-01T00:00:00Z"}` + "\n"
	require.NoError(t, os.WriteFile(path, append([]byte(long), before...), 0o600))
	_, err = New(cfg)
	require.ErrorIs(t, err, ErrHome)
	assert.Contains(t, err.Error(), path)
	after, err := os.ReadFile(path)
	require.NoError(t, err)
	assert.Equal(t, len(long)+len(before), len(after), "nothing deleted")
}

// when compactLocked has replaced the file but cannot reopen it
// (EMFILE, or here: something else appears at the path for a moment), it
// returns with s.f still on the old, now unlinked inode and s.torn false:
// the next add appends and fsyncs into that orphan and reports success,
// so an event acknowledged with 202 is not in events.spool.jsonl.
func TestSpoolReopenFailureNeverAcknowledgesIntoAnOrphan(t *testing.T) {
	f := newSpoolFixture(t)
	s := f.open(t)
	var ids []string
	for i := range compactAfter {
		e := event("s", fmt.Sprint(i))
		require.NoError(t, s.add(e))
		ids = append(ids, e.ID)
	}
	for _, id := range ids[:compactAfter-1] { // the next completion compacts
		require.NoError(t, s.complete(id))
	}
	aside := f.path + ".aside"
	var armed atomic.Bool
	armed.Store(true)
	homefile.SetSyncHook(func(p string) {
		if p == f.dir && armed.CompareAndSwap(true, false) {
			// Right after the rename: the reopen will fail.
			require.NoError(t, os.Rename(f.path, aside))
			require.NoError(t, os.Mkdir(f.path, 0o700))
		}
	})
	t.Cleanup(func() { homefile.SetSyncHook(nil) })
	require.Error(t, s.complete(ids[compactAfter-1]), "compaction's reopen failed")
	homefile.SetSyncHook(nil)
	require.NoError(t, os.Remove(f.path))
	require.NoError(t, os.Rename(aside, f.path)) // the compacted file is back

	e := event("s", "acknowledged")
	require.NoError(t, s.add(e), "add reported the event durable")
	data, err := os.ReadFile(f.path)
	require.NoError(t, err)
	require.Contains(t, string(data), e.ID, "the acknowledged event is not in the spool file")
}
