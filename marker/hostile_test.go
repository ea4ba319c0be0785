package marker_test

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/quiesce-dev/quiesce/marker"
)

// blockTimeout bounds every wait for a call that must not block. It only
// turns a hang into a failure; the calls return at once.
const blockTimeout = 10 * time.Second

// Hostile kinds of marker file that makeHostile lays out.
const (
	hostileDir         = "directory"
	hostileFullDir     = "non-empty directory"
	hostileFIFO        = "FIFO"
	hostileSocket      = "socket"
	hostileCharDevice  = "character device"
	hostileDangling    = "dangling symlink"
	hostileLinkToFile  = "symlink to a regular file"
	hostileLinkToDev   = "symlink to a device"
	hostileUnreadable  = "unreadable regular file"
	hostileLinkToValid = "symlink to a valid marker"
)

// hostileWhat is what the error of Write and Clear must say each kind is.
var hostileWhat = map[string]string{
	hostileDir:         "is a directory",
	hostileFullDir:     "is a directory",
	hostileFIFO:        "is a FIFO",
	hostileSocket:      "is a socket",
	hostileCharDevice:  "is a character device",
	hostileDangling:    "is a dangling symlink to ",
	hostileLinkToFile:  "is a symlink to ",
	hostileLinkToDev:   `is a symlink to "/dev/null"`,
	hostileLinkToValid: "is a symlink to ",
}

// makeHostile puts a file of the given kind at p, with modification time
// mtime (of the file itself, not of a symlink's target), skipping the test
// when this system or user cannot make one.
func makeHostile(t *testing.T, p, kind string, mtime time.Time) {
	t.Helper()
	elsewhere := t.TempDir()
	switch kind {
	case hostileDir:
		require.NoError(t, os.Mkdir(p, 0o700))
	case hostileFullDir:
		require.NoError(t, os.Mkdir(p, 0o700))
		require.NoError(t, os.WriteFile(filepath.Join(p, "notes"), []byte("look at me"), 0o600))
	case hostileFIFO:
		require.NoError(t, syscall.Mkfifo(p, 0o600))
	case hostileSocket:
		if len(p) >= 100 {
			t.Skipf("path too long for a unix socket: %s", p)
		}
		fd, err := syscall.Socket(syscall.AF_UNIX, syscall.SOCK_STREAM, 0)
		require.NoError(t, err)
		defer syscall.Close(fd)
		require.NoError(t, syscall.Bind(fd, &syscall.SockaddrUnix{Name: p}))
	case hostileCharDevice:
		if err := unix.Mknod(p, unix.S_IFCHR|0o600, int(unix.Mkdev(1, 3))); err != nil {
			t.Skipf("cannot make a device node: %v", err)
		}
	case hostileDangling:
		require.NoError(t, os.Symlink(filepath.Join(elsewhere, "nowhere"), p))
	case hostileLinkToFile:
		target := filepath.Join(elsewhere, "real")
		require.NoError(t, os.WriteFile(target, []byte("precious"), 0o600))
		require.NoError(t, os.Symlink(target, p))
	case hostileLinkToValid:
		target := filepath.Join(elsewhere, "marker.json")
		require.NoError(t, os.WriteFile(target, []byte(markerJSON("action", q("drain"), "epoch", q(epochA), "request_id", q("abc123"))), 0o600))
		require.NoError(t, os.Symlink(target, p))
	case hostileLinkToDev:
		if _, err := os.Stat("/dev/null"); err != nil {
			t.Skipf("no /dev/null: %v", err)
		}
		require.NoError(t, os.Symlink("/dev/null", p))
	case hostileUnreadable:
		if os.Geteuid() == 0 {
			t.Skip("root reads any file")
		}
		require.NoError(t, os.WriteFile(p, []byte(markerJSON("action", q("drain"))), 0o000))
	default:
		require.Fail(t, fmt.Sprintf("unknown hostile kind %q", kind))
	}
	if !mtime.IsZero() {
		ts := unix.NsecToTimespec(mtime.UnixNano())
		require.NoError(t, unix.UtimesNanoAt(unix.AT_FDCWD, p, []unix.Timespec{ts, ts}, unix.AT_SYMLINK_NOFOLLOW))
	}
}

