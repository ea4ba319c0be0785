package main_test

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// writeSecret replaces the tokens file at path the way a rotation does
// (a new file renamed over the old one), with mode.
func writeSecret(t *testing.T, path, content string, mode os.FileMode) {
	t.Helper()
	tmp := path + ".rotating"
	require.NoError(t, os.WriteFile(tmp, []byte(content), 0o600))
	require.NoError(t, os.Chmod(tmp, mode))
	require.NoError(t, os.Rename(tmp, path))
}

// logCount counts the gateway's log lines with message msg.
func (p *gatewayProc) logCount(msg string) int {
	return strings.Count(p.stderr.String(), `"msg":"`+msg+`"`)
}

// statusCode is the status code of GET /api/gateway/status with token.
func (p *gatewayProc) statusCode(token string) int {
	p.t.Helper()
	return p.call(http.MethodGet, "/api/gateway/status", token, "").code
}

// TestSIGHUPReloadsTokens starts a gateway on a tokens file outside its
// home (--tokens-file, as a mounted Secret), rotates the token and sends
// SIGHUP: the new token works and the old one gets 401, without a
// restart. Then each kind of bad file + SIGHUP keeps the current token
// working, the bad file's token refused, and logs why at ERROR. The
// gateway survives every SIGHUP and still shuts down cleanly.
func TestSIGHUPReloadsTokens(t *testing.T) {
	t.Parallel()
	const (
		rotated = "ops-rotated-token-0123456789"
		refused = "ops-refused-token-0123456789"
	)
	secret := filepath.Join(t.TempDir(), "secret", "tokens")
	require.NoError(t, os.Mkdir(filepath.Dir(secret), 0o700))
	writeSecret(t, secret, "ops "+opsToken+"\n", 0o400)
	home := filepath.Join(t.TempDir(), "home") // no tokens file in the home
	p := startGateway(t, home, fakeProcRoot(t, "boot-hup", 100), "--tokens-file", secret)
	require.Equal(t, http.StatusOK, p.statusCode(opsToken))
	pid := p.cmd.Process.Pid

	writeSecret(t, secret, "# rotated\nops "+rotated+"\n", 0o600)
	p.signal(syscall.SIGHUP)
	eventually(t, 10*time.Second, "the tokens reloaded log line", func() bool { return p.logCount("tokens reloaded") == 1 })
	assert.Equal(t, http.StatusOK, p.statusCode(rotated), "the new token works")
	assert.Equal(t, http.StatusUnauthorized, p.statusCode(opsToken), "the old token is refused")

	bad := []struct {
		name   string
		write  func()
		reason string // in the ERROR line
	}{
		{"GroupReadable", func() { writeSecret(t, secret, "ops "+refused+"\n", 0o640) }, "0640"},
		{"WorldReadable", func() { writeSecret(t, secret, "ops "+refused+"\n", 0o644) }, "chmod 600"},
		{"Malformed", func() { writeSecret(t, secret, "ops "+refused+" trailing\n", 0o600) }, "got 3 fields"},
		{"Missing", func() { require.NoError(t, os.Remove(secret)) }, "no such file"},
	}
	for i, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			tt.write()
			p.signal(syscall.SIGHUP)
			eventually(t, 10*time.Second, "the reload failure log line", func() bool {
				return p.logCount("tokens reload failed; keeping the old tokens") == i+1
			})
			assert.Equal(t, http.StatusOK, p.statusCode(rotated), "the current token still works")
			assert.Equal(t, http.StatusUnauthorized, p.statusCode(refused), "the bad file's token is refused")
			line := lastLine(p.stderr.String(), "tokens reload failed")
			assert.Contains(t, line, `"level":"ERROR"`)
			assert.Contains(t, line, secret, "the log names the file")
			assert.Contains(t, line, tt.reason, "the log says why")
		})
	}

	r := p.call(http.MethodGet, "/api/gateway/status", rotated, "")
	require.Equal(t, http.StatusOK, r.code, r.raw)
	assert.Equal(t, float64(pid), r.body["pid"], "the same process serves: no restart")
	p.signal(syscall.SIGTERM)
	assert.Equal(t, 0, p.wait(), "SIGHUP never killed it: the shutdown sequence ran, exit 0")
}

// TestTokensFileConfigErrors shows that run refuses to start, with exit 78
// and a message naming the file and the fix, when --tokens-file is
// missing or readable by others.
func TestTokensFileConfigErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	open := filepath.Join(dir, "open-tokens")
	require.NoError(t, os.WriteFile(open, []byte("ops "+opsToken+"\n"), 0o600))
	require.NoError(t, os.Chmod(open, 0o644))
	tests := []struct {
		name string
		path string
		want []string
	}{
		{"Missing", filepath.Join(dir, "absent"), []string{filepath.Join(dir, "absent"), "missing", "--tokens-file"}},
		{"WorldReadable", open, []string{open, "0644", "chmod 600"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			home := filepath.Join(t.TempDir(), "home")
			p := startProcess(t, home, fakeProcRoot(t, "boot-cfg", 100), "--tokens-file", tt.path)
			assert.Equal(t, 78, p.wait(), "exit 78 (EX_CONFIG)")
			for _, w := range tt.want {
				assert.Contains(t, p.stderr.String(), w)
			}
		})
	}
}

// lastLine returns the last line of log containing s.
func lastLine(log, s string) string {
	lines := strings.Split(log, "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if strings.Contains(lines[i], s) {
			return lines[i]
		}
	}
	return ""
}
