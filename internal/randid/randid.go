// Package randid makes the random identifiers quiesce hands out: request,
// shutdown, event and turn ids, and temp-file suffixes.
package randid

import (
	"crypto/rand"
	"encoding/hex"
)

// New returns 16 random lowercase hex digits (64 bits). crypto/rand.Read
// never fails: on a broken system it crashes the program instead.
func New() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