// fileSnapshot is what must not change about a path (and, for a symlink,
// its target; for a directory, its entries).
type fileSnapshot struct {
	mode    fs.FileMode
	mtime   time.Time
	link    string
	target  string   // content of a symlink's regular target
	entries []string // a directory's entries
}

// snapshot records p as a fileSnapshot.
func snapshot(t *testing.T, p string) fileSnapshot {
	t.Helper()
	fi, err := os.Lstat(p)
	require.NoError(t, err, "%s is there", p)
	s := fileSnapshot{mode: fi.Mode(), mtime: fi.ModTime()}
	switch {
	case fi.Mode()&fs.ModeSymlink != 0:
		s.link, err = os.Readlink(p)
		require.NoError(t, err)
		if tfi, err := os.Stat(p); err == nil && tfi.Mode().IsRegular() {
			data, err := os.ReadFile(p)
			require.NoError(t, err)
			s.target = string(data)
		}
	case fi.IsDir():
		des, err := os.ReadDir(p)
		require.NoError(t, err)
		for _, de := range des {
			s.entries = append(s.entries, de.Name())
		}
	}
	return s
}

// callWithDeadline runs f in a goroutine and fails the test if it does not
// return within blockTimeout.
func callWithDeadline(t *testing.T, what string, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		f()
	}()
	select {
	case <-done:
	case <-time.After(blockTimeout):
		require.FailNow(t, "blocked", "%s did not return within %v", what, blockTimeout)
	}
}

// TestWriteAndClearRefuseUnusableMarker: with something other than a
// regular file at the marker path, Write, Clear and Clear by id return an
// error wrapping ErrUnusable that names the path and what is there, return
// promptly, and change nothing.
func TestWriteAndClearRefuseUnusableMarker(t *testing.T) {
	kinds := []string{hostileDir, hostileFullDir, hostileFIFO, hostileSocket, hostileCharDevice,
		hostileDangling, hostileLinkToFile, hostileLinkToValid, hostileLinkToDev}
	for _, kind := range kinds {
		t.Run(kind, func(t *testing.T) {
			home := t.TempDir()
			p := marker.Path(home)
			makeHostile(t, p, kind, t0.Add(-time.Minute))
			before := snapshot(t, p)
			require.Equal(t, marker.Contentless, marker.Read(home, t0, epochA, time.Hour).Status, "reads as contentless")

			check := func(op string, err error) {
				t.Helper()
				require.Error(t, err, op)
				require.True(t, errors.Is(err, marker.ErrUnusable), "%s: errors.Is(ErrUnusable): %v", op, err)
				require.Contains(t, err.Error(), p, "%s: the error names the path", op)
				require.Contains(t, err.Error(), hostileWhat[kind], "%s: the error says what is there", op)
				require.False(t, errors.Is(err, marker.ErrRequestMismatch), op)
				require.Equal(t, before, snapshot(t, p), "%s: the file is unchanged", op)
				require.Empty(t, tempFiles(t, home), "%s: no temp file left", op)
			}
			callWithDeadline(t, "Write", func() {
				_, err := marker.Write(home, marker.Request{Epoch: epochA})
				check("Write", err)
			})
			callWithDeadline(t, "Clear", func() {
				existed, err := marker.Clear(home, "")
				check("Clear", err)
				require.True(t, existed, "something is at the marker path")
			})
			callWithDeadline(t, "Clear by id", func() {
				existed, err := marker.Clear(home, "abc123")
				check("Clear by id", err)
				require.True(t, existed)
			})
			require.Equal(t, marker.Contentless, marker.Read(home, t0, epochA, time.Hour).Status, "still drains")
		})
	}
}

