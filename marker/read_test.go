package marker_test

import (
	"bytes"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/quiesce-dev/quiesce/internal/homefile"
	"github.com/quiesce-dev/quiesce/marker"
)

// TestReadOutcomes has one row per row of the outcome table in docs/MARKER.md (and
// the decisions the table leaves open). Unless a row says otherwise: now is
// t0, the file's mtime is t0-1m, the reader's epoch is epochA, max age 1h.
func TestReadOutcomes(t *testing.T) {
	fresh := q(t0.Add(-10 * time.Minute).Format(time.RFC3339)) // age 10m
	old := q(t0.Add(-2 * time.Hour).Format(time.RFC3339))      // age 2h
	valid := func(extra ...string) string {
		kv := []string{"action", q("drain"), "requested_at", fresh, "principal", q("ops"),
			"epoch", q(epochA), "suppress_notification", "false", "request_id", q("abc123")}
		return markerJSON(append(kv, extra...)...)
	}
	type row struct {
		name         string
		content      *string       // nil: no file (unless hostile)
		hostile      string        // a makeHostile kind instead of content
		mtimeAgo     time.Duration // mtime = t0 - mtimeAgo (default 1m)
		epoch        string        // reader's epoch (default epochA; "-" means "")
		maxAge       time.Duration // default 1h
		want         marker.Status
		legacy       bool
		suppresses   bool
		age          time.Duration
		ageFromMtime bool
		requestID    string // want Request.RequestID
	}
	s := func(v string) *string { return &v }
	rows := []row{
		// missing → absent
		{name: "missing", content: nil, want: marker.Absent},

		// empty, not JSON, not an object, wrong field types → present, contentless
		{name: "empty", content: s(""), want: marker.Contentless, age: time.Minute, ageFromMtime: true},
		{name: "whitespace only", content: s(" \n\t"), want: marker.Contentless, age: time.Minute, ageFromMtime: true},
		{name: "not JSON", content: s("drain please"), want: marker.Contentless, age: time.Minute, ageFromMtime: true},
		{name: "truncated JSON", content: s(`{"action":"drain","requested_at":"2026-`), want: marker.Contentless, age: time.Minute, ageFromMtime: true},
		{name: "invalid UTF-8", content: s("{\"action\":\"drain\",\"principal\":\"\xff\xfe\"}"), want: marker.Contentless, age: time.Minute, ageFromMtime: true},
		{name: "JSON array", content: s(`[{"action":"drain"}]`), want: marker.Contentless, age: time.Minute, ageFromMtime: true},
		{name: "JSON number", content: s(`42`), want: marker.Contentless, age: time.Minute, ageFromMtime: true},
		{name: "JSON null", content: s(`null`), want: marker.Contentless, age: time.Minute, ageFromMtime: true},
		{name: "JSON string", content: s(`"drain"`), want: marker.Contentless, age: time.Minute, ageFromMtime: true},
		{name: "JSON true", content: s(`true`), want: marker.Contentless, age: time.Minute, ageFromMtime: true},
		{name: "suppress as string", content: s(valid("suppress_notification", q("false"))), want: marker.Contentless, age: time.Minute, ageFromMtime: true},
		{name: "suppress as number", content: s(valid("suppress_notification", "1")), want: marker.Contentless, age: time.Minute, ageFromMtime: true},
		{name: "epoch as number", content: s(valid("epoch", "5")), want: marker.Contentless, age: time.Minute, ageFromMtime: true},
		{name: "requested_at as number", content: s(valid("requested_at", "7")), want: marker.Contentless, age: time.Minute, ageFromMtime: true},
		{name: "request_id as object", content: s(valid("request_id", "{}")), want: marker.Contentless, age: time.Minute, ageFromMtime: true},
		{name: "principal as array", content: s(valid("principal", `["ops"]`)), want: marker.Contentless, age: time.Minute, ageFromMtime: true},
		{name: "action as bool", content: s(valid("action", "true")), want: marker.Contentless, age: time.Minute, ageFromMtime: true},
		{name: "trailing garbage", content: s(valid() + "}"), want: marker.Contentless, age: time.Minute, ageFromMtime: true},
		{name: "contentless with suppress true still never suppresses", content: s(valid("suppress_notification", "true", "epoch", "5")), want: marker.Contentless, age: time.Minute, ageFromMtime: true},

		// decided: unknown extra fields are fine, null counts as missing, names are case-sensitive
		{name: "unknown extra fields", content: s(valid("comment", q("hi"), "nested", `{"a":[1,2]}`)), want: marker.Active, age: 10 * time.Minute, requestID: "abc123"},
		{name: "empty object is legacy", content: s(`{}`), want: marker.Active, legacy: true, age: time.Minute, ageFromMtime: true},
		{name: "null suppress is false", content: s(valid("suppress_notification", "null")), want: marker.Active, age: 10 * time.Minute, requestID: "abc123"},
		{name: "null epoch is legacy", content: s(valid("epoch", "null")), want: marker.Active, legacy: true, age: 10 * time.Minute, requestID: "abc123"},
		{name: "other action still drains", content: s(valid("action", q("something"))), want: marker.Active, age: 10 * time.Minute, requestID: "abc123"},
		{name: "field names are case-sensitive", content: s(markerJSON("Epoch", q(epochB), "requested_at", fresh, "SUPPRESS_NOTIFICATION", "true")), want: marker.Active, legacy: true, age: 10 * time.Minute},
		{name: "leading whitespace and BOM-free object", content: s("\n  " + valid() + "\n"), want: marker.Active, age: 10 * time.Minute, requestID: "abc123"},

		// no epoch field (legacy), or this machine cannot compute its epoch → presence only
		{name: "legacy no epoch field", content: s(markerJSON("action", q("drain"), "requested_at", fresh, "suppress_notification", "true")), want: marker.Active, legacy: true, age: 10 * time.Minute},
		{name: "legacy empty epoch", content: s(valid("epoch", q(""), "suppress_notification", "true")), want: marker.Active, legacy: true, age: 10 * time.Minute, requestID: "abc123"},
		{name: "current epoch unavailable", content: s(valid("suppress_notification", "true")), epoch: "-", want: marker.Active, legacy: true, age: 10 * time.Minute, requestID: "abc123"},
		{name: "current epoch unavailable, marker of another epoch", content: s(valid("epoch", q(epochB))), epoch: "-", want: marker.Active, legacy: true, age: 10 * time.Minute, requestID: "abc123"},

		// epoch ≠ current epoch → stale
		{name: "stale", content: s(valid("epoch", q(epochB), "suppress_notification", "true")), want: marker.Stale, age: 10 * time.Minute, requestID: "abc123"},
		{name: "stale wins over expired", content: s(valid("epoch", q(epochB), "requested_at", old)), want: marker.Stale, age: 2 * time.Hour, requestID: "abc123"},

		// not stale, but older than the max age → expired (also legacy and contentless)
		{name: "expired", content: s(valid("requested_at", old, "suppress_notification", "true")), want: marker.Expired, age: 2 * time.Hour, requestID: "abc123"},
		{name: "expired legacy", content: s(markerJSON("action", q("drain"), "requested_at", old)), want: marker.Expired, legacy: true, age: 2 * time.Hour},
		{name: "expired contentless", content: s("garbage"), mtimeAgo: 61 * time.Minute, want: marker.Expired, age: 61 * time.Minute, ageFromMtime: true},
		{name: "exactly max age is not expired", content: s(valid("requested_at", q(t0.Add(-time.Hour).Format(time.RFC3339)))), want: marker.Active, age: time.Hour, requestID: "abc123"},
		{name: "custom max age", content: s(valid()), maxAge: 5 * time.Minute, want: marker.Expired, age: 10 * time.Minute, requestID: "abc123"},
		{name: "zero max age means default", content: s(valid("requested_at", q(t0.Add(-59*time.Minute).Format(time.RFC3339)))), maxAge: -1, want: marker.Active, age: 59 * time.Minute, requestID: "abc123"},

		// same epoch, fresh → active; suppresses only for JSON true
		{name: "active", content: s(valid()), want: marker.Active, age: 10 * time.Minute, requestID: "abc123"},
		{name: "active suppress true", content: s(valid("suppress_notification", "true")), want: marker.Active, suppresses: true, age: 10 * time.Minute, requestID: "abc123"},

		// not a regular file, or unreadable → present, contentless (drains,
		// never suppresses), aged by its own mtime; never opened, never blocks
		{name: "directory", hostile: hostileDir, want: marker.Contentless, age: time.Minute, ageFromMtime: true},
		{name: "non-empty directory", hostile: hostileFullDir, want: marker.Contentless, age: time.Minute, ageFromMtime: true},
		{name: "FIFO", hostile: hostileFIFO, want: marker.Contentless, age: time.Minute, ageFromMtime: true},
		{name: "socket", hostile: hostileSocket, want: marker.Contentless, age: time.Minute, ageFromMtime: true},
		{name: "character device", hostile: hostileCharDevice, want: marker.Contentless, age: time.Minute, ageFromMtime: true},
		{name: "dangling symlink", hostile: hostileDangling, want: marker.Contentless, age: time.Minute, ageFromMtime: true},
		{name: "symlink to a regular file", hostile: hostileLinkToFile, want: marker.Contentless, age: time.Minute, ageFromMtime: true},
		{name: "symlink to a valid marker", hostile: hostileLinkToValid, want: marker.Contentless, age: time.Minute, ageFromMtime: true},
		{name: "symlink to a device", hostile: hostileLinkToDev, want: marker.Contentless, age: time.Minute, ageFromMtime: true},
		{name: "unreadable", hostile: hostileUnreadable, want: marker.Contentless, age: time.Minute, ageFromMtime: true},
		{name: "old directory is expired", hostile: hostileDir, mtimeAgo: 61 * time.Minute, want: marker.Expired, age: 61 * time.Minute, ageFromMtime: true},
		{name: "old FIFO is expired", hostile: hostileFIFO, mtimeAgo: 61 * time.Minute, want: marker.Expired, age: 61 * time.Minute, ageFromMtime: true},
		{name: "old dangling symlink is expired", hostile: hostileDangling, mtimeAgo: 61 * time.Minute, want: marker.Expired, age: 61 * time.Minute, ageFromMtime: true},

		// requested_at: missing, unparseable, future → age from mtime; naive → UTC
		{name: "requested_at missing", content: s(markerJSON("epoch", q(epochA))), mtimeAgo: 3 * time.Minute, want: marker.Active, age: 3 * time.Minute, ageFromMtime: true},
		{name: "requested_at missing, old mtime", content: s(markerJSON("epoch", q(epochA))), mtimeAgo: 90 * time.Minute, want: marker.Expired, age: 90 * time.Minute, ageFromMtime: true},
		{name: "requested_at unparseable", content: s(valid("requested_at", q("yesterday"))), mtimeAgo: 3 * time.Minute, want: marker.Active, age: 3 * time.Minute, ageFromMtime: true, requestID: "abc123"},
		{name: "requested_at empty string", content: s(valid("requested_at", q(""))), mtimeAgo: 3 * time.Minute, want: marker.Active, age: 3 * time.Minute, ageFromMtime: true, requestID: "abc123"},
		{name: "requested_at lone surrogate", content: s(valid("requested_at", `"2026-11-23T10:00:00\udc00Z"`)), mtimeAgo: 3 * time.Minute, want: marker.Active, age: 3 * time.Minute, ageFromMtime: true, requestID: "abc123"},
		{name: "requested_at in the future", content: s(valid("requested_at", q(t0.Add(time.Hour).Format(time.RFC3339)))), mtimeAgo: 3 * time.Minute, want: marker.Active, age: 3 * time.Minute, ageFromMtime: true, requestID: "abc123"},
		{name: "requested_at and mtime in the future", content: s(valid("requested_at", q(t0.Add(time.Hour).Format(time.RFC3339)))), mtimeAgo: -time.Hour, want: marker.Active, age: 0, ageFromMtime: true, requestID: "abc123"},
		{name: "requested_at naive", content: s(valid("requested_at", q("2026-11-23T10:00:00"))), want: marker.Active, age: 30 * time.Minute, requestID: "abc123"},
		{name: "requested_at naive fractional", content: s(valid("requested_at", q("2026-11-23T10:00:00.250000"))), want: marker.Active, age: 29*time.Minute + 59750*time.Millisecond, requestID: "abc123"},
		{name: "requested_at naive with space", content: s(valid("requested_at", q("2026-11-23 10:00:00"))), want: marker.Active, age: 30 * time.Minute, requestID: "abc123"},
		{name: "requested_at with offset", content: s(valid("requested_at", q("2026-11-23T11:00:00+01:00"))), want: marker.Active, age: 30 * time.Minute, requestID: "abc123"},
		{name: "requested_at fractional UTC", content: s(valid("requested_at", q("2026-11-23T10:29:59.5Z"))), want: marker.Active, age: 500 * time.Millisecond, requestID: "abc123"},
	}
	for _, r := range rows {
		t.Run(r.name, func(t *testing.T) {
			home := t.TempDir()
			ago := r.mtimeAgo
			if ago == 0 {
				ago = time.Minute
			}
			switch {
			case r.hostile != "":
				makeHostile(t, marker.Path(home), r.hostile, t0.Add(-ago))
			case r.content != nil:
				writeRaw(t, home, *r.content, t0.Add(-ago))
			}
			epoch := epochA
			if r.epoch == "-" {
				epoch = ""
			}
			maxAge := r.maxAge
			if maxAge == 0 {
				maxAge = time.Hour
			}
			var st marker.State
			callWithDeadline(t, "Read", func() { st = marker.Read(home, t0, epoch, maxAge) })
			checkInvariants(t, st)
			require.Equal(t, r.want, st.Status, "status")
			require.Equal(t, r.legacy, st.Legacy, "legacy")
			require.Equal(t, r.suppresses, st.Suppresses(), "suppresses")
			require.Equal(t, r.age, st.Age, "age")
			require.Equal(t, r.ageFromMtime, st.AgeFromMtime, "age from mtime")
			require.Equal(t, r.requestID, st.Request.RequestID, "request id")
			if r.want == marker.Contentless {
				require.True(t, st.Drains(), "contentless drains")
			}
		})
	}
}

