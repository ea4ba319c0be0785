package marker

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// FileName is the base name of the drain marker inside the home directory.
const FileName = ".drain_request.json"

// LockFileName is the base name of the advisory lock file that [Write] and
// [Clear] hold (flock(2), exclusive) while they change the marker. It is
// created on first use and never removed; readers never take it.
const LockFileName = ".drain_request.lock"

// ActionDrain is the only action a marker carries; [Write] fills it in when
// the request leaves Action empty.
const ActionDrain = "drain"

// tempInfix separates a target's base name from the random suffix of the
// temporary files [WriteFileAtomic] creates next to it.
const tempInfix = ".tmp-"

// Sentinel errors. Callers branch on them with errors.Is.
var (
	// ErrRequestMismatch is returned by Clear when a request id was given
	// and the active marker carries another one (or none); the marker is
	// left untouched.
	ErrRequestMismatch = errors.New("marker: request id does not match the active marker")

	// ErrNotRegular is returned (wrapped) by WriteFileAtomic, and so by
	// Write, when the target exists and is not a regular file (a directory,
	// a symlink, a device, a FIFO, ...). The target is left untouched.
	ErrNotRegular = errors.New("marker: target exists and is not a regular file")

	// ErrInvalidRequest is returned (wrapped) by Write when the request
	// cannot be written, such as an action other than "drain".
	ErrInvalidRequest = errors.New("marker: invalid request")
)

// Path returns the path of the drain marker in home.
func Path(home string) string { return filepath.Join(home, FileName) }

// lockPath returns the path of the advisory lock file in home.
func lockPath(home string) string { return filepath.Join(home, LockFileName) }

// Request is the content of a drain marker. Its JSON form is
//
//	{"action":"drain","requested_at":"2026-11-23T10:00:00Z","principal":"ops",
//	 "epoch":"<boot_id>:<starttime>","suppress_notification":false,"request_id":"<hex>"}
//
// A Request returned by [Read] holds only the fields that parsed; the others
// are zero.
type Request struct {
	// Action is always "drain" for markers written by this package.
	Action string `json:"action"`
	// RequestedAt is when the drain was requested; written in UTC RFC 3339.
	RequestedAt time.Time `json:"requested_at,omitzero"`
	// Principal names who asked (a token principal, a user name).
	Principal string `json:"principal"`
	// Epoch is the writer's instance epoch (see CurrentEpoch); "" when
	// the writer could not compute one.
	Epoch string `json:"epoch"`
	// SuppressNotification asks the gateway to skip the home-channel
	// shutdown broadcast. It is honoured only for a fresh marker of the
	// current epoch (see State.Suppresses).
	SuppressNotification bool `json:"suppress_notification"`
	// RequestID identifies this request, so a cancel can name the drain it
	// means (see Clear).
	RequestID string `json:"request_id"`
}

// Write atomically writes the drain marker in home and returns the request
// as written. An empty Action becomes "drain" (any other action is refused
// with ErrInvalidRequest); a zero RequestedAt becomes time.Now(); the time is
// always written in UTC, RFC 3339 with the sub-second part when non-zero; an
// empty RequestID becomes a random 16-hex-digit id. Rewriting the marker
// refreshes its age only if the caller passes a new (or zero) RequestedAt.
//
// Write holds the home's lock file while it writes, so it is serialised with
// other Write and Clear calls in any process, and it removes temporary files
// left in home by an earlier writer that was killed. home must exist. The
// file is replaced as by WriteFileAtomic with mode 0600, so a concurrent
// reader sees either the old marker or the new one, never a mix.
func Write(home string, req Request) (Request, error) {
	switch req.Action {
	case "":
		req.Action = ActionDrain
	case ActionDrain:
	default:
		return Request{}, fmt.Errorf("marker: write: action %q: %w", req.Action, ErrInvalidRequest)
	}
	if req.RequestedAt.IsZero() {
		req.RequestedAt = time.Now()
	}
	req.RequestedAt = req.RequestedAt.UTC() // also strips the monotonic reading
	if req.RequestID == "" {
		req.RequestID = newRequestID()
	}
	data, err := json.Marshal(req)
	if err != nil {
		return Request{}, fmt.Errorf("marker: write: encode: %w", err)
	}
	data = append(data, '\n')

	unlock, err := lockHome(home)
	if err != nil {
		return Request{}, err
	}
	defer unlock()
	removeOrphanTemps(home)
	if err := WriteFileAtomic(Path(home), data, 0o600); err != nil {
		return Request{}, err
	}
	return req, nil
}

