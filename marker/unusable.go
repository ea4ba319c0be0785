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
	return fmt.Errorf("%w: %s is %s", ErrUnusable, p, homefile.Describe(p, fi))
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
