package main_test

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// freeAddr returns a loopback address nothing listens on right now.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	return addr
}

// TestCheck runs "quiesce check" on homes and flags that run would start
// with or refuse, and shows that check exits as run would (0, 2, 78),
// prints every check's outcome (all of them, also after a failure), names
// what to fix, and creates or changes nothing.
func TestCheck(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		// setup prepares the home (made by newHome) and returns extra
		// flags and environment variables.
		setup  func(t *testing.T, home string) (args, env []string)
		code   int
		lines  []string // in stdout
		stderr []string // in stderr
	}{
		{"Passes", func(t *testing.T, home string) ([]string, []string) { return nil, nil },
			0, []string{"ok   flags", "ok   home", "ok   tokens   " + "%home%/tokens: 1 token", "ok   address", "all 4 checks passed"}, nil},
		{"MissingHomeIsCreatable", func(t *testing.T, home string) ([]string, []string) {
			require.NoError(t, os.RemoveAll(home))
			return []string{"--dev"}, nil
		}, 0, []string{"does not exist yet; run creates it", "run --dev creates it"}, nil},
		{"UsageError", func(t *testing.T, home string) ([]string, []string) {
			return []string{"--drain-timeout", "0s"}, nil
		}, 2, []string{"FAIL flags", "--drain-timeout 0s: must be greater than zero", "ok   home", "ok   tokens"}, []string{"1 of 4 checks failed (flags); run would exit 2"}},
		{"GroupReadableTokens", func(t *testing.T, home string) ([]string, []string) {
			require.NoError(t, os.Chmod(filepath.Join(home, "tokens"), 0o640))
			return nil, nil
		}, 78, []string{"FAIL tokens", "0640", "chmod 600", "ok   address"}, []string{"run would exit 78"}},
		{"TokensFileFromEnvMissing", func(t *testing.T, home string) ([]string, []string) {
			return nil, []string{"QUIESCE_TOKENS_FILE=" + filepath.Join(home, "absent")}
		}, 78, []string{"FAIL tokens", "%home%/absent is missing", "--tokens-file"}, nil},
		{"FIFOInHome", func(t *testing.T, home string) ([]string, []string) {
			require.NoError(t, syscall.Mkfifo(filepath.Join(home, "gateway_state.json"), 0o600))
			return nil, nil
		}, 78, []string{"FAIL home", "%home%/gateway_state.json is a FIFO", "move it away", "ok   tokens"}, nil},
		{"AddressInUse", func(t *testing.T, home string) ([]string, []string) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			require.NoError(t, err)
			t.Cleanup(func() { _ = ln.Close() })
			return []string{"--addr", ln.Addr().String()}, nil
		}, 78, []string{"FAIL address", "address already in use"}, nil},
		{"UsageBeatsConfig", func(t *testing.T, home string) ([]string, []string) {
			require.NoError(t, os.Chmod(filepath.Join(home, "tokens"), 0o644))
			return []string{"--agent", "exec"}, nil
		}, 2, []string{"FAIL flags", "--agent exec needs --agent-cmd", "FAIL tokens"}, []string{"2 of 4 checks failed (flags, tokens); run would exit 2"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			home := newHome(t)
			args, env := tt.setup(t, home)
			before := treeOf(t, filepath.Dir(home))
			full := append([]string{"check", "--home", home, "--addr", freeAddr(t)}, args...)
			stdout, stderr, code := cli(t, env, full...)
			assert.Equal(t, tt.code, code, "exit code; stdout:\n%s\nstderr:\n%s", stdout, stderr)
			for _, l := range tt.lines {
				assert.Contains(t, stdout, strings.ReplaceAll(l, "%home%", home))
			}
			for _, l := range tt.stderr {
				assert.Contains(t, stderr, l)
			}
			assert.Equal(t, before, treeOf(t, filepath.Dir(home)), "check created or changed nothing")
		})
	}
}

// TestCheckWhileAGatewayRuns: a home a live gateway holds fails (run
// would exit 78) naming its pid; with --allow-running the same check
// passes without trying the gateway's address, so ExecReload can check a
// changed tokens file before the SIGHUP, and a bad one fails it while the
// gateway keeps serving.
func TestCheckWhileAGatewayRuns(t *testing.T) {
	t.Parallel()
	home := newHome(t)
	p := startGateway(t, home, fakeProcRoot(t, "boot-check", 100))
	pid := strconv.Itoa(p.cmd.Process.Pid)
	addr := p.url[len("http://"):]

	stdout, stderr, code := cli(t, nil, "check", "--home", home, "--addr", addr)
	assert.Equal(t, 78, code, "stdout:\n%s\nstderr:\n%s", stdout, stderr)
	assert.Contains(t, stdout, "FAIL home")
	assert.Contains(t, stdout, "held by pid "+pid)
	assert.Contains(t, stdout, "--allow-running")
	assert.Contains(t, stdout, "ok   address  not tried")

	stdout, stderr, code = cli(t, nil, "check", "--allow-running", "--home", home, "--addr", addr)
	assert.Equal(t, 0, code, "stdout:\n%s\nstderr:\n%s", stdout, stderr)
	assert.Contains(t, stdout, "held by the running gateway, pid "+pid)

	require.NoError(t, os.Chmod(filepath.Join(home, "tokens"), 0o644))
	stdout, _, code = cli(t, nil, "check", "--allow-running", "--home", home, "--addr", addr)
	assert.Equal(t, 78, code)
	assert.Contains(t, stdout, "FAIL tokens")
	assert.Equal(t, 200, p.statusCode(opsToken), "the gateway serves on with its tokens")

	p.signal(syscall.SIGTERM)
	assert.Equal(t, 0, p.wait())
}

// treeOf lists every path under root with its mode and size.
func treeOf(t *testing.T, root string) []string {
	t.Helper()
	var out []string
	require.NoError(t, filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		out = append(out, fmt.Sprintf("%s %v %d", p, fi.Mode(), fi.Size()))
		return nil
	}))
	return out
}

// TestCheckReadOnlyHomeIsTransient: a home on a read-only file system is
// exit 75 (EX_TEMPFAIL: a remount may cure it, so a supervisor should
// restart), named with the cause, not 78.
func TestCheckReadOnlyHomeIsTransient(t *testing.T) {
	t.Parallel()
	disk := smallDisk(t)
	home := filepath.Join(disk, "home")
	require.NoError(t, os.Mkdir(home, 0o700))
	require.NoError(t, os.WriteFile(filepath.Join(home, "tokens"), []byte("ops "+opsToken+"\n"), 0o600))
	if out, err := exec.Command("mount", "-o", "remount,ro", disk).CombinedOutput(); err != nil {
		t.Skipf("cannot remount %s read-only: %v: %s", disk, err, out)
	}
	stdout, stderr, code := cli(t, nil, "check", "--home", home, "--addr", freeAddr(t))
	assert.Equal(t, 75, code, "stdout:\n%s\nstderr:\n%s", stdout, stderr)
	assert.Contains(t, stdout, "FAIL home")
	assert.Contains(t, stdout, "read-only file system")
	assert.Contains(t, stdout, "ok   tokens")
	assert.Contains(t, stderr, "run would exit 75")
}