// newRequestID returns 16 random hex digits.
func newRequestID() string {
	var b [8]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (it crashes instead)
	return hex.EncodeToString(b[:])
}

// Clear removes the drain marker in home. existed reports whether a marker
// was there.
//
// If requestID is empty, any marker is removed. Otherwise Clear removes the
// marker only if its request_id equals requestID; if not, it returns
// existed=true and ErrRequestMismatch and leaves the marker untouched. A
// contentless marker never matches a non-empty id. The comparison and the
// removal happen under the home's lock file, the same lock Write takes, so a
// marker written concurrently by another process is never removed by a
// Clear that named an older request. A missing home or marker gives
// (false, nil).
//
// When err is neither nil nor ErrRequestMismatch, existed is false and the
// marker may or may not be there.
func Clear(home, requestID string) (existed bool, err error) {
	unlock, err := lockHome(home)
	if err != nil {
		if isNotExist(err) {
			return false, nil // no home, no marker
		}
		return false, err
	}
	defer unlock()
	removeOrphanTemps(home)

	p := Path(home)
	if requestID != "" {
		data, _, err := readMarkerFile(p)
		if err != nil {
			if isNotExist(err) {
				return false, nil
			}
			return false, fmt.Errorf("marker: clear: %w", err)
		}
		req, ok := parseRequest(data)
		if !ok || req.RequestID != requestID {
			return true, ErrRequestMismatch
		}
	}
	if err := os.Remove(p); err != nil {
		if isNotExist(err) {
			return false, nil
		}
		return false, fmt.Errorf("marker: clear: %w", err)
	}
	if err := syncDir(home); err != nil {
		return true, fmt.Errorf("marker: clear: %w", err)
	}
	return true, nil
}

// lockHome takes the exclusive advisory lock of home and returns the function
// that releases it. The error wraps fs.ErrNotExist when home does not exist.
func lockHome(home string) (unlock func(), err error) {
	p := lockPath(home)
	// Read-only is enough for flock(2), and mode 0644 lets a process of
	// another user that can write the home (the server, when an operator
	// ran the CLI as root first) still take the lock.
	f, err := os.OpenFile(p, os.O_RDONLY|os.O_CREATE|syscall.O_CLOEXEC, 0o644)
	if err != nil {
		return nil, fmt.Errorf("marker: lock: %w", err)
	}
	for {
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX)
		if err != syscall.EINTR {
			break
		}
	}
	if err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("marker: lock %s: %w", p, err)
	}
	// Closing the only descriptor of this open file description releases
	// the lock; so does the death of the process.
	return func() { _ = f.Close() }, nil
}

// removeOrphanTemps removes the marker's temporary files left in home by a
// writer that died between creating and renaming them. It must be called
// with the home's lock held, so no live writer owns such a file. Errors are
// ignored: the files are harmless, and the next writer tries again.
func removeOrphanTemps(home string) {
	matches, err := filepath.Glob(filepath.Join(globEscape(home), FileName+tempInfix+"*"))
	if err != nil {
		return
	}
	for _, m := range matches {
		_ = os.Remove(m)
	}
}

