package gateway

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/quiesce-dev/quiesce/internal/homefile"
)

// LockFileName names the file that says which process holds the home:
// the live gateway writes its pid there. The lock itself is an exclusive
// flock on the home directory, held for the process's life, so removing
// or replacing this file by hand can never let a second gateway in.
const LockFileName = "gateway.lock"

// Lock acquisition at start: a gateway still exiting, or a client
// probing the lock (HomeLive), holds it briefly, so New retries for up to
// lockWait before it gives up.
const (
	lockWait  = time.Second
	lockRetry = 20 * time.Millisecond
)

// homeLock is a held home: the locked directory descriptor.
type homeLock struct{ dir *os.File }

// lockHome takes home's lock for this process, retrying for up to wait,
// and records our pid in gateway.lock. When another process holds it, the
// error wraps ErrLocked and names that process's pid.
func lockHome(home string, wait time.Duration) (*homeLock, error) {
	l, err := flockHome(home, wait)
	if err != nil {
		return nil, err
	}
	path := filepath.Join(home, LockFileName)
	if err := homefile.WriteAtomic(path, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
		_ = l.release()
		return nil, fmt.Errorf("%w: %w", ErrHome, err)
	}
	return l, nil
}

// flockHome is lockHome without recording the pid: for a short local
// operation (LocalReplay) that must not be mistaken for a gateway.
func flockHome(home string, wait time.Duration) (*homeLock, error) {
	dir, err := os.OpenFile(home, os.O_RDONLY|syscall.O_DIRECTORY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrHome, err)
	}
	deadline := time.Now().Add(wait)
	for {
		err = syscall.Flock(int(dir.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			break
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) && !errors.Is(err, syscall.EINTR) {
			_ = dir.Close()
			return nil, fmt.Errorf("%w: lock %s: %w", ErrHome, home, err)
		}
		if time.Now().After(deadline) {
			_ = dir.Close()
			return nil, fmt.Errorf("%w: %s is held by pid %s (see %s); stop that gateway first, or give this one another --home",
				ErrLocked, home, lockHolder(home), LockFileName)
		}
		time.Sleep(lockRetry)
	}
	return &homeLock{dir: dir}, nil
}

// lockHolder reads the pid gateway.lock names ("unknown" if none).
func lockHolder(home string) string {
	data, _, _, err := homefile.ReadFile(filepath.Join(home, LockFileName), 32)
	if pid := string(bytes.TrimSpace(data)); err == nil && pid != "" {
		return pid
	}
	return "unknown"
}

// release unlocks (closing the only descriptor releases the flock).
func (l *homeLock) release() error { return l.dir.Close() }

// HomeLive reports whether a live gateway holds home, and the pid
// gateway.lock names. It probes with a shared, non-blocking lock that it
// drops at once; a gateway starting at that moment retries (lockWait),
// so probing never makes it fail.
func HomeLive(home string) (live bool, pid string, err error) {
	dir, err := os.OpenFile(home, os.O_RDONLY|syscall.O_DIRECTORY|syscall.O_CLOEXEC, 0)
	if homefile.IsNotExist(err) {
		return false, "", nil
	}
	if err != nil {
		return false, "", fmt.Errorf("gateway: %w", err)
	}
	defer dir.Close()
	data, _, _, err := homefile.ReadFile(filepath.Join(home, LockFileName), 32)
	switch {
	case err == nil:
		pid = string(bytes.TrimSpace(data))
	case errors.Is(err, homefile.ErrNotRegular):
		// A FIFO, directory or symlink where the pid belongs: name it.
		return false, "", fmt.Errorf("gateway: %w", err)
	}
	switch err := syscall.Flock(int(dir.Fd()), syscall.LOCK_SH|syscall.LOCK_NB); {
	case err == nil:
		return false, pid, nil // nobody holds it: the gateway that wrote pid is gone
	case errors.Is(err, syscall.EWOULDBLOCK):
		return true, pid, nil
	default:
		return false, pid, fmt.Errorf("gateway: probe %s: %w", home, err)
	}
}

// pidAlive reports whether a process with pid exists (a zombie counts:
// it has not been reaped yet). EPERM means it exists under another user.
func pidAlive(pid int) bool {
	if pid <= 0 {
		return false
	}
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}
