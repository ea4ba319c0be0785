package main

import (
	"fmt"
	"io/fs"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/quiesce-dev/quiesce/gateway"
)

// TestStartErrorExitCodes: a home check that failed for a reason a
// restart may cure (full disk, quota, I/O error, read-only file system)
// exits 75 so a supervisor restarts; anything an operator must fix, 78.
func TestStartErrorExitCodes(t *testing.T) {
	for _, tt := range []struct {
		errno syscall.Errno
		code  int
	}{
		{syscall.ENOSPC, 75}, {syscall.EDQUOT, 75}, {syscall.EIO, 75}, {syscall.EROFS, 75},
		{syscall.EACCES, 78}, {syscall.ENOTDIR, 78}, {syscall.ELOOP, 78},
	} {
		err := fmt.Errorf("%w: %w", gateway.ErrHome, &fs.PathError{Op: "access", Path: "/var/lib/quiesce", Err: tt.errno})
		assert.Equal(t, tt.code, ExitCode(startError(err)), "%v", tt.errno)
		assert.Equal(t, tt.code, ExitCode(&checkFailed{msg: "1 of 4 checks failed", first: startError(err)}), "%v through check's summary", tt.errno)
	}
}
