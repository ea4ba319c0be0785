package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/quiesce-dev/quiesce/api"
	"github.com/quiesce-dev/quiesce/fsm"
	"github.com/quiesce-dev/quiesce/marker"
)

// clockFixture is a fixture whose gateway reads the fake clock.
func clockFixture(t *testing.T, mod func(*Config)) (*fixture, *fakeClock) {
	t.Helper()
	clock := &fakeClock{now: time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)}
	f := newFixture(t, func(c *Config) {
		c.Now = clock.Now
		if mod != nil {
			mod(c)
		}
	})
	return f, clock
}

// readMarkerFile returns the marker's JSON fields as written on disk.
func readMarkerFile(t *testing.T, home string) map[string]any {
	t.Helper()
	data, err := os.ReadFile(marker.Path(home))
	require.NoError(t, err)
	var fields map[string]any
	require.NoError(t, json.Unmarshal(data, &fields))
	return fields
}

// A drain that names the active request id refreshes it: requested_at and
// the expiry renew; principal, suppress_notification and reason stay unless
// the refresh gives them. Any other drain replaces the active one.
func TestDrainRefreshKeepsTheRequest(t *testing.T) {
	first := DrainRequest{Principal: "ops", SuppressNotification: ptr(true), RequestID: "maint-42", Reason: ptr("disk swap")}
	cases := []struct {
		name          string
		req           DrainRequest
		wantRefreshed bool
		wantPrincipal string
		wantSuppress  bool
		wantReason    string
		wantID        string // "" means a new, generated id
	}{
		{"refresh keeps everything", DrainRequest{Principal: "page", RequestID: "maint-42"},
			true, "ops", true, "disk swap", "maint-42"},
		{"refresh sets the flag it gives", DrainRequest{Principal: "page", RequestID: "maint-42", SuppressNotification: ptr(false)},
			true, "ops", false, "disk swap", "maint-42"},
		{"refresh sets the reason it gives", DrainRequest{RequestID: "maint-42", Reason: ptr("")},
			true, "ops", true, "", "maint-42"},
		{"no request id replaces", DrainRequest{Principal: "other"},
			false, "other", false, "", ""},
		{"another request id replaces", DrainRequest{Principal: "other", RequestID: "maint-43", Reason: ptr("kernel")},
			false, "other", false, "kernel", "maint-43"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f, clock := clockFixture(t, nil)
			ctx := context.Background()
			res, err := f.g.BeginDrain(ctx, first)
			require.NoError(t, err)
			require.False(t, res.WasDraining)
			require.False(t, res.Refreshed)
			firstAt := res.Drain.RequestedAt

			clock.advance(10 * time.Minute)
			res, err = f.g.BeginDrain(ctx, tc.req)
			require.NoError(t, err)
			assert.True(t, res.WasDraining, "a drain was active")
			assert.Equal(t, tc.wantRefreshed, res.Refreshed)
			assert.Equal(t, tc.wantPrincipal, res.Drain.Principal)
			assert.Equal(t, tc.wantSuppress, res.Drain.SuppressNotification)
			assert.Equal(t, tc.wantReason, res.Drain.Reason)
			if tc.wantID != "" {
				assert.Equal(t, tc.wantID, res.Drain.RequestID)
			} else {
				assert.NotEqual(t, "maint-42", res.Drain.RequestID)
				assert.NotEmpty(t, res.Drain.RequestID)
			}
			assert.Equal(t, firstAt.Add(10*time.Minute), res.Drain.RequestedAt, "requested_at renews")
			assert.Equal(t, res.Drain.RequestedAt.Add(f.g.cfg.MaxAge), res.Drain.ExpiresAt, "so does the expiry")
			assert.True(t, res.Drain.Persisted)
			assert.Equal(t, fsm.Draining, f.g.State())

			// What is on disk and in status agrees with the answer.
			fields := readMarkerFile(t, f.home)
			assert.Equal(t, tc.wantPrincipal, fields["principal"])
			assert.Equal(t, tc.wantSuppress, fields["suppress_notification"])
			assert.Equal(t, res.Drain.RequestID, fields["request_id"])
			if tc.wantReason == "" {
				assert.NotContains(t, fields, "reason", "no reason, no extra field")
			} else {
				assert.Equal(t, tc.wantReason, fields["reason"])
			}
			st := f.g.Status().Drain
			require.NotNil(t, st)
			assert.Equal(t, res.Drain.RequestID, st.RequestID)
			assert.Equal(t, tc.wantReason, st.Reason)
			assert.Equal(t, tc.wantSuppress, st.SuppressNotification)

			// The shutdown honours the flag the refresh left.
			rep, _ := f.shutdown(t, false)
			assert.Equal(t, tc.wantSuppress, rep.Suppressed)
		})
	}
}