// TestReadOddFiles: a marker that cannot be read as a file fails safe.
func TestReadOddFiles(t *testing.T) {
	t.Run("directory in the marker's place is contentless", func(t *testing.T) {
		home := t.TempDir()
		require.NoError(t, os.Mkdir(marker.Path(home), 0o700))
		st := marker.Read(home, time.Now(), epochA, 0)
		checkInvariants(t, st)
		require.Equal(t, marker.Contentless, st.Status)
	})
	t.Run("FIFO does not block and is contentless", func(t *testing.T) {
		home := t.TempDir()
		require.NoError(t, syscall.Mkfifo(marker.Path(home), 0o600))
		st := marker.Read(home, time.Now(), epochA, 0)
		checkInvariants(t, st)
		require.Equal(t, marker.Contentless, st.Status)
	})
	t.Run("home is a file", func(t *testing.T) {
		home := filepath.Join(t.TempDir(), "file")
		require.NoError(t, os.WriteFile(home, []byte("x"), 0o600))
		require.Equal(t, marker.Absent, marker.Read(home, time.Now(), epochA, 0).Status)
	})
	t.Run("missing home", func(t *testing.T) {
		home := filepath.Join(t.TempDir(), "missing")
		require.Equal(t, marker.Absent, marker.Read(home, time.Now(), epochA, 0).Status)
	})
	t.Run("huge file is contentless", func(t *testing.T) {
		home := t.TempDir()
		big := bytes.Repeat([]byte(" "), 2<<20)
		copy(big, `{"action":"drain"}`)
		writeRaw(t, home, string(big), time.Time{})
		st := marker.Read(home, time.Now(), epochA, 0)
		checkInvariants(t, st)
		require.Equal(t, marker.Contentless, st.Status)
	})
	t.Run("dangling symlink is contentless", func(t *testing.T) {
		home := t.TempDir()
		require.NoError(t, os.Symlink(filepath.Join(home, "nowhere"), marker.Path(home)))
		st := marker.Read(home, time.Now(), epochA, 0)
		checkInvariants(t, st)
		require.Equal(t, marker.Contentless, st.Status, "present: something is at the marker path")
	})
	t.Run("temp files are ignored", func(t *testing.T) {
		home := t.TempDir()
		tmp := filepath.Join(home, marker.FileName+homefile.TempInfix+"0123456789abcdef")
		require.NoError(t, os.WriteFile(tmp, []byte(`{"action":"drain"}`), 0o600))
		require.Equal(t, marker.Absent, marker.Read(home, time.Now(), epochA, 0).Status)
	})
}

func TestStatusString(t *testing.T) {
	for s, want := range map[marker.Status]string{
		marker.Absent: "absent", marker.Active: "active", marker.Contentless: "contentless",
		marker.Stale: "stale", marker.Expired: "expired", marker.Status(9): "status(9)",
	} {
		require.Equal(t, want, s.String())
	}
}
