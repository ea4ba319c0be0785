package server

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"

	"github.com/quiesce-dev/quiesce/internal/homefile"
)

// MinTokenLength is the shortest token LoadTokens accepts.
const MinTokenLength = 16

// MaxTokensFileBytes is the largest tokens file LoadTokens and
// ReadClientToken read.
const MaxTokensFileBytes = 1 << 20

// DevPrincipal is the principal of the token EnsureDevToken creates.
const DevPrincipal = "dev"

// ErrTokens is wrapped by every error LoadTokens returns for a file that
// exists but cannot be used (permissions, syntax, no tokens).
var ErrTokens = errors.New("server: unusable tokens file")

// Tokens is a set of bearer tokens, each belonging to a principal. The
// zero value holds no tokens and authenticates nobody. It is safe for
// concurrent use: Reload and Replace swap the whole set at once, so a
// Lookup sees either the old set or the new one, never a mix, and takes no
// lock (one atomic load). Do not copy a Tokens after first use.
type Tokens struct {
	set atomic.Pointer[tokenSet] // the current set, immutable; nil holds no tokens
}

// tokenSet is one immutable generation of a Tokens.
type tokenSet struct {
	entries []tokenEntry
}

type tokenEntry struct {
	principal string
	digest    [sha256.Size]byte
}

// newTokensOf returns Tokens holding set.
func newTokensOf(set *tokenSet) *Tokens {
	t := &Tokens{}
	t.set.Store(set)
	return t
}

// NewTokens returns Tokens holding the given principal → token pairs.
// It is meant for tests and embedding; files go through LoadTokens.
func NewTokens(pairs map[string]string) *Tokens {
	set := &tokenSet{}
	for principal, token := range pairs {
		set.entries = append(set.entries, tokenEntry{principal: principal, digest: sha256.Sum256([]byte(token))})
	}
	return newTokensOf(set)
}

// load returns the current set, or nil.
func (t *Tokens) load() *tokenSet {
	if t == nil {
		return nil
	}
	return t.set.Load()
}

// Len returns the number of tokens.
func (t *Tokens) Len() int {
	set := t.load()
	if set == nil {
		return 0
	}
	return len(set.entries)
}

// Lookup returns the principal owning token. It compares SHA-256 digests
// with crypto/subtle against every entry, without stopping at the first
// match, so its timing reveals neither which token matched nor how much
// of one did.
func (t *Tokens) Lookup(token string) (principal string, ok bool) {
	set := t.load()
	if set == nil || token == "" {
		return "", false
	}
	d := sha256.Sum256([]byte(token))
	found := -1
	for i := range set.entries {
		eq := subtle.ConstantTimeCompare(d[:], set.entries[i].digest[:])
		if eq == 1 && found < 0 {
			found = i
		}
	}
	if found < 0 {
		return "", false
	}
	return set.entries[found].principal, true
}

// Replace makes t hold the tokens of other from now on, atomically: a
// Lookup running meanwhile sees the old set or the new one. A nil other
// empties t. Later changes to other do not reach t.
func (t *Tokens) Replace(other *Tokens) {
	t.set.Store(other.load())
}

// Reload reads path as LoadTokens does and, only if the file passes every
// check, replaces t's tokens with its own (Replace). On any error (the
// file is missing, malformed, holds no token, or is accessible by group
// or others) t keeps the tokens it had and LoadTokens' error, which names
// the file and the fault, is returned. It returns the number of tokens t
// holds afterwards.
func (t *Tokens) Reload(path string) (int, error) {
	fresh, err := LoadTokens(path)
	if err != nil {
		return t.Len(), err
	}
	t.Replace(fresh)
	return fresh.Len(), nil
}

// LoadTokens reads a tokens file: one "principal token" pair per line,
// blank lines and lines starting with # ignored. It refuses (with an error
// wrapping ErrTokens that names the file, and the line where one is at
// fault) a file that is not a regular file (a FIFO is refused without
// blocking; a symlink is followed to a regular file), cannot be read, is
// over MaxTokensFileBytes, is accessible by group or others (mode & 0o077
// != 0), has a line that is not exactly two fields, a token shorter than
// MinTokenLength, a token listed twice, or no token at all. A missing file
// gives an error wrapping fs.ErrNotExist.
func LoadTokens(path string) (*Tokens, error) {
	data, err := readPrivateFile(path)
	if err != nil {
		return nil, err
	}
	return parseTokens(path, data)
}