// An expired marker is no active drain: a drain naming its id starts a new
// request, with none of the old fields.
func TestDrainNamingAnExpiredRequestStartsANewOne(t *testing.T) {
	f, clock := clockFixture(t, nil)
	ctx := context.Background()
	_, err := f.g.BeginDrain(ctx, DrainRequest{Principal: "ops", SuppressNotification: ptr(true), RequestID: "r1", Reason: ptr("old")})
	require.NoError(t, err)
	clock.advance(f.g.cfg.MaxAge + time.Minute)
	f.g.Reconcile(ctx)
	require.Equal(t, fsm.Running, f.g.State(), "the marker expired")

	res, err := f.g.BeginDrain(ctx, DrainRequest{Principal: "page", RequestID: "r1"})
	require.NoError(t, err)
	assert.False(t, res.Refreshed)
	assert.False(t, res.WasDraining)
	assert.Equal(t, "page", res.Drain.Principal)
	assert.False(t, res.Drain.SuppressNotification)
	assert.Empty(t, res.Drain.Reason)
	assert.Equal(t, fsm.Draining, f.g.State())
}

// The local CLI's drain (no gateway asked) follows the same refresh rule.
func TestLocalDrainRefreshKeepsTheRequest(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.WatchInterval = time.Hour })
	res, err := LocalDrain(f.home, f.procRoot, DrainRequest{Principal: "local:ops", SuppressNotification: ptr(true),
		RequestID: "maint-42", Reason: ptr("disk swap")})
	require.NoError(t, err)
	assert.False(t, res.Refreshed)
	res, err = LocalDrain(f.home, f.procRoot, DrainRequest{Principal: "local:other", RequestID: "maint-42"})
	require.NoError(t, err)
	assert.True(t, res.Refreshed)
	assert.True(t, res.WasDraining)
	fields := readMarkerFile(t, f.home)
	assert.Equal(t, "local:ops", fields["principal"])
	assert.Equal(t, true, fields["suppress_notification"])
	assert.Equal(t, "disk swap", fields["reason"])
	assert.Equal(t, "maint-42", fields["request_id"])

	res, err = LocalDrain(f.home, f.procRoot, DrainRequest{Principal: "local:other"})
	require.NoError(t, err)
	assert.False(t, res.Refreshed)
	assert.True(t, res.WasDraining)
	assert.Equal(t, false, readMarkerFile(t, f.home)["suppress_notification"])
}

// A reason that is not at most 200 characters of printable text is refused
// with ErrInvalid, nothing changed, through the API path and the local one.
func TestDrainReasonRefused(t *testing.T) {
	cases := map[string]string{
		"too long":     strings.Repeat("é", marker.MaxReasonLen+1),
		"line break":   "disk\nswap",
		"tab":          "disk\tswap",
		"escape":       "disk \x1b[31mswap",
		"invalid utf8": "disk \xff swap",
	}
	for name, reason := range cases {
		t.Run(name, func(t *testing.T) {
			f := newFixture(t, nil)
			_, err := f.g.BeginDrain(context.Background(), DrainRequest{Reason: ptr(reason)})
			require.ErrorIs(t, err, ErrInvalid)
			assert.Contains(t, err.Error(), "reason")
			assert.Equal(t, fsm.Running, f.g.State(), "nothing changed")
			_, err = LocalDrain(f.home, f.procRoot, DrainRequest{Reason: ptr(reason)})
			require.ErrorIs(t, err, ErrInvalid)
			_, err = os.Lstat(marker.Path(f.home))
			require.ErrorIs(t, err, os.ErrNotExist, "no marker written")
		})
	}
	t.Run("200 characters are fine", func(t *testing.T) {
		f := newFixture(t, nil)
		res, err := f.g.BeginDrain(context.Background(), DrainRequest{Reason: ptr(strings.Repeat("é", marker.MaxReasonLen))})
		require.NoError(t, err)
		assert.Equal(t, strings.Repeat("é", marker.MaxReasonLen), res.Drain.Reason)
	})
}