// globEscape escapes the characters filepath.Glob treats specially.
func globEscape(s string) string {
	if !strings.ContainsAny(s, `*?[\`) {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		if strings.ContainsRune(`*?[\`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// WriteFileAtomic replaces path with data so that a reader sees either the
// old content or the new one, never a partial file, even if the process is
// killed at any point.
//
// It creates a temporary file next to path (same directory, so on the same
// file system), opened O_RDWR|O_CREATE|O_EXCL with mode 0600, writes data,
// sets the mode to perm, fsyncs and closes it, renames it over path and
// fsyncs the directory so the rename itself is durable. Without the file
// fsync a zero-length file would be a valid outcome of a crash after the
// rename. The temporary file is removed on every error path. If path exists
// and is not a regular file (a symlink included) it is left alone and the
// error wraps ErrNotRegular. A directory fsync refused by the file system
// as unsupported is not an error.
//
// Concurrent calls for the same path are safe (each has its own temporary
// file; the last rename wins); callers that need ordering serialise
// themselves, as Write does. Do not use it for the drain marker itself:
// Write takes the home's lock and may remove temporary files of marker
// writers that do not. See the package documentation for the NFS caveat.
func WriteFileAtomic(path string, data []byte, perm os.FileMode) (err error) {
	if fi, err := os.Lstat(path); err == nil {
		if !fi.Mode().IsRegular() {
			return fmt.Errorf("marker: write %s: %w", path, ErrNotRegular)
		}
	} else if !isNotExist(err) {
		return fmt.Errorf("marker: write %s: %w", path, err)
	}

	dir := filepath.Dir(path)
	f, tmp, err := createTemp(dir, filepath.Base(path))
	if err != nil {
		return fmt.Errorf("marker: write %s: %w", path, err)
	}
	closed, renamed := false, false
	defer func() {
		if err == nil {
			return
		}
		if !closed {
			_ = f.Close()
		}
		if !renamed {
			_ = os.Remove(tmp)
		}
	}()

	if _, err = f.Write(data); err != nil {
		return fmt.Errorf("marker: write %s: %w", path, err)
	}
	if perm.Perm() != 0o600 {
		if err = f.Chmod(perm.Perm()); err != nil {
			return fmt.Errorf("marker: write %s: %w", path, err)
		}
	}
	if err = f.Sync(); err != nil {
		return fmt.Errorf("marker: write %s: fsync: %w", path, err)
	}
	closed = true
	if err = f.Close(); err != nil {
		return fmt.Errorf("marker: write %s: %w", path, err)
	}
	if err = os.Rename(tmp, path); err != nil {
		return fmt.Errorf("marker: write %s: %w", path, err)
	}
	renamed = true
	if err = syncDir(dir); err != nil {
		return fmt.Errorf("marker: write %s: %w", path, err)
	}
	return nil
}

// createTemp creates a new temporary file for base in dir, named
// base + ".tmp-" + 16 random hex digits.
func createTemp(dir, base string) (*os.File, string, error) {
	var err error
	for range 10 {
		name := filepath.Join(dir, base+tempInfix+newRequestID())
		var f *os.File
		f, err = os.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_EXCL|syscall.O_CLOEXEC, 0o600)
		if err == nil {
			return f, name, nil
		}
		if !errors.Is(err, fs.ErrExist) {
			return nil, "", err
		}
	}
	return nil, "", err
}

// syncDir fsyncs the directory dir, so that a rename or removal in it is
// durable. File systems that cannot fsync a directory are tolerated.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("fsync dir: %w", err)
	}
	err = d.Sync()
	cerr := d.Close()
	if err != nil {
		if errors.Is(err, syscall.EINVAL) || errors.Is(err, syscall.ENOTSUP) || errors.Is(err, syscall.EOPNOTSUPP) {
			return nil
		}
		return fmt.Errorf("fsync dir: %w", err)
	}
	if cerr != nil {
		return fmt.Errorf("fsync dir: %w", cerr)
	}
	return nil
}

// isNotExist reports whether err means the file, or a directory on its
// path, does not exist.
func isNotExist(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR)
}