// parseTokens parses the content of the tokens file path (named in
// errors), as LoadTokens describes.
func parseTokens(path string, data []byte) (*Tokens, error) {
	set := &tokenSet{}
	seen := map[[sha256.Size]byte]int{}
	for n, line := range lines(data) {
		fields := strings.Fields(line)
		if len(fields) == 0 || strings.HasPrefix(fields[0], "#") {
			continue
		}
		if len(fields) != 2 {
			return nil, fmt.Errorf("%w: %s:%d: want \"principal token\", got %d fields", ErrTokens, path, n, len(fields))
		}
		principal, token := fields[0], fields[1]
		if len(token) < MinTokenLength {
			return nil, fmt.Errorf("%w: %s:%d: token of %q is shorter than %d characters", ErrTokens, path, n, principal, MinTokenLength)
		}
		d := sha256.Sum256([]byte(token))
		if prev, dup := seen[d]; dup {
			return nil, fmt.Errorf("%w: %s:%d: same token as line %d", ErrTokens, path, n, prev)
		}
		seen[d] = n
		set.entries = append(set.entries, tokenEntry{principal: principal, digest: d})
	}
	if len(set.entries) == 0 {
		return nil, fmt.Errorf("%w: %s: no tokens (add a line \"principal token\")", ErrTokens, path)
	}
	return newTokensOf(set), nil
}

// ReadClientToken returns the token a client should send, read from path:
// the first line that is not blank or a # comment, which is either a bare
// token or a "principal token" pair (so a server's tokens file works too).
// Like LoadTokens it opens the file without blocking and refuses one that
// is not a regular file or is accessible by group or others.
func ReadClientToken(path string) (string, error) {
	data, err := readPrivateFile(path)
	if err != nil {
		return "", err
	}
	for n, line := range lines(data) {
		fields := strings.Fields(line)
		switch {
		case len(fields) == 0 || strings.HasPrefix(fields[0], "#"):
			continue
		case len(fields) == 1:
			return fields[0], nil
		case len(fields) == 2:
			return fields[1], nil
		default:
			return "", fmt.Errorf("%w: %s:%d: want \"token\" or \"principal token\"", ErrTokens, path, n)
		}
	}
	return "", fmt.Errorf("%w: %s: no token", ErrTokens, path)
}

// EnsureDevToken makes sure path holds a usable tokens file. If the file
// is missing it creates it with one fresh random token for DevPrincipal,
// atomically (homefile.WriteAtomic: mode 0600, a reader or a crash never
// sees a partial file), and returns that token with created=true; temp
// files a killed earlier call left next to it are removed first.
// Otherwise it returns the file's first token with created=false, or
// LoadTokens' error; a file that is not a regular file is never replaced.
//
// Callers serialise calls for one path (quiesce run holds the home's lock
// while it calls it): a tokens file another process creates between the
// check and the rename would be replaced.
func EnsureDevToken(path string) (token string, created bool, err error) {
	if _, err := os.Lstat(path); homefile.IsNotExist(err) {
		homefile.RemoveTemps(filepath.Dir(path), filepath.Base(path))
		token := newToken()
		content := "# quiesce bearer tokens: one \"principal token\" per line (created by --dev).\n" +
			DevPrincipal + " " + token + "\n"
		if err := homefile.WriteAtomic(path, []byte(content), 0o600); err != nil {
			return "", false, fmt.Errorf("server: create tokens file: %w", err)
		}
		return token, true, nil
	}
	if _, err := LoadTokens(path); err != nil {
		return "", false, err
	}
	token, err = ReadClientToken(path)
	return token, false, err
}

// newToken returns 48 random hex digits (192 bits): more than randid's 64
// bits, as a bearer token must not be guessable. crypto/rand.Read never
// fails (on a broken system it crashes the program).
func newToken() string {
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// readPrivateFile reads a tokens file that only its owner may access. It
// opens it with homefile, so it never blocks (a FIFO is refused, not
// waited on) and reads only a regular file, at most MaxTokensFileBytes.
// A symlink is followed to its target, which must itself be such a file
// (a mounted secret is often a symlink); the error then names both.
func readPrivateFile(path string) ([]byte, error) {
	name, open := path, path
	if fi, err := os.Lstat(path); err == nil && fi.Mode()&fs.ModeSymlink != 0 {
		target, err := filepath.EvalSymlinks(path)
		if err != nil {
			return nil, fmt.Errorf("server: tokens file %s: %w", path, err)
		}
		name, open = fmt.Sprintf("%s (a symlink to %s)", path, target), target
	}
	data, fi, truncated, err := homefile.ReadFile(open, MaxTokensFileBytes)
	via := "" // homefile's errors name the file they opened
	if name != open {
		via = " " + path + ":"
	}
	switch {
	case homefile.IsNotExist(err):
		if pe, ok := errors.AsType[*fs.PathError](err); ok {
			err = pe // homefile's text repeats the path the PathError has
		}
		return nil, fmt.Errorf("server: tokens file:%s %w", via, err)
	case err != nil:
		return nil, fmt.Errorf("%w:%s %w", ErrTokens, via, err)
	case truncated:
		return nil, fmt.Errorf("%w: %s is over %d bytes", ErrTokens, name, MaxTokensFileBytes)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("%w: %s has mode %04o, readable by group or others; run: chmod 600 %s", ErrTokens, name, perm, open)
	}
	return data, nil
}

// lines yields each line of data with its 1-based number.
func lines(data []byte) func(yield func(int, string) bool) {
	return func(yield func(int, string) bool) {
		for i, line := range strings.Split(string(data), "\n") {
			if !yield(i+1, line) {
				return
			}
		}
	}
}