// lockedBuffer is a bytes.Buffer safe for the gateway's goroutines.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// The reason shows in status, in the state file and in the transition's
// log line, with who asked and the request id.
func TestDrainReasonShownInStatusStateFileAndLog(t *testing.T) {
	var logs lockedBuffer
	f := newFixture(t, func(c *Config) { c.Logger = slog.New(slog.NewTextHandler(&logs, nil)) })
	_, err := f.g.BeginDrain(context.Background(), DrainRequest{Principal: "ops", RequestID: "maint-42", Reason: ptr("disk swap")})
	require.NoError(t, err)

	assert.Equal(t, "disk swap", f.g.Status().Drain.Reason)
	doc, err := readStateFile(f.home)
	require.NoError(t, err)
	require.NotNil(t, doc.Drain)
	assert.Equal(t, "disk swap", doc.Drain.Reason)
	assert.True(t, doc.Drain.Persisted)

	var line string
	for _, l := range strings.Split(logs.String(), "\n") {
		if strings.Contains(l, `msg="gateway state"`) && strings.Contains(l, "to=draining") {
			line = l
		}
	}
	require.NotEmpty(t, line, "a transition line was logged:\n%s", logs.String())
	assert.Contains(t, line, `reason="disk swap"`)
	assert.Contains(t, line, "request_id=maint-42")
	assert.Contains(t, line, "principal=ops")
}

// breakHome makes the home's file system refuse the marker write: "full"
// fills a small tmpfs, "read-only" remounts it read-only. It returns a
// function that repairs it. It skips the test where tmpfs cannot be
// mounted (not root).
type breakHome func(t *testing.T, dir string) (repair func())

var homeBreakers = map[string]struct {
	brk   breakHome
	errno syscall.Errno
}{
	"disk full": {fillDisk, syscall.ENOSPC},
	"read-only": {readOnly, syscall.EROFS},
}

// readOnly puts a read-only bind mount of dir over dir: the gateway's open
// files stay writable (a remount would be refused as busy), every path
// opened from now on is read-only. repair (also run at cleanup) removes it.
func readOnly(t *testing.T, dir string) func() {
	mountCmd(t, "--bind", dir, dir)
	var once sync.Once
	repair := func() { once.Do(func() { mountCmd(t, "-l", dir) }) }
	t.Cleanup(repair)
	mountCmd(t, "-o", "remount,bind,ro", dir)
	return repair
}

// smallDisk mounts a 1 MiB tmpfs for the test and returns its path.
func smallDisk(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a small tmpfs here (%v: %s): the unwritable-marker drill needs root", err, bytes.TrimSpace(out))
	}
	t.Cleanup(func() { _ = exec.Command("umount", "-l", dir).Run() })
	return dir
}

// mountCmd runs mount with args ("-l dir": umount -l dir).
func mountCmd(t *testing.T, args ...string) {
	t.Helper()
	cmd := exec.Command("mount", args...)
	if args[0] == "-l" {
		cmd = exec.Command("umount", args...)
	}
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%v: %s", cmd.Args, out)
}

// fillDisk writes filler until dir's file system is full; repair removes it.
func fillDisk(t *testing.T, dir string) func() {
	t.Helper()
	path := filepath.Join(dir, "filler")
	fl, err := os.Create(path)
	require.NoError(t, err)
	defer fl.Close()
	for _, size := range []int{64 << 10, 4 << 10, 512, 64, 1} {
		chunk := make([]byte, size)
		for {
			if _, err := fl.Write(chunk); err != nil {
				require.ErrorIs(t, err, syscall.ENOSPC)
				break
			}
		}
	}
	return func() { require.NoError(t, os.Remove(path)) }
}

