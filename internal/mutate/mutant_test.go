package main

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestMutantsApplyToTheTree: every planted bug under testdata/mutants has
// a header (promise, tests) and still applies to the working tree, so a
// change that makes a patch stale fails make test at once and names the
// patch (git apply --check writes nothing).
func TestMutantsApplyToTheTree(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("git not on PATH")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	root, err := repoRoot(ctx)
	if err != nil {
		t.Skipf("not in a git work tree: %v", err)
	}
	ms, err := loadMutants(filepath.Join(root, MutantsDir))
	require.NoError(t, err)
	require.NotEmpty(t, ms, "no patch under %s", MutantsDir)
	for _, m := range ms {
		t.Run(m.name, func(t *testing.T) {
			assert.NotEmpty(t, m.promise)
			assert.NotEmpty(t, m.tests)
			out, err := gitApply(ctx, root, m.file, true)
			assert.NoError(t, err, "%s no longer applies; update it to the code it plants its bug in:\n%s", m.file, out)
		})
	}
}

// TestLoadMutantsFromAnotherDirectory: -dir reads a set of patches kept
// outside the repository, named <pkg>/<name> as under testdata/mutants.
func TestLoadMutantsFromAnotherDirectory(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "fsm"), 0o755))
	patch := "# promise: p\n# tests: ./fsm -run '^TestX$'\ndiff --git a/fsm/x.go b/fsm/x.go\n--- a/fsm/x.go\n+++ b/fsm/x.go\n@@ -1 +1 @@\n-a\n+b\n"
	require.NoError(t, os.WriteFile(filepath.Join(dir, "fsm", "x.patch"), []byte(patch), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "README.md"), []byte("not a patch"), 0o644))

	ms, err := loadMutants(dir)
	require.NoError(t, err)
	require.Len(t, ms, 1)
	assert.Equal(t, "fsm/x", ms[0].name)
	assert.Equal(t, filepath.Join(dir, "fsm", "x.patch"), ms[0].file)
	assert.Equal(t, [][]string{{"./fsm", "-run", "^TestX$"}}, ms[0].tests)
	assert.Equal(t, []string{"fsm/x.go"}, ms[0].touches)
}

func TestParseMutant(t *testing.T) {
	patch := "# promise: one Release ends one turn\n" +
		"# tests: ./fsm -run '^TestProperty|TestWait Idle'\n" +
		"# tests: ./gateway\n" +
		"# env: RAPID_CHECKS=300\n" +
		"diff --git a/fsm/accept.go b/fsm/accept.go\n" +
		"--- a/fsm/accept.go\n" +
		"+++ b/fsm/accept.go\n" +
		"@@ -1 +1 @@\n-a\n+b\n" +
		"diff --git a/fsm/new.go b/fsm/new.go\n" +
		"new file mode 100644\n" +
		"--- /dev/null\n" +
		"+++ b/fsm/new.go\n" +
		"@@ -0,0 +1 @@\n+c\n"
	m, err := parseMutant("fsm/x", []byte(patch))
	require.NoError(t, err)
	assert.Equal(t, "one Release ends one turn", m.promise)
	assert.Equal(t, [][]string{{"./fsm", "-run", "^TestProperty|TestWait Idle"}, {"./gateway"}}, m.tests)
	assert.Equal(t, []string{"RAPID_CHECKS=300"}, m.env)
	assert.Equal(t, []string{"fsm/accept.go", "fsm/new.go"}, m.touches)

	for name, bad := range map[string]string{
		"no promise":    "# tests: ./fsm\ndiff --git a/x b/x\n--- a/x\n+++ b/x\n",
		"no tests":      "# promise: p\ndiff --git a/x b/x\n--- a/x\n+++ b/x\n",
		"no diff":       "# promise: p\n# tests: ./fsm\n",
		"unclosed":      "# promise: p\n# tests: ./fsm -run 'x\ndiff --git a/x b/x\n--- a/x\n+++ b/x\n",
		"env not k=v":   "# promise: p\n# tests: ./fsm\n# env: X\ndiff --git a/x b/x\n--- a/x\n+++ b/x\n",
		"empty tests":   "# promise: p\n# tests:\ndiff --git a/x b/x\n--- a/x\n+++ b/x\n",
		"tests in diff": "# promise: p\ndiff --git a/x b/x\n# tests: ./fsm\n--- a/x\n+++ b/x\n",
	} {
		t.Run(name, func(t *testing.T) {
			_, err := parseMutant("m", []byte(bad))
			require.ErrorIs(t, err, errHeader)
		})
	}
}

func TestClassify(t *testing.T) {
	failed := errors.New("exit status 1")
	for _, tc := range []struct {
		name       string
		run        testRun
		want       verdict
		wantFailed []string
	}{
		{"tests pass", testRun{output: "ok  \tx\t0.1s\n"}, Survived, nil},
		{"assertion", testRun{output: "--- FAIL: TestA (0.00s)\n    --- FAIL: TestA/sub (0.00s)\n--- FAIL: TestB (0.00s)\nFAIL\n", err: failed}, Caught, []string{"TestA", "TestB"}},
		{"go test timeout", testRun{output: "panic: test timed out after 2m0s\n\trunning tests:\n\t\tTestA (2m0s)\n", err: failed}, Hang, nil},
		{"timeout after a failure", testRun{output: "--- FAIL: TestA (0.00s)\npanic: test timed out after 2m0s\n", err: failed}, Hang, nil},
		{"killed by our deadline", testRun{output: "", err: failed, timedOut: true}, Hang, nil},
		{"build failed", testRun{output: "FAIL\tx [build failed]\n", err: failed}, Broken, nil},
		{"fatal error, no test failed", testRun{output: "fatal error: concurrent map writes\n", err: failed}, Crash, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, gotFailed := classify(tc.run)
			assert.Equal(t, tc.want, got)
			assert.Equal(t, tc.wantFailed, gotFailed)
		})
	}
}

func TestSelectMutants(t *testing.T) {
	ms := []*mutant{{name: "fsm/split-gate"}, {name: "fsm/double-release"}, {name: "internal/homefile/no-fsync"}, {name: "notify/outbox-no-fsync"}}
	names := func(ms []*mutant) []string {
		var out []string
		for _, m := range ms {
			out = append(out, m.name)
		}
		return out
	}
	for _, tc := range []struct {
		filters []string
		want    []string
	}{
		{nil, []string{"fsm/split-gate", "fsm/double-release", "internal/homefile/no-fsync", "notify/outbox-no-fsync"}},
		{[]string{"fsm/split-gate"}, []string{"fsm/split-gate"}},
		{[]string{"fsm"}, []string{"fsm/split-gate", "fsm/double-release"}},
		{[]string{"internal/homefile/"}, []string{"internal/homefile/no-fsync"}},
		{[]string{"notify/*-fsync", "fsm/double-release"}, []string{"fsm/double-release", "notify/outbox-no-fsync"}},
	} {
		got, err := selectMutants(ms, tc.filters)
		require.NoError(t, err)
		assert.Equal(t, tc.want, names(got), "%q", tc.filters)
	}
	_, err := selectMutants(ms, []string{"fsm/splitgate"})
	require.Error(t, err, "a filter that matches nothing is a typo, not an empty run")
}

func TestSplitArgs(t *testing.T) {
	got, err := splitArgs(` ./fsm  -run '^TestA|TestB$' -x "a b"c`)
	require.NoError(t, err)
	assert.Equal(t, []string{"./fsm", "-run", "^TestA|TestB$", "-x", "a bc"}, got)
}
