package gateway

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestEchoAgent(t *testing.T) {
	a := NewEcho(time.Millisecond)
	got, err := a.Run(context.Background(), Turn{Session: "s", Text: "hello"})
	require.NoError(t, err)
	require.Equal(t, "hello", got)

	ctx, cancel := context.WithCancelCause(context.Background())
	cancel(ErrInterrupted)
	_, err = NewEcho(time.Hour).Run(ctx, Turn{Session: "s", Text: "hello"})
	require.ErrorIs(t, err, ErrInterrupted)
}

func TestExecAgent(t *testing.T) {
	tests := []struct {
		name, cmd, in, want, errPart string
	}{
		{"reply from stdout", "tr a-z A-Z", "hello", "HELLO", ""},
		{"session in env", `printf "%s" "$QUIESCE_SESSION"`, "x", "sess-1", ""},
		{"non-zero exit is an error", "echo broken >&2; exit 3", "x", "", "broken"},
		{"missing command", "/nonexistent/agent", "x", "", "exit status 127"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := NewExec(tc.cmd, quietLogger()).Run(context.Background(), Turn{Session: "sess-1", Text: tc.in})
			if tc.errPart != "" {
				require.ErrorContains(t, err, tc.errPart)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
		})
	}
}

// TestExecAgentInterruptKillsProcessGroup: cancelling a turn kills the
// command and every process it started; no orphan is left behind.
func TestExecAgentInterruptKillsProcessGroup(t *testing.T) {
	dir := t.TempDir()
	pidFile := filepath.Join(dir, "grandchild.pid")
	cmd := "sleep 300 & echo $! > " + pidFile + "; wait"
	ctx, cancel := context.WithCancelCause(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := NewExec(cmd, quietLogger()).Run(ctx, Turn{Session: "s", Text: "x"})
		done <- err
	}()
	var pid int
	eventually(t, "grandchild started", func() bool {
		b, err := os.ReadFile(pidFile)
		if err != nil {
			return false
		}
		pid, err = strconv.Atoi(strings.TrimSpace(string(b)))
		return err == nil
	})
	cancel(ErrInterrupted)
	err := recv(t, done)
	require.True(t, errors.Is(err, ErrInterrupted), "got %v", err)
	eventually(t, "grandchild gone", func() bool { return !alive(pid) })
}

// alive reports whether pid is a live (non-zombie) process.
func alive(pid int) bool {
	if err := syscall.Kill(pid, 0); err != nil {
		return false
	}
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	s := string(stat)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || !strings.HasPrefix(strings.TrimSpace(s[i+1:]), "Z")
}