// TestWriteAndClearCorruptRegularMarker: a regular file whose content is
// not understood is not unusable: Write replaces it, Clear removes it, and
// Clear by id refuses with ErrRequestMismatch.
func TestWriteAndClearCorruptRegularMarker(t *testing.T) {
	big := strings.Repeat(" ", 2<<20) + `{"request_id":"abc123"}`
	for name, content := range map[string]string{"corrupt": "{not json", "empty": "", "too large": big} {
		t.Run(name, func(t *testing.T) {
			home := t.TempDir()
			writeRaw(t, home, content, time.Time{})
			require.Equal(t, marker.Contentless, marker.Read(home, time.Now(), epochA, 0).Status)

			existed, err := marker.Clear(home, "abc123")
			require.ErrorIs(t, err, marker.ErrRequestMismatch)
			require.True(t, existed)
			data, err := os.ReadFile(marker.Path(home))
			require.NoError(t, err)
			require.Equal(t, content, string(data), "left untouched")

			req, err := marker.Write(home, marker.Request{Epoch: epochA})
			require.NoError(t, err, "Write replaces a corrupt marker")
			st := marker.Read(home, time.Now(), epochA, 0)
			require.Equal(t, marker.Active, st.Status)
			require.Equal(t, req, st.Request)

			writeRaw(t, home, content, time.Time{})
			existed, err = marker.Clear(home, "")
			require.NoError(t, err, "Clear removes a corrupt marker")
			require.True(t, existed)
			require.NoFileExists(t, marker.Path(home))
		})
	}
	t.Run("unreadable", func(t *testing.T) {
		home := t.TempDir()
		makeHostile(t, marker.Path(home), hostileUnreadable, time.Time{})
		require.Equal(t, marker.Contentless, marker.Read(home, time.Now(), epochA, 0).Status)
		existed, err := marker.Clear(home, "abc123")
		require.ErrorIs(t, err, marker.ErrUnusable, "an id cannot be checked against an unreadable marker")
		require.Contains(t, err.Error(), marker.Path(home))
		require.True(t, existed)
		require.FileExists(t, marker.Path(home))
		_, err = marker.Write(home, marker.Request{Epoch: epochA})
		require.NoError(t, err, "Write replaces an unreadable regular marker")
		require.Equal(t, marker.Active, marker.Read(home, time.Now(), epochA, 0).Status)
	})
}

// TestReadNeverBlocksOnFIFO: a FIFO at the marker path, with or without a
// writer holding it open, reads as contentless at once, through Read and a
// Reader.
func TestReadNeverBlocksOnFIFO(t *testing.T) {
	home := t.TempDir()
	p := marker.Path(home)
	require.NoError(t, syscall.Mkfifo(p, 0o600))
	callWithDeadline(t, "Read of a FIFO", func() {
		require.Equal(t, marker.Contentless, marker.Read(home, time.Now(), epochA, 0).Status)
	})
	logger, _ := newLogger()
	r := &marker.Reader{Home: home, Epoch: epochA, Logger: logger}
	callWithDeadline(t, "Reader.Read of a FIFO", func() {
		require.Equal(t, marker.Contentless, r.Read().Status)
	})

	// A writer holds the FIFO open (O_RDWR never blocks on Linux): reading
	// it would block until data arrives; Read must not read it.
	w, err := os.OpenFile(p, os.O_RDWR, 0)
	require.NoError(t, err)
	defer w.Close()
	callWithDeadline(t, "Read of a FIFO with a writer", func() {
		require.Equal(t, marker.Contentless, marker.Read(home, time.Now(), epochA, 0).Status)
	})
}

