package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strings"
)

// MutantsDir is where the patches live, relative to the repository root:
// testdata/mutants/<pkg>/<name>.patch.
const MutantsDir = "testdata/mutants"

// mutant is one planted bug: a unified diff against the repository and
// the header that says what it breaks and which tests must catch it.
type mutant struct {
	name    string     // "<pkg>/<name>", the patch's path under MutantsDir without .patch
	file    string     // the patch file, absolute
	promise string     // the "# promise:" line: what the bug breaks
	tests   [][]string // one "go test" argument list per "# tests:" line
	env     []string   // KEY=VALUE pairs of "# env:" lines, for the test runs
	patch   []byte     // the whole file; git apply skips the header
	touches []string   // repository paths the diff changes, creates or removes
}

// Header keys, each at the start of a comment line before the first
// "diff --git" line.
const (
	keyPromise = "# promise:"
	keyTests   = "# tests:"
	keyEnv     = "# env:"
)

// loadMutants reads every patch under dir (root/MutantsDir for the
// permanent set), sorted by name.
func loadMutants(dir string) ([]*mutant, error) {
	var ms []*mutant
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() || !strings.HasSuffix(p, ".patch") {
			return nil
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		m, err := parseMutant(filepath.ToSlash(strings.TrimSuffix(rel, ".patch")), data)
		if err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		m.file = p
		ms = append(ms, m)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("mutate: load %s: %w", dir, err)
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].name < ms[j].name })
	return ms, nil
}

// errHeader is wrapped by parseMutant's errors about a patch's header.
var errHeader = errors.New("bad mutant header")

// parseMutant parses one patch file: its header and the paths it touches.
func parseMutant(name string, data []byte) (*mutant, error) {
	m := &mutant{name: name, patch: data}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 1<<16), 1<<20)
	inDiff := false
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "diff --git ") {
			inDiff = true
			continue
		}
		if !inDiff {
			switch {
			case strings.HasPrefix(line, keyPromise):
				m.promise = strings.TrimSpace(strings.TrimPrefix(line, keyPromise))
			case strings.HasPrefix(line, keyTests):
				args, err := splitArgs(strings.TrimPrefix(line, keyTests))
				if err != nil {
					return nil, fmt.Errorf("%w: %s: %w", errHeader, keyTests, err)
				}
				if len(args) == 0 {
					return nil, fmt.Errorf("%w: empty %s line", errHeader, keyTests)
				}
				m.tests = append(m.tests, args)
			case strings.HasPrefix(line, keyEnv):
				env, err := splitArgs(strings.TrimPrefix(line, keyEnv))
				if err != nil {
					return nil, fmt.Errorf("%w: %s: %w", errHeader, keyEnv, err)
				}
				for _, kv := range env {
					if !strings.Contains(kv, "=") {
						return nil, fmt.Errorf("%w: %s %q is not KEY=VALUE", errHeader, keyEnv, kv)
					}
				}
				m.env = append(m.env, env...)
			}
			continue
		}
		// "--- a/path" and "+++ b/path" name the file before and after
		// the change (/dev/null for a created or removed file).
		for _, prefix := range []string{"--- a/", "+++ b/"} {
			if p, ok := strings.CutPrefix(line, prefix); ok && !slices.Contains(m.touches, p) {
				m.touches = append(m.touches, strings.TrimSpace(p))
			}
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	switch {
	case m.promise == "":
		return nil, fmt.Errorf("%w: no %q line", errHeader, keyPromise)
	case len(m.tests) == 0:
		return nil, fmt.Errorf("%w: no %q line", errHeader, keyTests)
	case len(m.touches) == 0:
		return nil, fmt.Errorf("%w: no diff", errHeader)
	}
	return m, nil
}

// splitArgs splits s into words like a shell does for plain words and
// single- or double-quoted strings (no escapes, no expansion).
func splitArgs(s string) ([]string, error) {
	var args []string
	var cur strings.Builder
	inWord := false
	var quote rune
	for _, r := range s {
		switch {
		case quote != 0:
			if r == quote {
				quote = 0
			} else {
				cur.WriteRune(r)
			}
		case r == '\'' || r == '"':
			quote, inWord = r, true
		case r == ' ' || r == '\t':
			if inWord {
				args = append(args, cur.String())
				cur.Reset()
				inWord = false
			}
		default:
			cur.WriteRune(r)
			inWord = true
		}
	}
	if quote != 0 {
		return nil, fmt.Errorf("unclosed %c in %q", quote, s)
	}
	if inWord {
		args = append(args, cur.String())
	}
	return args, nil
}

// selectMutants keeps the mutants matching any filter: a mutant's full
// name ("fsm/split-gate"), a package prefix ("fsm", "internal/homefile")
// or a path.Match pattern ("notify/outbox-*"). No filter keeps all.
func selectMutants(ms []*mutant, filters []string) ([]*mutant, error) {
	if len(filters) == 0 {
		return ms, nil
	}
	var out []*mutant
	used := make([]bool, len(filters))
	for _, m := range ms {
		for i, f := range filters {
			f = strings.Trim(f, "/")
			ok, err := path.Match(f, m.name)
			if err != nil {
				return nil, fmt.Errorf("mutate: filter %q: %w", f, err)
			}
			if ok || m.name == f || strings.HasPrefix(m.name, f+"/") {
				out = append(out, m)
				used[i] = true
				break
			}
		}
	}
	for i, f := range filters {
		if !used[i] {
			return nil, fmt.Errorf("mutate: no mutant matches %q", f)
		}
	}
	return out, nil
}
