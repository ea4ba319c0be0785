package marker

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"syscall"

	"github.com/quiesce-dev/quiesce/internal/homefile"
)

// ErrUnusable is wrapped by Write and Clear when the marker path (or the
// lock file next to it) holds something the package will not replace or
// remove: a directory, FIFO, socket, device or symlink (dangling or not).
// Clear with a request id also returns it when the marker is a regular file
// it cannot read, so the id cannot be checked. Nothing was changed; the
// error names the path and what is there, for an operator to look at. Read
// reports such a marker as Contentless (it drains).
var ErrUnusable = errors.New("marker: marker file unusable")

// unusableError returns the ErrUnusable error for the non-regular file p,
// whose Lstat information is fi.
func unusableError(p string, fi fs.FileInfo) error {
	return fmt.Errorf("%w: %s is %s", ErrUnusable, p, describe(p, fi))
}

// unreadableError returns the ErrUnusable error for the regular file p
// that could not be read because of err.
func unreadableError(p string, err error) error {
	var errno syscall.Errno
	if errors.As(err, &errno) {
		err = errno // the rest of the chain repeats the path
	}
	return fmt.Errorf("%w: %s is unreadable: %w", ErrUnusable, p, err)
}

// notRegularError turns an error wrapping homefile.ErrNotRegular for p
// (p changed between a check and an open) into the ErrUnusable error,
// describing what p is now when it can.
func notRegularError(p string, err error) error {
	if fi, lerr := os.Lstat(p); lerr == nil && !fi.Mode().IsRegular() {
		return unusableError(p, fi)
	}
	return fmt.Errorf("%w: %w", ErrUnusable, err)
}

// describe names what the non-regular file p is, for error messages and
// logs: "a directory", "a FIFO", "a symlink to /x", "a dangling symlink to
// /x", ... It reads a symlink's target but never opens p.
func describe(p string, fi fs.FileInfo) string {
	m := fi.Mode()
	switch {
	case m&fs.ModeSymlink != 0:
		target, err := os.Readlink(p)
		if err != nil {
			return "a symlink"
		}
		if _, err := os.Stat(p); err != nil && homefile.IsNotExist(err) {
			return fmt.Sprintf("a dangling symlink to %q", target)
		}
		return fmt.Sprintf("a symlink to %q", target)
	case m.IsDir():
		return "a directory"
	case m&fs.ModeNamedPipe != 0:
		return "a FIFO"
	case m&fs.ModeSocket != 0:
		return "a socket"
	case m&fs.ModeCharDevice != 0:
		return "a character device"
	case m&fs.ModeDevice != 0:
		return "a block device"
	case m.IsRegular():
		return "a regular file"
	}
	return fmt.Sprintf("not a regular file (mode %v)", m)
}

// lstatUsable reports whether the marker at p may be replaced or removed:
// it returns (nil, nil) when p does not exist, its information when it is
// a regular file, and the ErrUnusable error (with its information) when it
// is anything else. Other errors are returned as they are.
func lstatUsable(p string) (fs.FileInfo, error) {
	fi, err := os.Lstat(p)
	if err != nil {
		if homefile.IsNotExist(err) {
			return nil, nil
		}
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return fi, unusableError(p, fi)
	}
	return fi, nil
}