// brokenFixture is a gateway whose home is on a small tmpfs.
func brokenFixture(t *testing.T) (*fixture, string) {
	t.Helper()
	disk := smallDisk(t)
	home := filepath.Join(disk, "home")
	f := newFixture(t, func(c *Config) { c.Home = home })
	f.home = home
	return f, disk
}

// A drain whose marker cannot be written (full disk, read-only home)
// closes the gate anyway and says so (ErrMarkerUnwritable naming the
// cause); status shows it as not persisted; the shutdown honours its flag;
// once the home is writable again, a refresh of the same request persists
// it with the fields it had.
func TestDrainOnUnwritableHomeClosesTheGate(t *testing.T) {
	for name, hb := range homeBreakers {
		t.Run(name, func(t *testing.T) {
			f, disk := brokenFixture(t)
			ctx := context.Background()
			repair := hb.brk(t, disk)

			res, err := f.g.BeginDrain(ctx, DrainRequest{Principal: "ops", SuppressNotification: ptr(true),
				RequestID: "maint-42", Reason: ptr("disk swap")})
			require.ErrorIs(t, err, ErrMarkerUnwritable)
			require.ErrorIs(t, err, hb.errno, "the cause is kept")
			u, ok := errors.AsType[*UnwritableError](err)
			require.True(t, ok)
			assert.Equal(t, marker.Path(f.home), u.Path)
			assert.Equal(t, hb.errno.Error(), u.Cause())
			assert.Equal(t, fsm.Draining, u.Result.State)
			assert.False(t, u.Result.Drain.Persisted)
			assert.Equal(t, res, u.Result)

			// Bounded: a turn the gate let in would wait for the agent.
			turnCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
			_, err = f.g.Turn(turnCtx, "alice", "hi")
			cancel()
			require.ErrorIs(t, err, ErrRefused, "the gate is closed")
			f.g.Reconcile(ctx) // a watcher tick: no marker, but the drain holds
			assert.Equal(t, fsm.Draining, f.g.State())
			d := f.g.Status().Drain
			require.NotNil(t, d)
			assert.False(t, d.Persisted)
			assert.Equal(t, "maint-42", d.RequestID)
			assert.Equal(t, "disk swap", d.Reason)
			assert.Equal(t, "active", d.Status)

			repair()
			res, err = f.g.BeginDrain(ctx, DrainRequest{Principal: "page", RequestID: "maint-42"})
			require.NoError(t, err, "the refresh gets through once the home is writable")
			assert.True(t, res.Refreshed)
			assert.True(t, res.Drain.Persisted)
			fields := readMarkerFile(t, f.home)
			assert.Equal(t, "ops", fields["principal"])
			assert.Equal(t, true, fields["suppress_notification"])
			assert.Equal(t, "disk swap", fields["reason"])
			assert.True(t, f.g.Status().Drain.Persisted)
		})
	}
}

// The drain held in memory is the active one: a cancel naming another id
// is refused naming it; a cancel ends it and reopens the gate while the
// home is still unwritable; the shutdown honours its suppress flag.
func TestUnpersistedDrainCancelAndShutdown(t *testing.T) {
	for name, hb := range homeBreakers {
		t.Run(name, func(t *testing.T) {
			f, disk := brokenFixture(t)
			ctx := context.Background()
			hb.brk(t, disk)
			_, err := f.g.BeginDrain(ctx, DrainRequest{RequestID: "maint-42", SuppressNotification: ptr(true)})
			require.ErrorIs(t, err, ErrMarkerUnwritable)

			_, err = f.g.CancelDrain(ctx, "other")
			var mismatch *MismatchError
			require.ErrorAs(t, err, &mismatch)
			assert.Equal(t, "maint-42", mismatch.Active)
			assert.Equal(t, fsm.Draining, f.g.State(), "nothing changed")

			res, err := f.g.CancelDrain(ctx, "maint-42")
			require.NoError(t, err)
			assert.True(t, res.WasDraining)
			assert.Equal(t, fsm.Running, res.State)
			assert.Nil(t, f.g.Status().Drain)
			out := f.startTurn(t, "alice", "hi") // accepted: the gate is open
			f.agent.finish("alice")
			require.NoError(t, recv(t, out).err)

			_, err = f.g.BeginDrain(ctx, DrainRequest{RequestID: "maint-43", SuppressNotification: ptr(true)})
			require.ErrorIs(t, err, ErrMarkerUnwritable)
			rep, _ := f.shutdown(t, true)
			assert.True(t, rep.Suppressed, "the drain in memory asked to suppress the broadcast")
		})
	}
}

