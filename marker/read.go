package marker

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"
	"unicode/utf8"

	"github.com/quiesce-dev/quiesce/internal/homefile"
)

// DefaultMaxAge is the maximum age of a marker that Read honours when the
// caller passes a maxAge <= 0.
const DefaultMaxAge = time.Hour

// maxMarkerSize bounds how much of the marker Read loads; a larger file is
// contentless.
const maxMarkerSize = 1 << 20

// Status classifies the drain marker as seen by Read.
type Status int

const (
	// Absent means there is no marker.
	Absent Status = iota
	// Active means a marker of this instance (or a legacy marker) that is
	// fresh: it requests a drain.
	Active
	// Contentless means a marker whose content could not be understood
	// (empty, not JSON, not an object, wrong field types, too large,
	// unreadable, or not a regular file at all): it requests a drain (fail
	// safe) and never suppresses.
	Contentless
	// Stale means a marker written by another instantiation of the machine
	// or container (its epoch differs): it is ignored.
	Stale
	// Expired means a marker older than the maximum age: it is ignored.
	Expired
)

// String returns "absent", "active", "contentless", "stale" or "expired"
// ("status(N)" for other values).
func (s Status) String() string {
	switch s {
	case Absent:
		return "absent"
	case Active:
		return "active"
	case Contentless:
		return "contentless"
	case Stale:
		return "stale"
	case Expired:
		return "expired"
	}
	return fmt.Sprintf("status(%d)", int(s))
}

// State is the outcome of a Read.
type State struct {
	// Status classifies the marker.
	Status Status
	// Request holds the fields that parsed; it is zero when the marker is
	// absent or contentless (or expired after being contentless). A
	// requested_at that did not parse is left zero.
	Request Request
	// Legacy reports a marker that parsed but carries no epoch, or that was
	// read by an instance whose own epoch is unknown: its presence drains
	// but it never suppresses.
	Legacy bool
	// Age is how old the marker is: measured from requested_at, or from
	// the file's modification time (see AgeFromMtime). Never negative.
	Age time.Duration
	// AgeFromMtime reports that Age was measured from the file's
	// modification time because requested_at was missing, unparseable or
	// later than the reader's clock, or the marker is contentless.
	AgeFromMtime bool
}

// Drains reports whether the marker requests a drain: it is Active or
// Contentless.
func (s State) Drains() bool { return s.Status == Active || s.Status == Contentless }

// Suppresses reports whether the home-channel shutdown broadcast should be
// suppressed: the marker is Active, not Legacy, and suppress_notification is
// JSON true.
func (s State) Suppresses() bool {
	return s.Status == Active && !s.Legacy && s.Request.SuppressNotification
}

// fileKey identifies one version of the marker file, for log-once.
type fileKey struct {
	status Status
	mode   fs.FileMode
	size   int64
	mtime  int64
	hash   uint64
}

// Read reports what the drain marker in home says. It never returns an
// error, never panics and never blocks: a marker that is not a regular file
// (a directory, FIFO, socket, device, or a symlink, dangling or not) or that
// cannot be read is Contentless (fail safe: it drains, never suppresses),
// aged by its own modification time (lstat), and is never opened unless it
// is a regular file. [Reader] logs such a marker once.
//
// now is the caller's clock; epoch is this instance's epoch ("" disables the
// staleness check, so markers are honoured by presence and age); maxAge <= 0
// means DefaultMaxAge. The rules are in the package documentation. Read
// takes no lock and ignores temporary files left by writers.
func Read(home string, now time.Time, epoch string, maxAge time.Duration) State {
	st, _, _ := read(Path(home), now, epoch, maxAge)
	return st
}

// read is Read that also returns the identity of the file version it saw
// and, for a marker that is unusable (not a regular file, unreadable), the
// error that says why (wrapping ErrUnusable).
func read(path string, now time.Time, epoch string, maxAge time.Duration) (st State, key fileKey, problem error) {
	defer func() {
		// Read must not panic; nothing below should, but if it does, fail
		// safe (a drain) rather than take the caller down.
		if r := recover(); r != nil {
			st, key = State{Status: Contentless, AgeFromMtime: true}, fileKey{status: Contentless}
			problem = fmt.Errorf("%w: reading %s panicked: %v", ErrUnusable, path, r)
		}
	}()
	if maxAge <= 0 {
		maxAge = DefaultMaxAge
	}

	data, fi, err := readMarkerFile(path)
	if err != nil {
		if homefile.IsNotExist(err) {
			return State{Status: Absent}, fileKey{status: Absent}, nil
		}
		// Present but not a readable regular file of a sane size (a
		// directory, FIFO, symlink, unreadable, too large): fail safe.
		st = State{Status: Contentless, AgeFromMtime: true}
		if fi != nil {
			st.Age = ageSince(now, fi.ModTime())
			key = fileKey{mode: fi.Mode(), size: fi.Size(), mtime: fi.ModTime().UnixNano()}
		}
		if st.Age > maxAge {
			st.Status = Expired
		}
		key.status = st.Status
		if errors.Is(err, ErrUnusable) {
			problem = err
		}
		return st, key, problem
	}
	key = fileKey{mode: fi.Mode(), size: fi.Size(), mtime: fi.ModTime().UnixNano(), hash: fnv64a(data)}

	req, ok := parseRequest(data)
	if !ok {
		st = State{Status: Contentless, Age: ageSince(now, fi.ModTime()), AgeFromMtime: true}
	} else {
		st = State{Status: Active, Request: req}
		if !req.RequestedAt.IsZero() && !req.RequestedAt.After(now) {
			st.Age = now.Sub(req.RequestedAt)
		} else {
			st.Age, st.AgeFromMtime = ageSince(now, fi.ModTime()), true
		}
		switch {
		case req.Epoch == "" || epoch == "":
			st.Legacy = true
		case req.Epoch != epoch:
			st.Status = Stale
		}
	}
	if st.Status != Stale && st.Age > maxAge {
		st.Status = Expired
	}
	key.status = st.Status
	return st, key, nil
}

