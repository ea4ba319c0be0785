package layout_test

import (
	"go/build"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const module = "github.com/quiesce-dev/quiesce/"

// allowed lists, per package, the packages of the module it may import
// besides the leaf helpers under internal/ (a package missing here may
// import none but those). api and client carry fsm's State; server words
// an agent's failure from gateway.AgentError, never from agent's types.
var allowed = map[string][]string{
	"fsm":         nil,
	"marker":      nil,
	"notify":      nil,
	"agent":       nil,
	"api":         {"fsm"},
	"client":      {"api", "fsm"},
	"gateway":     {"fsm", "marker", "notify", "agent", "api"},
	"server/page": {"api", "fsm"},
	"server":      {"gateway", "server/page", "api", "fsm"},
}

// free may import any package of the module: the wiring, the benchmarks,
// the examples and the test helpers.
var free = []string{"cmd/", "bench/", "examples/", "deploy", "internal/testing/"}

// TestImportArrows: every package's non-test imports follow allowed; a
// leaf helper under internal/ imports only other leaf helpers; nothing but
// a test imports internal/testing.
func TestImportArrows(t *testing.T) {
	root, err := filepath.Abs("../../..")
	require.NoError(t, err)
	checked := 0
	err = filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return err
		}
		if name := d.Name(); path != root && (strings.HasPrefix(name, ".") || name == "testdata") {
			return filepath.SkipDir
		}
		pkg, err := build.ImportDir(path, 0)
		if err != nil {
			return nil // no Go files here
		}
		rel, _ := filepath.Rel(root, path)
		rel = filepath.ToSlash(rel)
		checked++
		for _, imp := range pkg.Imports {
			dep, ok := strings.CutPrefix(imp, module)
			if !ok {
				continue
			}
			switch {
			case slices.ContainsFunc(free, func(p string) bool { return strings.HasPrefix(rel, p) }):
				assert.Falsef(t, strings.HasPrefix(dep, "cmd/"), "%s imports %s", rel, dep)
			case strings.HasPrefix(dep, "internal/testing/"):
				assert.Failf(t, "a test helper in production code", "%s imports %s", rel, dep)
			case strings.HasPrefix(rel, "internal/"):
				assert.Truef(t, strings.HasPrefix(dep, "internal/"), "leaf helper %s imports %s", rel, dep)
			case strings.HasPrefix(dep, "internal/"):
			default:
				assert.Containsf(t, allowed[rel], dep, "%s imports %s, an arrow the layout does not have", rel, dep)
			}
		}
		return nil
	})
	require.NoError(t, err)
	assert.Greater(t, checked, len(allowed), "the walk found the packages")
}
