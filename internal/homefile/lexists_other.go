//go:build !linux || !(amd64 || arm64)

package homefile

// lexistsNoAlloc is not available here: Lexists falls back to os.Lstat.
func lexistsNoAlloc(string) (ok bool, err error, done bool) { return false, nil, false }
