package marker_test

// Tests named after the upstream (Hermes gateway drain_control) cases.

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/quiesce-dev/quiesce/marker"
)

func TestAbsentByDefault(t *testing.T) {
	home := t.TempDir()
	st := marker.Read(home, time.Now(), epochA, 0)
	require.Equal(t, marker.Absent, st.Status)
	require.False(t, st.Drains())
	require.False(t, st.Suppresses())
}

func TestWriteThenPresent(t *testing.T) {
	home := t.TempDir()
	req, err := marker.Write(home, marker.Request{Principal: "ops", Epoch: epochA})
	require.NoError(t, err)
	require.Equal(t, "drain", req.Action)
	require.Regexp(t, regexp.MustCompile(`^[0-9a-f]{16}$`), req.RequestID)
	require.False(t, req.RequestedAt.IsZero())
	require.Equal(t, time.UTC, req.RequestedAt.Location())

	st := marker.Read(home, time.Now(), epochA, 0)
	require.Equal(t, marker.Active, st.Status)
	require.True(t, st.Drains())
	require.False(t, st.Legacy)
	require.Equal(t, req, st.Request, "read back exactly what was written")
}

func TestClearRemoves(t *testing.T) {
	home := t.TempDir()
	_, err := marker.Write(home, marker.Request{Epoch: epochA})
	require.NoError(t, err)

	existed, err := marker.Clear(home, "")
	require.NoError(t, err)
	require.True(t, existed)
	require.Equal(t, marker.Absent, marker.Read(home, time.Now(), epochA, 0).Status)

	existed, err = marker.Clear(home, "")
	require.NoError(t, err)
	require.False(t, existed, "second clear finds nothing")

	existed, err = marker.Clear(filepath.Join(home, "no-such-home"), "")
	require.NoError(t, err)
	require.False(t, existed, "clear in a missing home finds nothing")
}

func TestPathRespectsHome(t *testing.T) {
	require.Equal(t, filepath.Join("/srv/quiesce", ".drain_request.json"), marker.Path("/srv/quiesce"))
	homeA, homeB := t.TempDir(), t.TempDir()
	_, err := marker.Write(homeA, marker.Request{Epoch: epochA})
	require.NoError(t, err)
	require.FileExists(t, filepath.Join(homeA, marker.FileName))
	require.Equal(t, marker.Active, marker.Read(homeA, time.Now(), epochA, 0).Status)
	require.Equal(t, marker.Absent, marker.Read(homeB, time.Now(), epochA, 0).Status, "another home is unaffected")
}

func TestCorruptReadsAsPresentContentless(t *testing.T) {
	home := t.TempDir()
	writeRaw(t, home, "{not json", time.Time{})
	st := marker.Read(home, time.Now(), epochA, 0)
	require.Equal(t, marker.Contentless, st.Status)
	require.True(t, st.Drains(), "corrupt marker fails safe toward draining")
	require.False(t, st.Suppresses())
}

func TestWriteIsAtomicJSON(t *testing.T) {
	home := t.TempDir()
	req, err := marker.Write(home, marker.Request{Principal: "ops", Epoch: epochA, RequestedAt: t0})
	require.NoError(t, err)

	data, err := os.ReadFile(marker.Path(home))
	require.NoError(t, err)
	var fields map[string]any
	require.NoError(t, json.Unmarshal(data, &fields), "the marker is JSON")
	require.Equal(t, map[string]any{
		"action": "drain", "requested_at": "2026-11-23T10:30:00Z", "principal": "ops",
		"epoch": epochA, "suppress_notification": false, "request_id": req.RequestID,
	}, fields)

	fi, err := os.Stat(marker.Path(home))
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), fi.Mode().Perm(), "mode 0600")
	require.Empty(t, tempFiles(t, home), "no temp files left")
}

