package gateway

import (
	"encoding/json"
	"os"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/quiesce-dev/quiesce/internal/homefile"
)

// withFileSizeLimit runs fn with RLIMIT_FSIZE at limit bytes, so a write
// past it fails with EFBIG (after writing what fits), as on a full disk
// whose truncate still works. The limit is process-wide: callers are not
// parallel.
func withFileSizeLimit(t *testing.T, limit uint64, fn func()) {
	t.Helper()
	var old syscall.Rlimit
	require.NoError(t, syscall.Getrlimit(syscall.RLIMIT_FSIZE, &old))
	require.NoError(t, syscall.Setrlimit(syscall.RLIMIT_FSIZE, &syscall.Rlimit{Cur: limit, Max: old.Max}))
	defer func() { require.NoError(t, syscall.Setrlimit(syscall.RLIMIT_FSIZE, &old)) }()
	fn()
}

// TestSpoolFailedAppendKeepsEveryAcknowledgedEvent: an append that fails
// part-way is cut back to the end of the last acknowledged line, never
// into it: every event add acknowledged reads back whole after a restart,
// and nothing is rejected.
func TestSpoolFailedAppendKeepsEveryAcknowledgedEvent(t *testing.T) {
	f := newSpoolFixture(t)
	s := f.open(t)
	require.NoError(t, s.add(event("s", "a")))
	require.NoError(t, s.add(event("s", "b")))
	fi, err := os.Stat(f.path)
	require.NoError(t, err)
	withFileSizeLimit(t, uint64(fi.Size())+16, func() {
		require.Error(t, s.add(event("s", "refused")), "the append past the limit fails")
	})
	after, err := os.Stat(f.path)
	require.NoError(t, err)
	assert.Equal(t, fi.Size(), after.Size(), "the partial line is cut, and only it")
	require.NoError(t, s.close())

	s = f.open(t)
	assert.Equal(t, []string{"a", "b"}, texts(s.entries()), "every acknowledged event survives")
	_, err = os.Stat(f.rejected)
	assert.True(t, os.IsNotExist(err), "nothing rejected: no acknowledged line was torn")
}

// TestSpoolCloseRetriesARefusedCompaction: a completion the disk refused
// is recorded by the compaction at close; a compaction that fails once
// (the home briefly unwritable) is tried again, so the completed event
// never runs again after a restart. close waits between its tries on the
// fake clock of a synctest bubble: the home is writable again as soon as
// close waits, however loaded the machine.
func TestSpoolCloseRetriesARefusedCompaction(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newSpoolFixture(t)
		s := f.open(t)
		a, b := event("s", "a"), event("t", "b")
		require.NoError(t, s.add(a))
		require.NoError(t, s.add(b))
		restore := breakWrites(t, s)
		require.Error(t, s.complete(a.ID))
		restore()

		// The first compaction's rename meets a directory at the spool's
		// name; it goes once close waits to try again (the fake clock
		// moves only when every goroutine of the bubble waits).
		var first atomic.Bool
		cleared := make(chan struct{})
		homefile.SetSyncHook(func(p string) {
			if !strings.HasPrefix(p, f.path+".tmp-") || !first.CompareAndSwap(false, true) {
				return
			}
			require.NoError(t, os.Rename(f.path, f.path+".aside"))
			require.NoError(t, os.Mkdir(f.path, 0o700))
			go func() {
				defer close(cleared)
				time.Sleep(time.Nanosecond)
				assert.NoError(t, os.Remove(f.path))
			}()
		})
		t.Cleanup(func() { homefile.SetSyncHook(nil) })
		err := s.close()
		homefile.SetSyncHook(nil)
		require.True(t, first.Load(), "the first compaction met the directory")
		<-cleared
		require.NoError(t, err, "close tries the compaction again")

		s = f.open(t)
		assert.Equal(t, []string{"b"}, texts(s.entries()), "a completed event never runs again")
	})
}

// TestSpoolRejectedEventStaysUntilItsRecordIsWritten: an event leaves the
// spool for the rejected file only once its rejected record is written;
// when the write is refused it stays pending, so it is in one of the two
// files after a restart, never lost.
func TestSpoolRejectedEventStaysUntilItsRecordIsWritten(t *testing.T) {
	f := newSpoolFixture(t)
	s := f.open(t)
	e := event("s", "doomed")
	require.NoError(t, s.add(e))
	withFileSizeLimit(t, 0, func() {
		require.Error(t, s.rejectEvent(e, "test"), "the rejected file refused the record")
	})
	assert.Equal(t, []string{"doomed"}, texts(s.entries()), "still pending in this process")
	require.NoError(t, s.close())

	s = f.open(t)
	rejected, err := os.ReadFile(f.rejected)
	if err != nil {
		require.True(t, os.IsNotExist(err), "%v", err)
	}
	inRejected := strings.Contains(string(rejected), e.ID)
	inSpool := len(s.entries()) == 1 && s.entries()[0].ID == e.ID
	assert.True(t, inSpool || inRejected, "the event is in the spool or the rejected file, never lost")
	assert.True(t, inSpool, "the refused rejection kept it pending")
}

// TestSpoolRejectedRecordIsFsynced: a rejected event's record is on disk
// (fsync) before the event leaves the spool.
func TestSpoolRejectedRecordIsFsynced(t *testing.T) {
	f := newSpoolFixture(t)
	s := f.open(t)
	e := event("s", "doomed")
	require.NoError(t, s.add(e))
	var synced []string
	homefile.SetSyncHook(func(p string) { synced = append(synced, p) })
	t.Cleanup(func() { homefile.SetSyncHook(nil) })
	require.NoError(t, s.rejectEvent(e, "test"))
	homefile.SetSyncHook(nil)
	require.Equal(t, []string{f.rejected, f.path}, synced, "the rejected file, then the completion in the spool")
}

// TestSpoolLineWithTrailingDataIsRejected: a line holding a JSON object
// and more after it is unparseable as a whole: rejected with a log line,
// never read as its first object.
func TestSpoolLineWithTrailingDataIsRejected(t *testing.T) {
	f := newSpoolFixture(t)
	good := event("s", "ok")
	glued := event("s", "glued")
	first, err := json.Marshal(spoolRecord{spoolEntry: glued})
	require.NoError(t, err)
	line, err := jsonLine(spoolRecord{spoolEntry: good})
	require.NoError(t, err)
	data := append(append(first, ` {"id":"x","session":"s"}`+"\n"...), line...)
	require.NoError(t, os.WriteFile(f.path, data, 0o600))

	s := f.open(t)
	assert.Equal(t, []string{"ok"}, texts(s.entries()))
	rejected, err := os.ReadFile(f.rejected)
	require.NoError(t, err)
	assert.Equal(t, 1, strings.Count(string(rejected), "\n"), "the glued line is kept whole: %s", rejected)
	assert.Contains(t, f.log.String(), "spool line rejected")
}
