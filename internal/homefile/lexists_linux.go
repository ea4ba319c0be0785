//go:build linux && (amd64 || arm64)

package homefile

import (
	"syscall"
	"unsafe"
)

const atSymlinkNofollow = 0x100 // AT_SYMLINK_NOFOLLOW

// lexistsNoAlloc is Lexists with one raw fstatat(2): path is copied, with
// its terminating NUL, into a stack buffer, so nothing is allocated (the
// syscall package's own calls copy it to the heap).
func lexistsNoAlloc(path string) (ok bool, err error, done bool) {
	var buf [maxStackPath + 1]byte
	copy(buf[:], path)
	var st syscall.Stat_t
	_, _, e := syscall.Syscall6(sysFstatat, atFDCWD, uintptr(unsafe.Pointer(&buf[0])),
		uintptr(unsafe.Pointer(&st)), atSymlinkNofollow, 0, 0)
	switch e {
	case 0:
		return true, nil, true
	case syscall.ENOENT, syscall.ENOTDIR:
		return false, nil, true
	default:
		return false, e, true
	}
}

// atFDCWD is AT_FDCWD (-100): a path relative to the working directory.
const atFDCWD = ^uintptr(99)