func TestSuppressDefaultFalse(t *testing.T) {
	home := t.TempDir()
	req, err := marker.Write(home, marker.Request{Epoch: epochA})
	require.NoError(t, err)
	require.False(t, req.SuppressNotification)
	st := marker.Read(home, time.Now(), epochA, 0)
	require.Equal(t, marker.Active, st.Status)
	require.False(t, st.Suppresses())
}

func TestSuppressRoundTripsTrue(t *testing.T) {
	home := t.TempDir()
	req, err := marker.Write(home, marker.Request{Epoch: epochA, SuppressNotification: true})
	require.NoError(t, err)
	require.True(t, req.SuppressNotification)
	st := marker.Read(home, time.Now(), epochA, 0)
	require.True(t, st.Request.SuppressNotification)
	require.True(t, st.Suppresses())
}

func TestWriteStampsCurrentEpoch(t *testing.T) {
	proc := fakeProc(t, "5c1d3c5e-0000-4000-8000-000000000001", 4242)
	epoch := marker.CurrentEpoch(proc)
	require.Equal(t, "5c1d3c5e-0000-4000-8000-000000000001:4242", epoch)

	home := t.TempDir()
	_, err := marker.Write(home, marker.Request{Epoch: epoch})
	require.NoError(t, err)
	data, err := os.ReadFile(marker.Path(home))
	require.NoError(t, err)
	var fields map[string]any
	require.NoError(t, json.Unmarshal(data, &fields))
	require.Equal(t, epoch, fields["epoch"])
	require.Equal(t, marker.Active, marker.Read(home, time.Now(), epoch, 0).Status)
}

func TestEpochStableWithinProcess(t *testing.T) {
	a := marker.ProcessEpoch("")
	b := marker.ProcessEpoch("/proc")
	require.Equal(t, a, b)
	if _, err := os.Stat("/proc/1/stat"); err == nil {
		require.NotEmpty(t, a, "this machine has /proc")
		require.Equal(t, marker.CurrentEpoch("/proc"), a)
	}

	// Cached: the proc files changing under a running process does not
	// change its epoch.
	proc := fakeProc(t, "boot-1", 10)
	first := marker.ProcessEpoch(proc)
	writeProc(t, proc, "boot-2", 20)
	require.Equal(t, first, marker.ProcessEpoch(proc))
	require.Equal(t, "boot-2:20", marker.CurrentEpoch(proc))
}

func TestPriorInstantiationMarkerReadsAsAbsent(t *testing.T) {
	proc := fakeProc(t, "boot-1", 100)
	before := marker.CurrentEpoch(proc)
	home := t.TempDir()
	_, err := marker.Write(home, marker.Request{Epoch: before, SuppressNotification: true})
	require.NoError(t, err)

	writeProc(t, proc, "boot-1", 900) // the container restarted: new PID 1
	after := marker.CurrentEpoch(proc)
	require.NotEqual(t, before, after)

	st := marker.Read(home, time.Now(), after, 0)
	require.Equal(t, marker.Stale, st.Status)
	require.False(t, st.Drains(), "a prior-instantiation marker does not drain")
	require.False(t, st.Suppresses())
}

func TestCurrentInstantiationHonoured(t *testing.T) {
	proc := fakeProc(t, "boot-1", 100)
	home := t.TempDir()
	_, err := marker.Write(home, marker.Request{Epoch: marker.CurrentEpoch(proc), SuppressNotification: true})
	require.NoError(t, err)
	st := marker.Read(home, time.Now(), marker.CurrentEpoch(proc), 0)
	require.Equal(t, marker.Active, st.Status)
	require.True(t, st.Drains())
	require.True(t, st.Suppresses())
}

func TestLegacyWithoutEpochStillActive(t *testing.T) {
	home := t.TempDir()
	writeRaw(t, home, markerJSON("action", q("drain"), "requested_at", q(time.Now().UTC().Format(time.RFC3339)),
		"suppress_notification", "true"), time.Time{})
	st := marker.Read(home, time.Now(), epochA, 0)
	require.Equal(t, marker.Active, st.Status)
	require.True(t, st.Legacy)
	require.True(t, st.Drains())
	require.False(t, st.Suppresses(), "a legacy marker never suppresses")
}

