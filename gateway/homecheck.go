package gateway

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/quiesce-dev/quiesce/internal/homefile"
	"github.com/quiesce-dev/quiesce/marker"
)

// inPlaceFiles are the home files New opens where they are (to append or
// rewrite), so the gateway's user must be able to read and write them;
// the others (state, lock) are replaced by rename and need only a
// writable home.
var inPlaceFiles = map[string]bool{OutboxFileName: true, SpoolFileName: true, RejectedFileName: true, WebhookPendingFileName: true}

// CheckHome reports whether New could start a gateway on home, without
// creating, locking for more than a probe, or changing anything (for
// "quiesce check"). It checks, in New's order:
//
//   - home is a directory this process may write, or does not exist and
//     its nearest existing parent is a directory this process may write
//     (New creates it);
//   - every file of the home that exists (gateway_state.json, outbox,
//     spool, webhook record, gateway.lock, the marker's lock file) is a
//     regular file, not a FIFO, directory, device or symlink, and those
//     opened in place are readable and writable;
//   - no live gateway holds home.
//
// It returns nil when all hold. Otherwise the error names the path and
// what to do, and wraps ErrLocked (naming the holder's pid; the other
// checks passed) or ErrHome; a file system error behind ErrHome (EROFS,
// EIO, EACCES...) is wrapped too, so callers can tell a transient cause
// from one an operator must fix.
func CheckHome(home string) error {
	if home == "" {
		return fmt.Errorf("%w: empty home", ErrInvalid)
	}
	fi, err := os.Stat(home)
	switch {
	case homefile.IsNotExist(err):
		return checkCreatable(home)
	case err != nil:
		return fmt.Errorf("%w: %w", ErrHome, err)
	case !fi.IsDir():
		return fmt.Errorf("%w: %s is not a directory (%s): give --home a directory", ErrHome, home, fi.Mode().Type())
	}
	if err := writable(home); err != nil {
		return err
	}
	for _, name := range append(homeFiles, marker.LockFileName) {
		if err := checkHomeFile(filepath.Join(home, name), inPlaceFiles[name]); err != nil {
			return err
		}
	}
	live, pid, err := HomeLive(home)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrHome, err)
	}
	if live {
		if pid == "" {
			pid = "unknown"
		}
		return fmt.Errorf("%w: %s is held by pid %s (see %s); stop that gateway first, or give this one another --home",
			ErrLocked, home, pid, LockFileName)
	}
	return nil
}

// checkCreatable checks that the missing directory home can be created:
// its nearest existing ancestor is a directory this process may write.
func checkCreatable(home string) error {
	dir := filepath.Dir(filepath.Clean(home))
	for {
		fi, err := os.Stat(dir)
		if err == nil {
			if !fi.IsDir() {
				return fmt.Errorf("%w: cannot create %s: %s is not a directory", ErrHome, home, dir)
			}
			return writable(dir)
		}
		if !homefile.IsNotExist(err) {
			return fmt.Errorf("%w: cannot create %s: %w", ErrHome, home, err)
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return fmt.Errorf("%w: cannot create %s: %w", ErrHome, home, err)
		}
		dir = parent
	}
}

// writable checks that this process may create files in the directory dir.
func writable(dir string) error {
	err := unix.Access(dir, unix.W_OK|unix.X_OK)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, syscall.EROFS):
		return fmt.Errorf("%w: %s is on a read-only file system: remount it read-write, or give --home a writable directory: %w", ErrHome, dir,
			&fs.PathError{Op: "access", Path: dir, Err: err})
	default:
		return fmt.Errorf("%w: %s is not writable by this user (uid %d): %w", ErrHome, dir, os.Getuid(),
			&fs.PathError{Op: "access", Path: dir, Err: err})
	}
}

// checkHomeFile checks the home file p, if it exists: a regular file
// (Lstat: a symlink is refused, never followed), readable and writable
// when rw.
func checkHomeFile(p string, rw bool) error {
	fi, err := os.Lstat(p)
	switch {
	case homefile.IsNotExist(err):
		return nil
	case err != nil:
		return fmt.Errorf("%w: %w", ErrHome, err)
	case !fi.Mode().IsRegular():
		return fmt.Errorf("%w: %s is %s, not a regular file: move it away", ErrHome, p, homefile.Describe(p, fi))
	}
	if !rw {
		return nil
	}
	if err := unix.Access(p, unix.R_OK|unix.W_OK); err != nil {
		if errors.Is(err, syscall.EACCES) {
			return fmt.Errorf("%w: %s (mode %04o) is not readable and writable by this user (uid %d): chown it to the gateway's user: %w",
				ErrHome, p, fi.Mode().Perm(), os.Getuid(), &fs.PathError{Op: "access", Path: p, Err: err})
		}
		return fmt.Errorf("%w: %w", ErrHome, &fs.PathError{Op: "access", Path: p, Err: err})
	}
	return nil
}
