package main_test

import (
	"bytes"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/quiesce-dev/quiesce/notify"
)

// smallDisk mounts a 1 MiB tmpfs for the test and returns its path. It
// skips the test where mounting is not allowed (not root).
func smallDisk(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", dir).CombinedOutput()
	if err != nil {
		t.Skipf("cannot mount a small tmpfs here (%v: %s): the disk-full drill needs root", err, bytes.TrimSpace(out))
	}
	t.Cleanup(func() {
		out, err := exec.Command("umount", "-l", dir).CombinedOutput()
		assert.NoErrorf(t, err, "umount %s: %v: %s", dir, err, out)
	})
	return dir
}

// fill writes filler until the file system is full and returns a
// function that frees the space again.
func fill(t *testing.T, dir string) (free func()) {
	t.Helper()
	path := filepath.Join(dir, "filler")
	f, err := os.Create(path)
	require.NoError(t, err)
	defer f.Close()
	for _, size := range []int{64 << 10, 4 << 10, 512, 64, 1} {
		chunk := make([]byte, size)
		for {
			if _, err := f.Write(chunk); err != nil {
				require.True(t, errors.Is(err, syscall.ENOSPC), "filling: %v", err)
				break
			}
		}
	}
	return func() { require.NoError(t, os.Remove(path)) }
}

// TestE2EDiskFull: with the home on a full disk, an internal event is
// refused with 503 spool_unavailable (never a 202 for an event not on
// disk); a forced shutdown still pings the cut-off session through the
// log sink although the outbox cannot record it (one failing sink never
// holds back the others) and exits 0; once space is back, the next event
// is accepted intact and the failed append did not poison the spool.
func TestE2EDiskFull(t *testing.T) {
	t.Parallel()
	needBinary(t)
	disk := smallDisk(t)
	home := filepath.Join(disk, "home")
	require.NoError(t, os.Mkdir(home, 0o700))
	require.NoError(t, os.WriteFile(filepath.Join(home, "tokens"), []byte("ops "+opsToken+"\n"), 0o600))
	proc := fakeProcRoot(t, "boot-full", 100)
	p := startGateway(t, home, proc, "--agent-work", "1m", "--drain-timeout", "1m")
	r := p.call(http.MethodPost, "/api/gateway/events", opsToken, `{"session":"s","text":"before"}`)
	require.Equal(t, http.StatusAccepted, r.code, r.raw)

	free := fill(t, disk)
	// Large enough to need new pages: the file's last page may have room.
	big := "refused " + strings.Repeat("x", 32<<10)
	r = p.call(http.MethodPost, "/api/gateway/events", opsToken, `{"session":"s","text":"`+big+`"}`)
	assert.Equal(t, http.StatusServiceUnavailable, r.code, r.raw)
	assert.Equal(t, "spool_unavailable", r.body["error"])
	assert.NotEmpty(t, r.header.Get("Retry-After"))

	free()
	r = p.call(http.MethodPost, "/api/gateway/events", opsToken, `{"session":"t","text":"after"}`)
	require.Equal(t, http.StatusAccepted, r.code, r.raw)

	inflight := p.turnAsync("alice", "long")
	p.waitInFlight(3) // alice's turn and the system turns of "before" and "after"
	free = fill(t, disk)
	r = p.call(http.MethodPost, "/api/gateway/shutdown", opsToken, `{"force":true}`)
	require.Equal(t, http.StatusAccepted, r.code, r.raw)
	await(t, inflight)
	require.Equal(t, 0, p.wait(), "exit 0 after the sequence, even with the outbox full")
	assert.Contains(t, p.stderr.String(), `"msg":"notification","id"`, "the log sink got the messages")
	assert.Contains(t, p.stderr.String(), `"target":"alice"`)
	free()

	// The spool holds both accepted events, intact, and nothing glued.
	data, err := os.ReadFile(filepath.Join(home, "events.spool.jsonl"))
	require.NoError(t, err)
	assert.Contains(t, string(data), `"text":"before"`)
	assert.Contains(t, string(data), `"text":"after"`)
	assert.NotContains(t, string(data), "refused")
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		assert.True(t, strings.HasPrefix(line, "{") && strings.HasSuffix(line, "}"), "line %q", line)
	}
	assert.Empty(t, outbox(t, home, notify.KindSessionInterrupted), "the outbox could not record the ping (disk full)")
}
