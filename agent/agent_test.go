package agent

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

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestEchoAgent(t *testing.T) {
	a := NewEcho(time.Millisecond)
	got, err := a.Run(context.Background(), Turn{Session: "s", Text: "hello"})
	require.NoError(t, err)
	require.Equal(t, "hello", got)

	ctx, cancel := context.WithCancelCause(context.Background())
	cancel(errInterrupted)
	_, err = NewEcho(time.Hour).Run(ctx, Turn{Session: "s", Text: "hello"})
	require.ErrorIs(t, err, errInterrupted)
}

func TestExecAgent(t *testing.T) {
	tests := []struct {
		name, cmd, in, want, errPart string
	}{
		{"reply from stdout", "tr a-z A-Z", "hello", "HELLO", ""},
		{"session in env", `printf "%s" "$QUIESCE_SESSION"`, "x", "sess-1", ""},
		{"non-zero exit is an error", "echo broken >&2; exit 3", "x", "", "broken"},
		{"silent non-zero exit is an error", "echo partial; exit 1", "x", "", "exit status 1"},
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
	cancel(errInterrupted)
	err := recv(t, done)
	require.True(t, errors.Is(err, errInterrupted), "got %v", err)
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

// TestExecReplyIsBounded: a runaway command's output is cut at maxReply
// (io.Copy must not bypass the limit through ReadFrom).
func TestExecReplyIsBounded(t *testing.T) {
	reply, err := NewExec(`head -c 3000000 /dev/zero | tr '\000' a`, quietLogger()).Run(context.Background(), Turn{Session: "s", Text: "x"})
	require.NoError(t, err)
	assert.Len(t, reply, maxReply)
}

// TestExecAgentDoesNotInheritTheSupervisorSocket: an agent must not be
// able to tell systemd anything on the gateway's behalf.
func TestExecAgentDoesNotInheritTheSupervisorSocket(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", "/run/systemd/notify")
	reply, err := NewExec(`echo "[$NOTIFY_SOCKET]"`, quietLogger()).Run(context.Background(), Turn{Session: "s", Text: "x"})
	require.NoError(t, err)
	assert.Equal(t, "[]", reply)
}

// TestEchoAgentZeroWork: an echo agent with no work time replies at once,
// and a cancelled turn is cut off with its cause before any reply or delta.
func TestEchoAgentZeroWork(t *testing.T) {
	for _, work := range []time.Duration{0, -time.Second} {
		a := NewEcho(work)
		got, err := a.Run(context.Background(), Turn{Session: "s", Text: "hello"})
		require.NoError(t, err)
		require.Equal(t, "hello", got)

		// A cancelled turn is always cut off, with the cancel's cause,
		// before its reply and before any delta.
		ctx, cancel := context.WithCancelCause(context.Background())
		cancel(errInterrupted)
		var deltas []string
		_, err = a.Run(ctx, Turn{Session: "s", Text: "hello"})
		require.ErrorIs(t, err, errInterrupted)
		_, err = a.Run(ctx, Turn{Session: "s", Text: "a b", OnDelta: func(d string) { deltas = append(deltas, d) }})
		require.ErrorIs(t, err, errInterrupted)
		require.Empty(t, deltas)

		// A turn cancelled by its first delta stops before the second.
		ctx, cancel = context.WithCancelCause(context.Background())
		_, err = a.Run(ctx, Turn{Session: "s", Text: "a b", OnDelta: func(d string) {
			deltas = append(deltas, d)
			cancel(context.Canceled)
		}})
		require.ErrorIs(t, err, context.Canceled)
		require.Equal(t, []string{"a "}, deltas)
	}
}
