package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/quiesce-dev/quiesce/fsm"
	"github.com/quiesce-dev/quiesce/internal/homefile"
)

// deadPID returns the pid of a process that has exited and been reaped.
func deadPID(t *testing.T) int {
	t.Helper()
	cmd := exec.Command("true")
	require.NoError(t, cmd.Run())
	return cmd.Process.Pid
}

// writeState writes a gateway_state.json as a gateway with pid would.
func writeState(t *testing.T, home string, doc stateFile) {
	t.Helper()
	data, err := json.Marshal(doc)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(home, StateFileName), data, 0o600))
}

// TestLocalStatusOneSource: live, pid, state and uptime come from one
// consistent source. The home's lock says whether a gateway is live; a
// holder whose state file is not its own (a previous gateway's, or none,
// or gateway.lock still naming the exited previous pid) is "starting",
// never "live with the previous pid"; a live gateway's uptime runs to now,
// not to its last state write; a home nobody holds is not running, with
// its last pid and no turns in flight.
func TestLocalStatusOneSource(t *testing.T) {
	me := os.Getpid()
	gone := deadPID(t)
	startedAt := time.Now().Add(-29 * time.Second).UTC()
	previous := stateFile{GatewayState: fsm.Running, ActiveAgents: 2, PID: gone, StartedAt: startedAt.Add(-time.Hour),
		UpdatedAt: startedAt.Add(-time.Minute), Seq: 40, Addr: "127.0.0.1:1"}
	own := stateFile{GatewayState: fsm.Draining, ActiveAgents: 1, PID: me, StartedAt: startedAt, UpdatedAt: startedAt, Seq: 3}
	stopped := stateFile{GatewayState: fsm.Stopped, PID: gone, StartedAt: startedAt, UpdatedAt: startedAt.Add(time.Second), Seq: 9}
	for _, tc := range []struct {
		name    string
		locked  bool
		lockPID int // written to gateway.lock after locking (0: leave ours)
		state   *stateFile
		want    string
		wantPID int
		check   func(t *testing.T, hs HomeStatus)
	}{
		{name: "held, state file of the previous gateway", locked: true, state: &previous, want: HomeStarting, wantPID: me},
		{name: "held, gateway.lock still names the exited previous pid", locked: true, lockPID: gone, state: &previous,
			want: HomeStarting, wantPID: 0},
		{name: "held, no state file yet", locked: true, want: HomeStarting, wantPID: me},
		{name: "held, its own state file", locked: true, state: &own, want: HomeRunning, wantPID: me,
			check: func(t *testing.T, hs HomeStatus) {
				assert.Equal(t, fsm.Draining, hs.State)
				assert.Equal(t, 1, hs.ActiveAgents)
				assert.GreaterOrEqual(t, hs.UptimeSeconds, 29.0, "uptime is now - started_at, not updated_at - started_at")
				assert.Equal(t, uint64(3), hs.Seq)
			}},
		{name: "not held, stopped cleanly", state: &stopped, want: HomeNotRunning, wantPID: gone,
			check: func(t *testing.T, hs HomeStatus) {
				assert.Equal(t, fsm.Stopped, hs.State, "the last recorded state")
				assert.False(t, hs.Live)
			}},
		{name: "not held, died running", state: &previous, want: HomeNotRunning, wantPID: gone,
			check: func(t *testing.T, hs HomeStatus) {
				assert.Equal(t, fsm.Running, hs.State, "the last recorded state")
				assert.Zero(t, hs.ActiveAgents, "no turn is in flight in a process that is gone")
				assert.Zero(t, hs.UptimeSeconds)
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			home := t.TempDir()
			if tc.locked {
				l, err := lockHome(home, time.Second)
				require.NoError(t, err)
				t.Cleanup(func() { _ = l.release() })
				if tc.lockPID != 0 {
					require.NoError(t, os.WriteFile(filepath.Join(home, LockFileName), []byte(strconv.Itoa(tc.lockPID)+"\n"), 0o644))
				}
			}
			if tc.state != nil {
				writeState(t, home, *tc.state)
			}
			hs, err := LocalStatus(home, t.TempDir(), 0)
			require.NoError(t, err)
			assert.Equal(t, tc.want, hs.Condition)
			assert.Equal(t, tc.wantPID, hs.PID)
			assert.Equal(t, tc.locked, hs.Live, "live is whether the lock is held")
			if tc.want == HomeStarting {
				assert.Equal(t, StateStarting, hs.State)
				assert.Zero(t, hs.ActiveAgents, "a starting gateway has no turns; the previous one's count is not its")
				assert.Empty(t, hs.Addr, "the previous gateway's address is not the starting one's")
			}
			if tc.check != nil {
				tc.check(t, hs)
			}
		})
	}

	_, err := LocalStatus(t.TempDir(), t.TempDir(), 0)
	require.ErrorIs(t, err, os.ErrNotExist, "no gateway ever ran there")
}

// TestLocalStatusNeverBlocksOnHomeFiles: a FIFO, a directory or a symlink
// at gateway_state.json or gateway.lock makes LocalStatus fail at once
// with an error naming the file, never hang on the open.
func TestLocalStatusNeverBlocksOnHomeFiles(t *testing.T) {
	for _, name := range []string{StateFileName, LockFileName} {
		for kind, plant := range map[string]func(p string) error{
			"fifo":    func(p string) error { return syscall.Mkfifo(p, 0o600) },
			"dir":     func(p string) error { return os.Mkdir(p, 0o700) },
			"symlink": func(p string) error { return os.Symlink("/dev/zero", p) },
		} {
			t.Run(name+"/"+kind, func(t *testing.T) {
				home := t.TempDir()
				if name != StateFileName {
					writeState(t, home, stateFile{GatewayState: fsm.Stopped, PID: 1})
				}
				path := filepath.Join(home, name)
				require.NoError(t, plant(path))
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				done := make(chan error, 1)
				go func() {
					_, err := LocalStatus(home, t.TempDir(), 0)
					done <- err
				}()
				select {
				case err := <-done:
					require.Error(t, err)
					assert.ErrorIs(t, err, homefile.ErrNotRegular)
					assert.Contains(t, err.Error(), path)
				case <-ctx.Done():
					require.Fail(t, fmt.Sprintf("LocalStatus hangs on a %s at %s", kind, name))
				}
			})
		}
	}
}
