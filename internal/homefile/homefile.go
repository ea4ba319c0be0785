// Package homefile opens, reads and replaces the files of a gateway home
// safely: atomic replace (temp file, fsync, rename, directory fsync),
// opens that never block on a FIFO or follow a symlink into a device, and
// clean-up of temp files left by a killed writer. Every file quiesce
// writes goes through it.
//
// It has no goroutines, locks or channels; callers serialise writers of
// one file themselves.
package homefile

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"

	"github.com/quiesce-dev/quiesce/internal/randid"
)

// TempInfix separates a target's base name from the random suffix of the
// temp files WriteAtomic creates next to it: "<file>.tmp-<16 hex>".
const TempInfix = ".tmp-"

// ErrNotRegular is wrapped by every function here when a path that must be
// a regular file is something else: a directory, FIFO, socket, device or
// symlink (dangling or not). The path is left untouched.
var ErrNotRegular = errors.New("not a regular file")

// syncHook is the SetSyncHook function, read atomically so a test may set
// it while other goroutines write.
var syncHook atomic.Pointer[func(path string)]

// SetSyncHook makes fn (nil: none) be called with the path of every file
// and directory this package fsyncs, after the fsync succeeded, so a test
// can assert that a write was made durable (or slow a disk down). It is
// for tests; safe to call while files are being written.
func SetSyncHook(fn func(path string)) {
	if fn == nil {
		syncHook.Store(nil)
		return
	}
	syncHook.Store(&fn)
}

// synced reports path to the hook, if any.
func synced(path string) {
	if fn := syncHook.Load(); fn != nil {
		(*fn)(path)
	}
}

// WriteAtomic replaces path with data so that a reader sees either the old
// content or the new one, never a partial file, even if the process is
// killed at any point.
//
// It creates "<path>.tmp-<random>" (O_EXCL, mode 0600, same directory),
// writes data, sets the mode to perm, fsyncs and closes it, renames it
// over path and fsyncs the directory, so the rename itself is durable.
// The temp file is removed on every error path. If path exists and is not
// a regular file it is left alone and the error wraps ErrNotRegular. A
// directory fsync the file system refuses as unsupported is not an error.
func WriteAtomic(path string, data []byte, perm os.FileMode) error {
	return writeAtomic(path, data, perm, true)
}

// WriteAtomicNoDirSync is WriteAtomic without the directory fsync, for a
// file whose previous version is an acceptable result of a power loss
// (the state file: its readers judge liveness by the home's lock). The
// content is fsynced before the rename, so even after a power loss a
// reader finds the old content or the new one, never a torn or empty
// file; only the rename may be undone (after a first write: no file at
// all), and a temp file may be left, which RemoveTemps removes. It saves
// one fsync per write.
func WriteAtomicNoDirSync(path string, data []byte, perm os.FileMode) error {
	return writeAtomic(path, data, perm, false)
}