func TestCorruptWithNoEpochStillActive(t *testing.T) {
	home := t.TempDir()
	writeRaw(t, home, `{"action": "drain", "suppress_notification": tru`, time.Time{})
	st := marker.Read(home, time.Now(), epochA, 0)
	require.Equal(t, marker.Contentless, st.Status)
	require.True(t, st.Drains(), "a corrupt marker has no epoch to be stale by: it drains")
	require.False(t, st.Suppresses())
}

func TestUnavailableEpochDisablesStaleness(t *testing.T) {
	home := t.TempDir()
	_, err := marker.Write(home, marker.Request{Epoch: epochB, SuppressNotification: true})
	require.NoError(t, err)
	current := marker.CurrentEpoch(filepath.Join(t.TempDir(), "no-proc"))
	require.Empty(t, current)
	st := marker.Read(home, time.Now(), current, 0)
	require.Equal(t, marker.Active, st.Status, "without an epoch of our own nothing is stale")
	require.True(t, st.Legacy)
	require.False(t, st.Suppresses(), "presence only: never suppresses")
}

func TestEpochEmptyWhenProcUnreadable(t *testing.T) {
	cases := []struct {
		name  string
		setup func(t *testing.T, root string)
		want  string
	}{
		{"missing dir", func(t *testing.T, root string) { require.NoError(t, os.RemoveAll(root)) }, ""},
		{"missing boot_id", func(t *testing.T, root string) {
			require.NoError(t, os.Remove(filepath.Join(root, "sys/kernel/random/boot_id")))
		}, ""},
		{"empty boot_id", func(t *testing.T, root string) { writeProcFile(t, root, "sys/kernel/random/boot_id", " \n") }, ""},
		{"boot_id with a space", func(t *testing.T, root string) { writeProcFile(t, root, "sys/kernel/random/boot_id", "a b\n") }, ""},
		{"boot_id with a colon", func(t *testing.T, root string) { writeProcFile(t, root, "sys/kernel/random/boot_id", "a:b\n") }, ""},
		{"boot_id binary junk", func(t *testing.T, root string) { writeProcFile(t, root, "sys/kernel/random/boot_id", "\x00\xff\n") }, ""},
		{"missing stat", func(t *testing.T, root string) { require.NoError(t, os.Remove(filepath.Join(root, "1/stat"))) }, ""},
		{"empty stat", func(t *testing.T, root string) { writeProcFile(t, root, "1/stat", "") }, ""},
		{"junk stat", func(t *testing.T, root string) { writeProcFile(t, root, "1/stat", "not a stat line at all\n") }, ""},
		{"short stat", func(t *testing.T, root string) { writeProcFile(t, root, "1/stat", "1 (init) S 0 1 1 0\n") }, ""},
		{"non-numeric starttime", func(t *testing.T, root string) {
			line := statLine("init", 5)
			writeProcFile(t, root, "1/stat", regexp.MustCompile(` 5 0 0`).ReplaceAllString(line, " x5 0 0"))
		}, ""},
		{"negative starttime", func(t *testing.T, root string) {
			writeProcFile(t, root, "1/stat", regexp.MustCompile(` 5 0 0`).ReplaceAllString(statLine("init", 5), " -5 0 0"))
		}, ""},
		{"stat is a directory", func(t *testing.T, root string) {
			require.NoError(t, os.Remove(filepath.Join(root, "1/stat")))
			require.NoError(t, os.Mkdir(filepath.Join(root, "1/stat"), 0o755))
		}, ""},
		{"comm with spaces and parentheses parsed right", func(t *testing.T, root string) {
			writeProcFile(t, root, "1/stat", statLine(") 7 8 9 (evil) name", 31337))
		}, "boot-x:31337"},
		{"comm with 22 fake fields", func(t *testing.T, root string) {
			writeProcFile(t, root, "1/stat", statLine("a b c d e f g h i j k l m n o p q r s t u 99 w", 777))
		}, "boot-x:777"},
		{"real-looking stat", func(t *testing.T, root string) {
			writeProcFile(t, root, "1/stat", "1 (process_api) S 0 0 0 0 -1 4194560 18446 299297 0 151 19 56 722 427 10 -10 12 0 14 37691392 2234 18446744073709551615 1 1 0 0 0 0 0 4096 1256 0 0 0 17 1 0 0 0 0 0 0 0 0 0 0 0 0 0\n")
		}, "boot-x:14"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			root := fakeProc(t, "boot-x", 5)
			c.setup(t, root)
			require.Equal(t, c.want, marker.CurrentEpoch(root))
		})
	}
}

