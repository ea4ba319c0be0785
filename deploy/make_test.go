package deploy_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// makeRun runs make with args in the repository root, with PATH set to
// path, and returns its output and exit code; it fails the test when make
// is missing or does not finish within a bound.
func makeRun(t *testing.T, path string, env []string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	mk, err := exec.LookPath("make")
	if err != nil {
		t.Skip("make is not installed")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, mk, append([]string{"-C", ".."}, args...)...)
	cmd.Env = append([]string{"PATH=" + path, "HOME=" + t.TempDir()}, env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err = cmd.Run()
	require.NoErrorf(t, ctx.Err(), "make %v did not finish within 30s", args)
	var ee *exec.ExitError
	if err != nil {
		require.ErrorAsf(t, err, &ee, "make %v: an error other than an exit status", args)
	}
	return out.String(), errb.String(), cmd.ProcessState.ExitCode()
}

// TestMakeTestNeedsABrowserFirst: make test checks for Chromium before
// anything else and, without one, stops at once with the install command
// (the status page test would otherwise fail minutes later); a chromium on
// PATH, or QUIESCE_NO_BROWSER=1, passes the check.
func TestMakeTestNeedsABrowserFirst(t *testing.T) {
	empty := t.TempDir()
	_, stderr, code := makeRun(t, empty, nil, "-s", "need-browser")
	require.NotEqualf(t, 0, code, "make need-browser passes without any browser on PATH")
	for _, want := range []string{"needs Chromium", "apt-get install chromium", "QUIESCE_NO_BROWSER=1"} {
		assert.Containsf(t, stderr, want, "make need-browser's message does not say %q:\n%s", want, stderr)
	}

	_, stderr, code = makeRun(t, empty, nil, "-s", "need-browser", "QUIESCE_NO_BROWSER=1")
	assert.Equalf(t, 0, code, "make need-browser QUIESCE_NO_BROWSER=1 exits %d:\n%s", code, stderr)
	_, stderr, code = makeRun(t, empty, []string{"QUIESCE_NO_BROWSER=1"}, "-s", "need-browser")
	assert.Equalf(t, 0, code, "QUIESCE_NO_BROWSER=1 make need-browser exits %d:\n%s", code, stderr)

	withBrowser := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(withBrowser, "chromium"), []byte("#!/bin/sh\n"), 0o755))
	_, stderr, code = makeRun(t, withBrowser, nil, "-s", "need-browser")
	assert.Equalf(t, 0, code, "make need-browser exits %d with chromium on PATH:\n%s", code, stderr)

	// The check comes first: a dry run of make test lists it before go vet.
	stdout, _, _ := makeRun(t, os.Getenv("PATH"), nil, "-n", "test")
	browser, vet := strings.Index(stdout, "needs Chromium"), strings.Index(stdout, " vet ")
	assert.Falsef(t, browser < 0 || vet < 0 || browser > vet, "make test does not check for the browser before go vet:\n%s", stdout)
}

// TestMakeBenchLeavesPerformanceDocAlone: make bench passes the driver an
// empty -out (report on stdout only) unless UPDATE=1 asks it to rewrite
// docs/PERFORMANCE.md.
func TestMakeBenchLeavesPerformanceDocAlone(t *testing.T) {
	driverLine := func(args ...string) string {
		stdout, stderr, code := makeRun(t, os.Getenv("PATH"), nil, append([]string{"-n", "bench"}, args...)...)
		require.Equalf(t, 0, code, "make -n bench %v: exit %d\n%s", args, code, stderr)
		for line := range strings.Lines(stdout) {
			if strings.Contains(line, "./bench/driver") {
				return strings.TrimSpace(line)
			}
		}
		require.Fail(t, fmt.Sprintf("make -n bench runs no ./bench/driver:\n%s", stdout))
		return ""
	}
	line := driverLine()
	assert.Containsf(t, line, `-out ""`, "make bench: the driver line %q does not pass -out \"\": it would overwrite docs/PERFORMANCE.md", line)
	line = driverLine("UPDATE=1")
	assert.Containsf(t, line, `-out "docs/PERFORMANCE.md"`, "make bench UPDATE=1: the driver line %q does not write docs/PERFORMANCE.md", line)
	src := readFile(t, "../bench/driver/main.go")
	assert.Contains(t, src, `flag.StringVar(&opt.out, "out", "",`, "bench/driver: -out must default to empty (stdout only), so go run ./bench/driver alone leaves docs/PERFORMANCE.md alone")
}

// TestMakeTestNeedsHAProxy: make test (and make fleet) check for HAProxy
// before anything else, on PATH and in /usr/sbin where Debian puts it, and
// without one stop at once with the install command; a haproxy found, or
// QUIESCE_NO_HAPROXY=1, passes the check.
func TestMakeTestNeedsHAProxy(t *testing.T) {
	empty := t.TempDir()
	_, stderr, code := makeRun(t, empty, nil, "-s", "need-haproxy", "SBIN=")
	require.NotZero(t, code, "make need-haproxy passes without any haproxy")
	for _, want := range []string{"need HAProxy", "apt-get install -y --no-install-recommends haproxy", "QUIESCE_NO_HAPROXY=1"} {
		assert.Contains(t, stderr, want)
	}
	_, stderr, code = makeRun(t, empty, nil, "-s", "need-haproxy", "SBIN=", "QUIESCE_NO_HAPROXY=1")
	assert.Zero(t, code, "make need-haproxy QUIESCE_NO_HAPROXY=1:\n%s", stderr)

	onPath, sbin := t.TempDir(), t.TempDir()
	for _, dir := range []string{onPath, sbin} {
		require.NoError(t, os.WriteFile(filepath.Join(dir, "haproxy"), []byte("#!/bin/sh\n"), 0o755))
	}
	_, stderr, code = makeRun(t, onPath, nil, "-s", "need-haproxy", "SBIN=")
	assert.Zero(t, code, "make need-haproxy with haproxy on PATH:\n%s", stderr)
	_, stderr, code = makeRun(t, empty, nil, "-s", "need-haproxy", "SBIN="+sbin)
	assert.Zero(t, code, "make need-haproxy with haproxy in an sbin directory off PATH:\n%s", stderr)

	for _, target := range []string{"test", "fleet"} {
		stdout, _, _ := makeRun(t, os.Getenv("PATH"), nil, "-n", target, "SBIN=", "PATH="+empty)
		check, goCmd := strings.Index(stdout, "need HAProxy"), strings.Index(stdout, "go ")
		assert.True(t, check >= 0 && goCmd >= 0 && check < goCmd, "make %s does not check for haproxy before running go:\n%s", target, stdout)
	}
}