// ageSince returns now - t, or 0 when t is in the future.
func ageSince(now, t time.Time) time.Duration {
	if d := now.Sub(t); d > 0 {
		return d
	}
	return 0
}

// readMarkerFile reads the marker at p. It opens nothing but a regular
// file: p is examined with lstat first, and the open itself (homefile.Open)
// refuses a FIFO, device, directory or symlink without blocking should p
// change in between. It reads at most maxMarkerSize bytes.
//
// The error is one homefile.IsNotExist accepts when there is no marker,
// errTooLarge for a larger regular file, and wraps ErrUnusable for
// anything else (not a regular file, unreadable). fi is p's information
// when known, also on an error.
func readMarkerFile(p string) (data []byte, fi os.FileInfo, err error) {
	lfi, err := os.Lstat(p)
	if err != nil {
		if homefile.IsNotExist(err) {
			return nil, nil, errAbsent // the common case, every poll
		}
		return nil, nil, unreadableError(p, err)
	}
	if !lfi.Mode().IsRegular() {
		return nil, lfi, unusableError(p, lfi)
	}
	if lfi.Size() > maxMarkerSize {
		return nil, lfi, errTooLarge
	}
	data, fi, truncated, err := homefile.ReadFile(p, maxMarkerSize)
	switch {
	case err == nil:
	case homefile.IsNotExist(err):
		return nil, nil, err // removed since the lstat
	case errors.Is(err, homefile.ErrNotRegular):
		return nil, lfi, notRegularError(p, err) // replaced since the lstat
	default:
		return nil, lfi, unreadableError(p, err)
	}
	if truncated {
		return nil, fi, errTooLarge
	}
	return data, fi, nil
}

var errTooLarge = errors.New("marker: file too large")

// errAbsent is readMarkerFile's error for a missing marker.
var errAbsent = fmt.Errorf("marker: no marker file: %w", fs.ErrNotExist)

// Field names of the marker, matched exactly.
const (
	fieldAction      = "action"
	fieldRequestedAt = "requested_at"
	fieldPrincipal   = "principal"
	fieldEpoch       = "epoch"
	fieldSuppress    = "suppress_notification"
	fieldRequestID   = "request_id"
	fieldReason      = "reason"
)

// parseRequest decodes a marker. ok is false when the content is not a
// valid UTF-8 JSON object whose known fields have the right types (strings,
// and a boolean for suppress_notification; null counts as missing). A
// reason is kept as written (a hand-written one may be longer than
// MaxReasonLen: it is shown, not refused). An
// unparseable requested_at (see parseTime) leaves RequestedAt zero and ok
// true.
func parseRequest(data []byte) (req Request, ok bool) {
	if !utf8.Valid(data) {
		return Request{}, false
	}
	trimmed := bytes.TrimLeft(data, " \t\r\n")
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return Request{}, false
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(data, &fields); err != nil {
		return Request{}, false
	}
	str := func(name string, dst *string) bool {
		raw, found := fields[name]
		if !found || isNull(raw) {
			return true
		}
		if len(raw) == 0 || raw[0] != '"' {
			return false
		}
		return json.Unmarshal(raw, dst) == nil
	}
	var ts string
	if !str(fieldAction, &req.Action) || !str(fieldPrincipal, &req.Principal) ||
		!str(fieldEpoch, &req.Epoch) || !str(fieldRequestID, &req.RequestID) ||
		!str(fieldRequestedAt, &ts) || !str(fieldReason, &req.Reason) {
		return Request{}, false
	}
	if raw, found := fields[fieldSuppress]; found && !isNull(raw) {
		switch string(raw) {
		case "true":
			req.SuppressNotification = true
		case "false":
		default:
			return Request{}, false
		}
	}
	if ts != "" {
		req.RequestedAt, _ = parseTime(ts)
	}
	return req, true
}

// isNull reports whether raw is the JSON literal null.
func isNull(raw json.RawMessage) bool { return string(raw) == "null" }

// fnv64a hashes b with 64-bit FNV-1a.
func fnv64a(b []byte) uint64 {
	h := uint64(14695981039346656037)
	for _, c := range b {
		h ^= uint64(c)
		h *= 1099511628211
	}
	return h
}