// writeProcFile overwrites rel under the proc root.
func writeProcFile(t *testing.T, root, rel, content string) {
	t.Helper()
	require.NoError(t, os.WriteFile(filepath.Join(root, rel), []byte(content), 0o644))
}

// TestRestartAndRespawn simulates a machine restart (new boot_id), a
// container restart (new PID 1 start time) and a supervisor respawn of only
// the gateway (same proc files, a fresh CurrentEpoch call).
func TestRestartAndRespawn(t *testing.T) {
	proc := fakeProc(t, "boot-1", 100)
	home := t.TempDir()
	epoch := marker.CurrentEpoch(proc)
	_, err := marker.Write(home, marker.Request{Epoch: epoch})
	require.NoError(t, err)

	// Supervisor respawn: the new gateway process computes the epoch anew.
	respawned := marker.CurrentEpoch(proc)
	require.Equal(t, epoch, respawned)
	require.Equal(t, marker.Active, marker.Read(home, time.Now(), respawned, 0).Status, "a live drain survives a respawn")

	// Machine restart: new boot_id (the start time may even repeat).
	writeProc(t, proc, "boot-2", 100)
	require.Equal(t, marker.Stale, marker.Read(home, time.Now(), marker.CurrentEpoch(proc), 0).Status)

	// Container restart on the same kernel: new PID 1 start time.
	writeProc(t, proc, "boot-1", 101)
	require.Equal(t, marker.Stale, marker.Read(home, time.Now(), marker.CurrentEpoch(proc), 0).Status)
}

func TestExpiredReadsAsAbsent(t *testing.T) {
	home := t.TempDir()
	_, err := marker.Write(home, marker.Request{Epoch: epochA, RequestedAt: t0.Add(-2 * time.Hour), SuppressNotification: true})
	require.NoError(t, err)
	st := marker.Read(home, t0, epochA, time.Hour)
	require.Equal(t, marker.Expired, st.Status)
	require.False(t, st.Drains())
	require.False(t, st.Suppresses())
	require.Equal(t, 2*time.Hour, st.Age)
}

func TestNoTimestampStillHonoured(t *testing.T) {
	home := t.TempDir()
	writeRaw(t, home, markerJSON("action", q("drain"), "epoch", q(epochA)), t0.Add(-59*time.Minute))
	st := marker.Read(home, t0, epochA, time.Hour)
	require.Equal(t, marker.Active, st.Status, "no timestamp: honoured")
	require.True(t, st.AgeFromMtime)

	setMtime(t, home, t0.Add(-61*time.Minute))
	st = marker.Read(home, t0, epochA, time.Hour)
	require.Equal(t, marker.Expired, st.Status, "until its mtime age passes the max age")
}

func TestUnparseableTimestampHonoured(t *testing.T) {
	home := t.TempDir()
	writeRaw(t, home, markerJSON("action", q("drain"), "epoch", q(epochA), "requested_at", q("last tuesday")), t0.Add(-59*time.Minute))
	st := marker.Read(home, t0, epochA, time.Hour)
	require.Equal(t, marker.Active, st.Status)
	require.True(t, st.AgeFromMtime)
	require.True(t, st.Request.RequestedAt.IsZero())

	setMtime(t, home, t0.Add(-61*time.Minute))
	require.Equal(t, marker.Expired, marker.Read(home, t0, epochA, time.Hour).Status)
}

