package marker

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/quiesce-dev/quiesce/internal/homefile"
	"github.com/quiesce-dev/quiesce/internal/randid"
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

// Sentinel errors. Callers branch on them with errors.Is. See also
// ErrUnusable.
var (
	// ErrRequestMismatch is returned by Clear when a request id was given
	// and the active marker carries another one (or none); the marker is
	// left untouched.
	ErrRequestMismatch = errors.New("marker: request id does not match the active marker")

	// ErrInvalidRequest is returned (wrapped) by Write when the request
	// cannot be written, such as an action other than "drain".
	ErrInvalidRequest = errors.New("marker: invalid request")
	// ErrBusy is returned by Write, Edit, Clear and RemoveTemps when another
	// process has held the marker's lock for longer than LockWait (a CLI
	// stopped mid-write, say): nothing was changed.
	ErrBusy = errors.New("marker: lock held by another process")
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
	// Reason says why the drain was requested, for status and logs (at
	// most MaxReasonLen characters of printable text, see CheckReason).
	// It is an extra field the upstream reader ignores; written only when
	// not empty.
	Reason string `json:"reason,omitempty"`
}

// MaxReasonLen is the most characters (runes) a Request's Reason may hold.
const MaxReasonLen = 200

// CheckReason returns nil when reason can be a Request's Reason: valid
// UTF-8, at most MaxReasonLen characters, each printable (unicode.IsPrint:
// letters, marks, numbers, punctuation, symbols and the ASCII space; no
// control characters, tabs or line breaks). Otherwise the error wraps
// ErrInvalidRequest and says what is wrong.
func CheckReason(reason string) error {
	if !utf8.ValidString(reason) {
		return fmt.Errorf("%w: reason is not valid UTF-8", ErrInvalidRequest)
	}
	if n := utf8.RuneCountInString(reason); n > MaxReasonLen {
		return fmt.Errorf("%w: reason is %d characters long, at most %d are allowed", ErrInvalidRequest, n, MaxReasonLen)
	}
	for i, r := range reason {
		if !unicode.IsPrint(r) {
			return fmt.Errorf("%w: reason has a character that is not printable text (%U at byte %d); use letters, digits, punctuation and spaces",
				ErrInvalidRequest, r, i)
		}
	}
	return nil
}

// Write atomically writes the drain marker in home and returns the request
// as written. An empty Action becomes "drain" (any other action is refused
// with ErrInvalidRequest); a zero RequestedAt becomes time.Now(); the time is
// always written in UTC, RFC 3339 with the sub-second part when non-zero; an
// empty RequestID becomes a random 16-hex-digit id. A Reason that
// CheckReason refuses is refused (ErrInvalidRequest), nothing written.
// Rewriting the marker refreshes its age only if the caller passes a new
// (or zero) RequestedAt. Edit writes a request built from the marker that
// is there.
//
// Write holds the home's lock file while it writes, so it is serialised with
// other Write and Clear calls in any process, and it removes temporary files
// left in home by an earlier writer that was killed. home must exist. The
// file is replaced as by homefile.WriteAtomic with mode 0600, so a concurrent
// reader sees either the old marker or the new one, never a mix.
//
// A regular file at the marker path is replaced whatever it holds (corrupt,
// too large, unreadable). Anything else there (a directory, FIFO, socket,
// device or symlink), or at the lock file's path, is left alone and the
// error wraps ErrUnusable and names the path and what it is.
func Write(home string, req Request) (Request, error) {
	_, written, err := write(home, func() (State, error) { return State{}, nil },
		func(State) (Request, error) { return req, nil })
	return written, err
}

// Edit writes, as Write does, the request that edit returns for prev, the
// marker as Read sees it (judged with now, epoch and maxAge) at that
// moment. The read, edit and write happen under the home's lock file, so
// no Write, Edit or Clear of any process comes between them: a refresh
// that keeps some fields of the active request keeps those of the request
// that is really there. edit is called once, under the lock, and must not
// call Write, Edit or Clear on home (the lock is not reentrant); if it
// returns an error, nothing is written and Edit returns that error. It
// returns prev, and the request as written.
func Edit(home string, now time.Time, epoch string, maxAge time.Duration, edit func(prev State) (Request, error)) (prev State, written Request, err error) {
	return write(home, func() (State, error) {
		st, _, _ := read(Path(home), now, epoch, maxAge)
		return st, nil
	}, edit)
}