// A marker written after the drain held in memory (a local drain, once
// space is back) supersedes it: removing that marker then resumes. And a
// drain held in memory expires by the max age like a marker.
func TestUnpersistedDrainSupersededOrExpired(t *testing.T) {
	t.Run("superseded", func(t *testing.T) {
		f, disk := brokenFixture(t)
		ctx := context.Background()
		repair := fillDisk(t, disk)
		_, err := f.g.BeginDrain(ctx, DrainRequest{RequestID: "mem"})
		require.ErrorIs(t, err, ErrMarkerUnwritable)
		repair()
		_, err = LocalDrain(f.home, f.procRoot, DrainRequest{RequestID: "disk"})
		require.NoError(t, err)
		f.g.Reconcile(ctx)
		d := f.g.Status().Drain
		require.NotNil(t, d)
		assert.Equal(t, "disk", d.RequestID)
		assert.True(t, d.Persisted)
		_, err = marker.Clear(f.home, "")
		require.NoError(t, err)
		f.g.Reconcile(ctx)
		assert.Equal(t, fsm.Running, f.g.State(), "the superseded drain does not linger")
	})
	t.Run("expired", func(t *testing.T) {
		disk := smallDisk(t)
		f, clock := clockFixture(t, func(c *Config) { c.Home = filepath.Join(disk, "home") })
		f.home = filepath.Join(disk, "home")
		ctx := context.Background()
		fillDisk(t, disk)
		_, err := f.g.BeginDrain(ctx, DrainRequest{RequestID: "mem"})
		require.ErrorIs(t, err, ErrMarkerUnwritable)
		clock.advance(f.g.cfg.MaxAge + time.Second)
		assert.Equal(t, "expired", f.g.Status().Drain.Status)
		f.g.Reconcile(ctx)
		assert.Equal(t, fsm.Running, f.g.State())
		assert.Nil(t, f.g.Status().Drain)
	})
}

// A refresh of a hand-written marker whose reason does not fit the rules
// (too long, a line break) keeps it, made to fit, instead of failing.
func TestDrainRefreshOfAHandWrittenReason(t *testing.T) {
	f := newFixture(t, nil)
	long := strings.Repeat("x", marker.MaxReasonLen+50)
	data, err := json.Marshal(map[string]any{"action": "drain", "epoch": f.g.Epoch(), "request_id": "hand",
		"requested_at": time.Now().UTC().Format(time.RFC3339), "reason": "line one\n" + long})
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(marker.Path(f.home), data, 0o600))
	res, err := f.g.BeginDrain(context.Background(), DrainRequest{RequestID: "hand"})
	require.NoError(t, err)
	assert.True(t, res.Refreshed)
	assert.True(t, res.Drain.Persisted)
	assert.Equal(t, "line one "+strings.Repeat("x", marker.MaxReasonLen-len("line one ")), res.Drain.Reason)
	assert.Equal(t, res.Drain.Reason, readMarkerFile(t, f.home)["reason"])
}