func writeAtomic(path string, data []byte, perm os.FileMode, syncDir bool) (err error) {
	if fi, err := os.Lstat(path); err == nil {
		if !fi.Mode().IsRegular() {
			return fmt.Errorf("write %s: %w (%s)", path, ErrNotRegular, Describe(path, fi))
		}
	} else if !IsNotExist(err) {
		return fmt.Errorf("write %s: %w", path, err)
	}
	dir := filepath.Dir(path)
	f, tmp, err := createTemp(dir, filepath.Base(path))
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	renamed := false
	defer func() {
		if err == nil {
			return
		}
		_ = f.Close() // a second Close only returns an error
		if !renamed {
			_ = os.Remove(tmp)
		}
	}()
	if _, err = f.Write(data); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if perm.Perm() != 0o600 {
		if err = f.Chmod(perm.Perm()); err != nil {
			return fmt.Errorf("write %s: %w", path, err)
		}
	}
	if err = Sync(f); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err = f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err = os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	renamed = true
	if !syncDir {
		return nil
	}
	if err = SyncDir(dir); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// createTemp creates a new temp file for base in dir.
func createTemp(dir, base string) (*os.File, string, error) {
	var err error
	for range 10 {
		name := filepath.Join(dir, base+TempInfix+randid.New())
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

// Sync fsyncs f and reports it to the SetSyncHook hook.
func Sync(f *os.File) error {
	if err := f.Sync(); err != nil {
		return fmt.Errorf("fsync %s: %w", f.Name(), err)
	}
	synced(f.Name())
	return nil
}

// SyncDir fsyncs the directory dir, so that a rename or removal in it is
// durable. File systems that cannot fsync a directory are tolerated.
func SyncDir(dir string) error {
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
		return fmt.Errorf("fsync dir %s: %w", dir, err)
	}
	if cerr != nil {
		return fmt.Errorf("fsync dir %s: %w", dir, cerr)
	}
	synced(dir)
	return nil
}

// Open opens path with flag (os.O_RDONLY, os.O_WRONLY|os.O_APPEND|
// os.O_CREATE, ...) without ever blocking and without following a final
// symlink: a FIFO, directory, device, socket or symlink at path is refused
// with an error that names it and wraps ErrNotRegular. The returned file
// is in blocking mode again (O_NONBLOCK only guards the open).
func Open(path string, flag int, perm os.FileMode) (*os.File, error) {
	f, err := os.OpenFile(path, flag|syscall.O_NONBLOCK|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, perm)
	if err != nil {
		if errors.Is(err, syscall.ELOOP) || errors.Is(err, syscall.EISDIR) || errors.Is(err, syscall.ENXIO) {
			kind := "unusable"
			if fi, lerr := os.Lstat(path); lerr == nil {
				kind = Describe(path, fi)
			}
			return nil, fmt.Errorf("open %s: %w (%s)", path, ErrNotRegular, kind)
		}
		return nil, err // an *fs.PathError: it names the path
	}
	fi, err := f.Stat()
	if err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	if !fi.Mode().IsRegular() {
		_ = f.Close()
		return nil, fmt.Errorf("open %s: %w (%s)", path, ErrNotRegular, Describe(path, fi))
	}
	if err := syscall.SetNonblock(int(f.Fd()), false); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	return f, nil
}

// ReadFile reads up to limit bytes of the regular file path, opened as by
// Open. A longer file gives its first limit bytes and truncated=true.
func ReadFile(path string, limit int64) (data []byte, fi os.FileInfo, truncated bool, err error) {
	f, err := Open(path, os.O_RDONLY, 0)
	if err != nil {
		return nil, nil, false, err
	}
	defer f.Close()
	if fi, err = f.Stat(); err != nil {
		return nil, nil, false, fmt.Errorf("read %s: %w", path, err)
	}
	data, err = io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, nil, false, fmt.Errorf("read %s: %w", path, err)
	}
	if int64(len(data)) > limit {
		return data[:limit], fi, true, nil
	}
	return data, fi, false, nil
}

// RemoveTemps removes the temp files WriteAtomic leaves in dir when its
// process is killed between creating and renaming one, for each target
// base name given ("<base>.tmp-*"). Only call it while no live writer can
// own such a file (the caller holds the lock that serialises writers).
// It returns how many it removed; a file it cannot remove is skipped.
func RemoveTemps(dir string, bases ...string) int {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return 0
	}
	n := 0
	for _, e := range entries {
		name := e.Name()
		for _, base := range bases {
			if strings.HasPrefix(name, base+TempInfix) && os.Remove(filepath.Join(dir, name)) == nil {
				n++
				break
			}
		}
	}
	return n
}

// IsNotExist reports whether err means the file, or a directory on its
// path, does not exist.
func IsNotExist(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR)
}

// Describe names what the non-regular file p is, for error messages and
// logs: "a directory", "a FIFO", "a symlink to /x", "a dangling symlink to
// /x", ... It reads a symlink's target but never opens p.
func Describe(p string, fi fs.FileInfo) string {
	m := fi.Mode()
	switch {
	case m&fs.ModeSymlink != 0:
		target, err := os.Readlink(p)
		if err != nil {
			return "a symlink"
		}
		if _, err := os.Stat(p); err != nil && IsNotExist(err) {
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