// write is Write and Edit: under the home's lock, it reads the marker
// with readPrev, builds the request with edit, and writes it.
func write(home string, readPrev func() (State, error), edit func(State) (Request, error)) (State, Request, error) {
	unlock, err := lockHome(home)
	if err != nil {
		return State{}, Request{}, err
	}
	defer unlock()
	homefile.RemoveTemps(home, FileName)
	p := Path(home)
	if _, err := lstatUsable(p); err != nil {
		if errors.Is(err, ErrUnusable) {
			return State{}, Request{}, err
		}
		return State{}, Request{}, fmt.Errorf("marker: write: %w", err)
	}
	prev, err := readPrev()
	if err != nil {
		return State{}, Request{}, err
	}
	req, err := edit(prev)
	if err != nil {
		return prev, Request{}, err
	}
	req, data, err := encodeRequest(req)
	if err != nil {
		return prev, Request{}, err
	}
	if err := homefile.WriteAtomic(p, data, 0o600); err != nil {
		if errors.Is(err, homefile.ErrNotRegular) {
			return prev, Request{}, notRegularError(p, err) // replaced since the lstat
		}
		return prev, Request{}, fmt.Errorf("marker: %w", err)
	}
	return prev, req, nil
}

// encodeRequest fills in req's defaults (see Write), checks it and
// returns it with its JSON form, newline-terminated.
func encodeRequest(req Request) (Request, []byte, error) {
	switch req.Action {
	case "":
		req.Action = ActionDrain
	case ActionDrain:
	default:
		return Request{}, nil, fmt.Errorf("marker: write: action %q: %w", req.Action, ErrInvalidRequest)
	}
	if err := CheckReason(req.Reason); err != nil {
		return Request{}, nil, fmt.Errorf("marker: write: %w", err)
	}
	if req.RequestedAt.IsZero() {
		req.RequestedAt = time.Now()
	}
	req.RequestedAt = req.RequestedAt.UTC() // also strips the monotonic reading
	if req.RequestID == "" {
		req.RequestID = randid.New()
	}
	data, err := json.Marshal(req)
	if err != nil {
		return Request{}, nil, fmt.Errorf("marker: write: encode: %w", err)
	}
	return req, append(data, '\n'), nil
}

