package marker_test

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/quiesce-dev/quiesce/internal/fakeproc"
	"github.com/quiesce-dev/quiesce/internal/homefile"
	"github.com/quiesce-dev/quiesce/internal/logbuf"
	"github.com/quiesce-dev/quiesce/marker"
)

// helperT is what both *testing.T and *rapid.T provide.
type helperT interface {
	require.TestingT
	Helper()
}

// t0 is the fixed "now" of most tests.
var t0 = time.Date(2026, 11, 23, 10, 30, 0, 0, time.UTC)

// Epochs used by tests.
const (
	epochA = "11111111-1111-1111-1111-111111111111:100"
	epochB = "22222222-2222-2222-2222-222222222222:200"
)

// writeRaw writes content as the marker of home (not atomically) and sets
// its modification time to mtime (unless zero).
func writeRaw(t testing.TB, home, content string, mtime time.Time) {
	t.Helper()
	p := marker.Path(home)
	require.NoError(t, os.WriteFile(p, []byte(content), 0o600))
	if !mtime.IsZero() {
		require.NoError(t, os.Chtimes(p, mtime, mtime))
	}
}

// setMtime sets the marker's modification time.
func setMtime(t testing.TB, home string, mtime time.Time) {
	t.Helper()
	require.NoError(t, os.Chtimes(marker.Path(home), mtime, mtime))
}

// markerJSON renders a marker object from key/value pairs given as raw
// JSON values (so tests can put wrong types in), in order.
func markerJSON(kv ...string) string {
	var b strings.Builder
	b.WriteByte('{')
	for i := 0; i+1 < len(kv); i += 2 {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "%q:%s", kv[i], kv[i+1])
	}
	b.WriteByte('}')
	return b.String()
}

// q quotes s as a JSON string.
func q(s string) string {
	b, err := json.Marshal(s)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// fakeProc creates a proc root with the given boot_id and PID 1 starttime.
func fakeProc(t testing.TB, bootID string, starttime uint64) string {
	t.Helper()
	root := t.TempDir()
	writeProc(t, root, bootID, starttime)
	return root
}

// writeProc (re)writes root/sys/kernel/random/boot_id and root/1/stat. The
// stat line has 52 fields and a command name with spaces and parentheses.
func writeProc(t helperT, root, bootID string, starttime uint64) {
	t.Helper()
	require.NoError(t, fakeproc.Write(root, bootID, starttime))
}

// statLine renders a /proc/1/stat line with comm and starttime (field 22).
func statLine(comm string, starttime uint64) string { return fakeproc.StatLine(comm, starttime) }

// syncBuffer collects the JSON log lines of a test logger.
type syncBuffer struct{ logbuf.Buffer }

// logRecords decodes the JSON log lines in b.
func (b *syncBuffer) logRecords(t testing.TB) []map[string]any {
	t.Helper()
	recs, err := b.Records()
	require.NoError(t, err)
	return recs
}

// countMsg counts log records with the given message.
func (b *syncBuffer) countMsg(t testing.TB, msg string) int {
	n := 0
	for _, r := range b.logRecords(t) {
		if r["msg"] == msg {
			n++
		}
	}
	return n
}

// newLogger returns a JSON logger (all levels) writing into a new buffer.
func newLogger() (*slog.Logger, *syncBuffer) {
	buf := &syncBuffer{}
	return slog.New(slog.NewJSONHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug})), buf
}

// tempFiles lists the writer's temporary files in home.
func tempFiles(t testing.TB, home string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(home, "*"+homefile.TempInfix+"*"))
	require.NoError(t, err)
	return m
}

// checkInvariants asserts what must hold for every State Read returns.
func checkInvariants(t require.TestingT, st marker.State) {
	switch st.Status {
	case marker.Absent, marker.Active, marker.Contentless, marker.Stale, marker.Expired:
	default:
		require.Failf(t, "unknown status", "status %d", int(st.Status))
	}
	require.Equal(t, st.Status == marker.Active || st.Status == marker.Contentless, st.Drains(), "Drains for %v", st.Status)
	if st.Suppresses() {
		require.Equal(t, marker.Active, st.Status, "suppresses only when active")
		require.False(t, st.Legacy, "legacy never suppresses")
		require.True(t, st.Request.SuppressNotification)
	}
	if st.Status == marker.Contentless {
		require.Equal(t, marker.Request{}, st.Request, "contentless has no fields")
		require.True(t, st.AgeFromMtime, "contentless age comes from mtime")
	}
	if st.Status == marker.Absent {
		require.Equal(t, marker.State{}, st, "absent is the zero state")
	}
	require.GreaterOrEqual(t, st.Age, time.Duration(0), "age never negative")
	// I5: stale or expired never drains nor suppresses.
	if st.Status == marker.Stale || st.Status == marker.Expired {
		require.False(t, st.Drains())
		require.False(t, st.Suppresses())
	}
}
