package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// mainWithEnviron is newTestMain whose Environ lists env, as a process's
// environment does.
func mainWithEnviron(env map[string]string) *Main {
	m, _, _ := newTestMain(env)
	m.Environ = func() []string {
		var kv []string
		for k, v := range env {
			kv = append(kv, k+"="+v)
		}
		return kv
	}
	return m
}

// TestUnknownEnvNamesWhatNoCommandReads: a QUIESCE_ variable that no
// command reads (a misspelling, a flag that is gone) is reported; a flag's
// own variable, an alias's, a client command's and QUIESCE_TOKEN are not,
// nor an empty one or another program's.
func TestUnknownEnvNamesWhatNoCommandReads(t *testing.T) {
	for _, tc := range []struct {
		name string
		env  map[string]string
		want []string
	}{
		{"none", map[string]string{"PATH": "/bin", "HOME": "/root"}, nil},
		{"run's flags", map[string]string{"QUIESCE_DRAIN_TIMEOUT": "3s", "QUIESCE_HOME": "/h", "QUIESCE_PROC_ROOT": "/p"}, nil},
		{"client commands and the token", map[string]string{"QUIESCE_URL": "http://x", "QUIESCE_TOKEN": "t"}, nil},
		{"a flag without a variable", map[string]string{"QUIESCE_TIMEOUT": "1s"}, []string{"QUIESCE_TIMEOUT"}},
		{"an alias", map[string]string{"QUIESCE_TOKEN_FILE": "/t"}, nil},
		{"a flag that is gone", map[string]string{"QUIESCE_HOME_CHANNEL": "ops", "QUIESCE_HOME": "/h"}, []string{"QUIESCE_HOME_CHANNEL"}},
		{"misspellings, sorted", map[string]string{"QUIESCE_DRAIN_TIMOUT": "3s", "QUIESCE_AGENT_URLS": "x"}, []string{"QUIESCE_AGENT_URLS", "QUIESCE_DRAIN_TIMOUT"}},
		{"empty is unset", map[string]string{"QUIESCE_HOME_CHANNEL": ""}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, mainWithEnviron(tc.env).unknownEnv())
		})
	}
}

// TestRunAndCheckSayWhichVariablesAreIgnored: run logs the QUIESCE_
// variables it ignores (before anything else can fail), and check's flags
// line names them, so a stale QUIESCE_HOME_CHANNEL in a unit file is seen,
// not silently dropped.
func TestRunAndCheckSayWhichVariablesAreIgnored(t *testing.T) {
	env := map[string]string{"QUIESCE_HOME_CHANNEL": "ops", "QUIESCE_URL": "http://127.0.0.1:1"}

	t.Run("run", func(t *testing.T) {
		notDir := filepath.Join(t.TempDir(), "file")
		require.NoError(t, os.WriteFile(notDir, nil, 0o600))
		m := mainWithEnviron(env)
		var errb strings.Builder
		m.Stderr = &errb
		code := m.Main(context.Background(), []string{"run", "--home", notDir, "--addr", "127.0.0.1:0"})
		assert.NotZero(t, code, "a home that is a file cannot start")
		assert.Contains(t, errb.String(), "ignoring environment variables that no quiesce command reads")
		assert.Contains(t, errb.String(), "QUIESCE_HOME_CHANNEL")
		assert.NotContains(t, errb.String(), "QUIESCE_URL", "client commands read it")
	})
	t.Run("check", func(t *testing.T) {
		m := mainWithEnviron(env)
		var out strings.Builder
		m.Stdout = &out
		code := m.Main(context.Background(), []string{"check", "--dev", "--home", filepath.Join(t.TempDir(), "home"), "--addr", "127.0.0.1:0"})
		assert.Equal(t, 0, code, "an ignored variable is not a failure: %s", out.String())
		assert.Contains(t, out.String(), "ignored, as no command reads them: QUIESCE_HOME_CHANNEL\n")
	})
}