// Clear removes the drain marker in home. existed reports whether a marker
// was there.
//
// If requestID is empty, any marker is removed. Otherwise Clear removes the
// marker only if its request_id equals requestID; if not, it returns
// existed=true and ErrRequestMismatch and leaves the marker untouched. A
// contentless marker (a regular file whose content is not understood) never
// matches a non-empty id, but Clear with an empty id removes it. The
// comparison and the removal happen under the home's lock file, the same
// lock Write takes, so a marker written concurrently by another process is
// never removed by a Clear that named an older request. A missing home or
// marker gives (false, nil).
//
// Clear removes only a regular file. Anything else at the marker path (a
// directory, FIFO, socket, device or symlink, dangling or not) is left for
// an operator to look at: Clear returns existed=true and an error wrapping
// ErrUnusable that names the path and what it is. So does a regular marker
// Clear cannot read when requestID is not empty. An unusable lock file
// gives existed=false and an error wrapping ErrUnusable that names it.
//
// When err is none of nil, ErrRequestMismatch and ErrUnusable, existed is
// false and the marker may or may not be there.
func Clear(home, requestID string) (existed bool, err error) {
	unlock, err := lockHome(home)
	if err != nil {
		if homefile.IsNotExist(err) {
			return false, nil // no home, no marker
		}
		return false, err
	}
	defer unlock()
	homefile.RemoveTemps(home, FileName)

	p := Path(home)
	fi, err := lstatUsable(p)
	switch {
	case errors.Is(err, ErrUnusable):
		return true, err
	case err != nil:
		return false, fmt.Errorf("marker: clear: %w", err)
	case fi == nil:
		return false, nil
	}
	if requestID != "" {
		data, _, err := readMarkerFile(p)
		switch {
		case err == nil:
		case homefile.IsNotExist(err):
			return false, nil
		case errors.Is(err, errTooLarge):
			return true, ErrRequestMismatch // contentless
		case errors.Is(err, ErrUnusable):
			return true, err
		default:
			return false, fmt.Errorf("marker: clear: %w", err)
		}
		req, ok := parseRequest(data)
		if !ok || req.RequestID != requestID {
			return true, ErrRequestMismatch
		}
	}
	// unlink(2), not os.Remove: should the marker have been replaced by a
	// directory since the lstat, it fails instead of removing it.
	if err := syscall.Unlink(p); err != nil {
		if homefile.IsNotExist(err) {
			return false, nil
		}
		if fi, lerr := os.Lstat(p); lerr == nil && !fi.Mode().IsRegular() {
			return true, unusableError(p, fi)
		}
		return false, fmt.Errorf("marker: clear: %w", &fs.PathError{Op: "unlink", Path: p, Err: err})
	}
	if err := homefile.SyncDir(home); err != nil {
		return true, fmt.Errorf("marker: clear: %w", err)
	}
	return true, nil
}

// RemoveTemps removes the marker's temp files left in home by a writer
// that was killed between creating and renaming one, and returns how many.
// It holds the home's marker lock, so a live writer in another process (a
// local "quiesce drain") never loses its temp file. A missing home is not
// an error.
func RemoveTemps(home string) (int, error) {
	unlock, err := lockHome(home)
	if err != nil {
		if homefile.IsNotExist(err) {
			return 0, nil
		}
		return 0, err
	}
	defer unlock()
	return homefile.RemoveTemps(home, FileName), nil
}

// LockWait bounds how long a marker write, clear or clean-up waits for
// the marker's lock held by another process; lockRetry is how often it
// tries again meanwhile (contention is rare and short: one write).
const (
	LockWait  = time.Second
	lockRetry = 5 * time.Millisecond
)

// lockHome takes the exclusive advisory lock of home and returns the function
// that releases it. The error wraps fs.ErrNotExist when home does not exist.
func lockHome(home string) (unlock func(), err error) {
	p := lockPath(home)
	// Read-only is enough for flock(2), and mode 0644 lets a process of
	// another user that can write the home (the server, when an operator
	// ran the CLI as root first) still take the lock. homefile.Open never
	// blocks on a FIFO and never follows a symlink, and refuses anything
	// but a regular file with an error naming it.
	f, err := homefile.Open(p, os.O_RDONLY|os.O_CREATE, 0o644)
	if err != nil {
		if errors.Is(err, homefile.ErrNotRegular) {
			return nil, notRegularError(p, err)
		}
		return nil, fmt.Errorf("marker: lock: %w", err)
	}
	// Tried without blocking, again every lockRetry until LockWait: a
	// blocking flock cannot be given up, and a holder that never lets go
	// (a CLI stopped with Ctrl-Z mid-write) must not hold the gateway's
	// drain, cancel or shutdown with it.
	deadline := time.Now().Add(LockWait)
	for {
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == syscall.EINTR {
			continue
		}
		if err != syscall.EWOULDBLOCK || time.Now().After(deadline) {
			break
		}
		time.Sleep(lockRetry)
	}
	if err == syscall.EWOULDBLOCK {
		_ = f.Close()
		return nil, fmt.Errorf("%w: %s for over %v: is a quiesce drain or cancel stopped mid-write?", ErrBusy, p, LockWait)
	}
	if err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("marker: lock %s: %w", p, err)
	}
	// Closing the only descriptor of this open file description releases
	// the lock; so does the death of the process.
	return func() { _ = f.Close() }, nil
}
