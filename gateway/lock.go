package gateway

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"syscall"
	"time"

	"github.com/quiesce-dev/quiesce/internal/homefile"
)

// LockFileName is the home's lock: held (flock, exclusive) by the live
// gateway for its whole life; it holds that gateway's pid.
const LockFileName = "gateway.lock"

// Lock acquisition at start: a gateway still exiting, or a client
// probing the lock (LocalStatus), holds it briefly, so New retries for up
// to lockWait before it gives up.
const (
	lockWait  = time.Second
	lockRetry = 20 * time.Millisecond
)

// homeLock is a held gateway.lock.
type homeLock struct{ f *os.File }

// lockHome takes home's lock for this process, retrying for up to wait;
// it writes our pid into the file. When another process holds it, the
// error wraps ErrLocked and names that process's pid.
func lockHome(home string, wait time.Duration) (*homeLock, error) {
	path := home + string(os.PathSeparator) + LockFileName
	f, err := homefile.Open(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrHome, err)
	}
	deadline := time.Now().Add(wait)
	for {
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			break
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) && !errors.Is(err, syscall.EINTR) {
			_ = f.Close()
			return nil, fmt.Errorf("%w: lock %s: %w", ErrHome, path, err)
		}
		if time.Now().After(deadline) {
			pid := lockHolder(f)
			_ = f.Close()
			return nil, fmt.Errorf("%w: %s is locked by pid %s; stop that gateway first, or give this one another --home", ErrLocked, path, pid)
		}
		time.Sleep(lockRetry)
	}
	if err := f.Truncate(0); err == nil {
		_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return &homeLock{f: f}, nil
}

// lockHolder reads the pid a lock file names ("unknown" if none).
func lockHolder(f *os.File) string {
	buf := make([]byte, 32)
	n, _ := f.ReadAt(buf, 0)
	if pid := string(bytes.TrimSpace(buf[:n])); pid != "" {
		return pid
	}
	return "unknown"
}

// release unlocks (closing the only descriptor releases the flock).
func (l *homeLock) release() error { return l.f.Close() }

// HomeLive reports whether a live gateway holds home's lock, and the pid
// the lock file names. It probes with a shared, non-blocking lock that it
// drops at once; a gateway starting at that moment retries (lockWait),
// so probing never makes it fail.
func HomeLive(home string) (live bool, pid string, err error) {
	path := home + string(os.PathSeparator) + LockFileName
	f, err := homefile.Open(path, os.O_RDONLY, 0)
	if homefile.IsNotExist(err) {
		return false, "", nil
	}
	if err != nil {
		return false, "", fmt.Errorf("gateway: %w", err)
	}
	defer f.Close()
	pid = lockHolder(f)
	switch err := syscall.Flock(int(f.Fd()), syscall.LOCK_SH|syscall.LOCK_NB); {
	case err == nil:
		return false, pid, nil // nobody holds it: the gateway that wrote pid is gone
	case errors.Is(err, syscall.EWOULDBLOCK):
		return true, pid, nil
	default:
		return false, pid, fmt.Errorf("gateway: probe %s: %w", path, err)
	}
}