// TestExpiresAtIsRequestedAtPlusMaxAge: a drain's expires_at (docs/API.md:
// "requested_at + --drain-max-age") follows the configured max age, not
// the default, on every path that shows it: the drain's answer and status
// for a marker written through the API, status for a marker another
// process wrote, and the answer and status of a drain held in memory
// because its marker could not be written.
func TestExpiresAtIsRequestedAtPlusMaxAge(t *testing.T) {
	const maxAge = 10 * time.Minute
	require.NotEqual(t, marker.DefaultMaxAge, maxAge)
	for _, tc := range []struct {
		name     string
		fullDisk bool // the home is on a small disk the drain fills
		drain    func(t *testing.T, f *fixture) (DrainResult, error)
	}{
		{"api", false, func(_ *testing.T, f *fixture) (DrainResult, error) {
			return f.g.BeginDrain(context.Background(), DrainRequest{RequestID: "r-api"})
		}},
		{"marker from another process", false, func(t *testing.T, f *fixture) (DrainResult, error) {
			_, err := marker.Write(f.home, marker.Request{Action: marker.ActionDrain, Epoch: f.g.Epoch(), RequestID: "r-local",
				RequestedAt: f.g.cfg.Now()})
			require.NoError(t, err)
			f.g.Reconcile(context.Background())
			return DrainResult{}, nil
		}},
		{"held in memory", true, func(t *testing.T, f *fixture) (DrainResult, error) {
			disk := filepath.Dir(f.home)
			fillDisk(t, disk)
			res, err := f.g.BeginDrain(context.Background(), DrainRequest{RequestID: "r-mem"})
			require.ErrorIs(t, err, ErrMarkerUnwritable)
			return res, nil
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var f *fixture
			var clock *fakeClock
			setMaxAge := func(c *Config) { c.MaxAge = maxAge }
			if tc.fullDisk {
				home := filepath.Join(smallDisk(t), "home")
				f, clock = clockFixture(t, func(c *Config) { setMaxAge(c); c.Home = home })
				f.home = home
			} else {
				f, clock = clockFixture(t, setMaxAge)
			}
			clock.advance(time.Minute)
			requested := clock.Now()
			res, err := tc.drain(t, f)
			require.NoError(t, err)
			if !res.Drain.RequestedAt.IsZero() {
				assert.Equal(t, requested, res.Drain.RequestedAt, "the answer's requested_at")
				assert.Equal(t, requested.Add(maxAge), res.Drain.ExpiresAt, "the answer's expires_at")
			}
			d := f.g.Status().Drain
			require.NotNil(t, d)
			assert.Equal(t, requested, d.RequestedAt.UTC(), "status requested_at")
			assert.Equal(t, requested.Add(maxAge), d.ExpiresAt.UTC(), "status expires_at")
		})
	}
}

// TestStatusDrainIsTheMarker: status's drain is the marker as read
// (docs/API.md, status: action, requested_at, principal, epoch,
// suppress_notification, request_id, reason, status, persisted,
// expires_at), every field from its own field of the marker, for an
// active marker of this instance and a stale one of another boot.
func TestStatusDrainIsTheMarker(t *testing.T) {
	for _, tc := range []struct {
		name   string
		epoch  func(f *fixture) string
		status string
	}{
		{"active", func(f *fixture) string { return f.g.Epoch() }, "active"},
		{"stale", func(*fixture) string { return "boot-other:7" }, "stale"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, clock := clockFixture(t, nil)
			requested := clock.Now().Add(-time.Minute)
			req := marker.Request{Action: marker.ActionDrain, RequestedAt: requested, Principal: "alice@host",
				Epoch: tc.epoch(f), SuppressNotification: true, RequestID: "maint-42", Reason: "disk swap"}
			_, err := marker.Write(f.home, req)
			require.NoError(t, err)
			f.g.Reconcile(context.Background())
			d := f.g.Status().Drain
			require.NotNil(t, d)
			assert.Equal(t, api.DrainInfo{Action: "drain", RequestedAt: requested, Principal: "alice@host", Epoch: tc.epoch(f),
				SuppressNotification: true, RequestID: "maint-42", Reason: "disk swap", Status: tc.status, Persisted: true,
				ExpiresAt: requested.Add(f.g.cfg.MaxAge)}, *d)
		})
	}
}