// TestUnusableLockFile: a FIFO, directory or symlink at the lock file's
// path makes Write and Clear fail at once with an error that wraps
// ErrUnusable and names the lock file; the marker is unchanged.
func TestUnusableLockFile(t *testing.T) {
	for _, kind := range []string{hostileFIFO, hostileDir, hostileDangling, hostileLinkToFile, hostileLinkToDev} {
		t.Run(kind, func(t *testing.T) {
			home := t.TempDir()
			req, err := marker.Write(home, marker.Request{Epoch: epochA})
			require.NoError(t, err)
			lock := filepath.Join(home, marker.LockFileName)
			require.NoError(t, os.Remove(lock))
			makeHostile(t, lock, kind, time.Time{})
			before := snapshot(t, lock)

			for _, op := range []string{"Write", "Clear", "Clear by id"} {
				callWithDeadline(t, op, func() {
					var err error
					switch op {
					case "Write":
						_, err = marker.Write(home, marker.Request{Epoch: epochA})
					case "Clear":
						_, err = marker.Clear(home, "")
					default:
						_, err = marker.Clear(home, req.RequestID)
					}
					require.Error(t, err, op)
					require.True(t, errors.Is(err, marker.ErrUnusable), "%s: %v", op, err)
					require.Contains(t, err.Error(), lock, "%s: the error names the lock file", op)
				})
			}
			require.Equal(t, before, snapshot(t, lock), "the lock path is unchanged")
			st := marker.Read(home, time.Now(), epochA, 0)
			require.Equal(t, marker.Active, st.Status, "the marker is unchanged")
			require.Equal(t, req, st.Request)
		})
	}
}

// TestReaderLogsUnusableMarkerOnce: a Reader logs an unusable marker once
// per version of it, naming the path and what is there.
func TestReaderLogsUnusableMarkerOnce(t *testing.T) {
	const msg = "unusable marker drains"
	logger, logs := newLogger()
	home := t.TempDir()
	p := marker.Path(home)
	r := &marker.Reader{Home: home, Epoch: epochA, MaxAge: time.Hour, Now: func() time.Time { return t0 }, Logger: logger}
	makeHostile(t, p, hostileFIFO, t0.Add(-time.Minute))
	for range 3 {
		st := r.Read()
		require.Equal(t, marker.Contentless, st.Status)
		require.True(t, st.Drains())
		require.False(t, st.Suppresses())
	}
	require.Equal(t, 1, logs.countMsg(t, msg), "logged once")
	rec := logs.logRecords(t)[0]
	require.Equal(t, "WARN", rec["level"])
	require.Equal(t, p, rec["path"])
	require.Contains(t, rec["error"], p)
	require.Contains(t, rec["error"], "is a FIFO")

	// Something else in its place is a new marker: logged again, once.
	require.NoError(t, os.Remove(p))
	makeHostile(t, p, hostileDir, t0.Add(-2*time.Minute))
	r.Read()
	r.Read()
	require.Equal(t, 2, logs.countMsg(t, msg))
	recs := logs.logRecords(t)
	require.Contains(t, recs[len(recs)-1]["error"], "is a directory")

	// Once it is older than the max age it is expired, logged as such.
	require.NoError(t, os.Chtimes(p, t0.Add(-2*time.Hour), t0.Add(-2*time.Hour)))
	require.Equal(t, marker.Expired, r.Read().Status)
	require.Equal(t, marker.Expired, r.Read().Status)
	require.Equal(t, 1, logs.countMsg(t, "expired marker ignored"))
	recs = logs.logRecords(t)
	require.Contains(t, recs[len(recs)-1]["error"], "is a directory")
	require.Equal(t, 2, logs.countMsg(t, msg), "not logged as draining once expired")

	// A corrupt regular marker is contentless but not unusable: not logged.
	require.NoError(t, os.Remove(p))
	writeRaw(t, home, "{", t0.Add(-time.Minute))
	require.Equal(t, marker.Contentless, r.Read().Status)
	require.Equal(t, 2, logs.countMsg(t, msg))
}