func TestNaiveTimestampAsUTC(t *testing.T) {
	home := t.TempDir()
	writeRaw(t, home, markerJSON("epoch", q(epochA), "requested_at", q("2026-11-23T09:45:00.123456")), time.Time{})
	st := marker.Read(home, t0, epochA, time.Hour)
	require.Equal(t, marker.Active, st.Status)
	require.False(t, st.AgeFromMtime)
	require.Equal(t, time.Date(2026, 11, 23, 9, 45, 0, 123456000, time.UTC), st.Request.RequestedAt)
	require.Equal(t, 45*time.Minute-123456*time.Microsecond, st.Age)
}

func TestRewriteRefreshesClock(t *testing.T) {
	home := t.TempDir()
	first, err := marker.Write(home, marker.Request{Epoch: epochA, RequestedAt: t0.Add(-50 * time.Minute)})
	require.NoError(t, err)
	now := t0.Add(20 * time.Minute) // the first request is now 70 minutes old
	require.Equal(t, marker.Expired, marker.Read(home, now, epochA, time.Hour).Status)

	second, err := marker.Write(home, marker.Request{Epoch: epochA, RequestedAt: now, RequestID: first.RequestID})
	require.NoError(t, err)
	st := marker.Read(home, now, epochA, time.Hour)
	require.Equal(t, marker.Active, st.Status, "rewriting refreshes the age")
	require.Equal(t, time.Duration(0), st.Age)
	require.Equal(t, second, st.Request)

	// A zero RequestedAt means "now" (the real clock).
	before := time.Now()
	third, err := marker.Write(home, marker.Request{Epoch: epochA})
	require.NoError(t, err)
	require.False(t, third.RequestedAt.Before(before.Truncate(time.Second)))
	require.Equal(t, marker.Active, marker.Read(home, time.Now(), epochA, time.Hour).Status)
}

func TestClearWithMatchingIDRemoves(t *testing.T) {
	home := t.TempDir()
	req, err := marker.Write(home, marker.Request{Epoch: epochA})
	require.NoError(t, err)
	existed, err := marker.Clear(home, req.RequestID)
	require.NoError(t, err)
	require.True(t, existed)
	require.Equal(t, marker.Absent, marker.Read(home, time.Now(), epochA, 0).Status)

	existed, err = marker.Clear(home, req.RequestID)
	require.NoError(t, err, "clearing an absent marker by id is not a mismatch")
	require.False(t, existed)
}

func TestClearWithOtherIDMismatch(t *testing.T) {
	home := t.TempDir()
	req, err := marker.Write(home, marker.Request{Epoch: epochA, SuppressNotification: true})
	require.NoError(t, err)
	before, err := os.ReadFile(marker.Path(home))
	require.NoError(t, err)

	existed, err := marker.Clear(home, "0000000000000000")
	require.ErrorIs(t, err, marker.ErrRequestMismatch)
	require.True(t, existed)
	after, err := os.ReadFile(marker.Path(home))
	require.NoError(t, err)
	require.Equal(t, before, after, "marker intact")
	require.Equal(t, req, marker.Read(home, time.Now(), epochA, 0).Request)

	t.Run("contentless never matches an id", func(t *testing.T) {
		home := t.TempDir()
		writeRaw(t, home, "garbage", time.Time{})
		existed, err := marker.Clear(home, "anything")
		require.True(t, errors.Is(err, marker.ErrRequestMismatch))
		require.True(t, existed)
		require.FileExists(t, marker.Path(home))
	})
	t.Run("marker without request_id never matches", func(t *testing.T) {
		home := t.TempDir()
		writeRaw(t, home, markerJSON("action", q("drain")), time.Time{})
		_, err := marker.Clear(home, "anything")
		require.ErrorIs(t, err, marker.ErrRequestMismatch)
		require.FileExists(t, marker.Path(home))
	})
}
