package homefile

import (
	"os"
	"strings"
)

// maxStackPath is the longest path Lexists checks without allocating.
const maxStackPath = 511

// Lexists reports whether something exists at path, a symlink included (it
// is not followed). Where the platform allows (Linux on amd64 and arm64) a
// path shorter than 512 bytes is checked with one fstatat(2) on a
// NUL-terminated copy on the stack, allocating nothing: the marker's poll
// fallback calls it every second. An error other than "does not exist"
// (ENOENT or ENOTDIR) is returned as is.
func Lexists(path string) (bool, error) {
	if len(path) <= maxStackPath && strings.IndexByte(path, 0) < 0 {
		if ok, err, done := lexistsNoAlloc(path); done {
			return ok, err
		}
	}
	_, err := os.Lstat(path)
	switch {
	case err == nil:
		return true, nil
	case IsNotExist(err):
		return false, nil
	default:
		return false, err
	}
}
