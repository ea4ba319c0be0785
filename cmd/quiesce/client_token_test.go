package main_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestE2EClientTokenSource: a client command over HTTP sends
// QUIESCE_TOKEN when it is set, whatever --tokens-file says ("QUIESCE_TOKEN
// wins"), and the token file's first token otherwise; a refused token
// names where it came from.
func TestE2EClientTokenSource(t *testing.T) {
	t.Parallel()
	home := newHome(t)
	p := startGateway(t, home, fakeProcRoot(t, "boot-token-source", 100))
	wrong := filepath.Join(t.TempDir(), "wrong")
	require.NoError(t, os.WriteFile(wrong, []byte("ops wrong-token-0123456789abcdef\n"), 0o600))
	right := filepath.Join(home, "tokens")
	for _, tc := range []struct {
		name string
		env  []string
		file string
		code int
		want string
	}{
		{"EnvWinsOverAWrongFile", []string{"QUIESCE_TOKEN=" + opsToken}, wrong, 0, ""},
		{"AWrongEnvWinsOverTheRightFile", []string{"QUIESCE_TOKEN=wrong-token-0123456789abcdef"}, right, 1, "refused the token from QUIESCE_TOKEN"},
		{"FileWithoutEnv", nil, right, 0, ""},
		{"WrongFileWithoutEnv", nil, wrong, 1, "refused the token from the token file " + wrong},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			out, errOut, code := cli(t, tc.env, "status", "--url", p.url, "--tokens-file", tc.file)
			assert.Equal(t, tc.code, code, "stdout %s stderr %s", out, errOut)
			assert.Contains(t, errOut, tc.want)
		})
	}
}
