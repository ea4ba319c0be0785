package main_test

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/quiesce-dev/quiesce/internal/refused"
)

// TestE2EStatusStartingExits7: a home whose lock a process holds while
// no state file of its own is there yet is a gateway starting: local
// status says "starting (pid N holds the home's lock ...)" and exits 7,
// with --json too (condition "starting"), never 5 (not running) or 0.
func TestE2EStatusStartingExits7(t *testing.T) {
	t.Parallel()
	home := newHome(t)
	dir, err := os.Open(home)
	require.NoError(t, err)
	t.Cleanup(func() { _ = dir.Close() })
	// The lock run takes: an exclusive flock on the home directory, then its pid in gateway.lock.
	require.NoError(t, syscall.Flock(int(dir.Fd()), syscall.LOCK_EX|syscall.LOCK_NB))
	pid := os.Getpid()
	require.NoError(t, os.WriteFile(filepath.Join(home, "gateway.lock"), []byte(strconv.Itoa(pid)+"\n"), 0o644))

	out, errOut, code := cli(t, nil, "status", "--home", home)
	assert.Equal(t, 7, code, "stdout %s stderr %s", out, errOut)
	assert.Contains(t, out, fmt.Sprintf("starting (pid %d holds the home's lock and has not written its state yet)", pid))
	doc, code := statusJSON(t, nil, "--home", home)
	assert.Equal(t, 7, code, "status --json exits by state too")
	assert.Equal(t, "starting", doc["condition"])
}

// TestE2EStatusNoAnswerIsUnreachable: a gateway address that accepts the
// connection but never answers is unreachable (exit 6, like a refused
// connection) once the request's 10 s bound has passed, with --json too,
// and the message says so; not an error (1).
func TestE2EStatusNoAnswerIsUnreachable(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { _ = ln.Close() })
	go func() { // accept and hold every connection until the listener closes: no answer
		var held []net.Conn
		defer func() {
			for _, c := range held {
				_ = c.Close()
			}
		}()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			held = append(held, c)
		}
	}()
	url := "http://" + ln.Addr().String()
	for name, args := range map[string][]string{"Text": {"status"}, "JSON": {"status", "--json"}} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			out, errOut, code := cli(t, []string{"QUIESCE_URL=" + url, "QUIESCE_TOKEN=" + opsToken}, args...)
			assert.Equal(t, 6, code, "stdout %s stderr %s", out, errOut)
			assert.Contains(t, errOut, "did not answer within 10s")
		})
	}
}

// TestE2EDrainAnnounceBounds: --announce takes 0 to 5m, both ends
// included: at the bounds the command goes on to the gateway (here a
// refused connection, exit 1), past them it is a usage error (exit 2)
// that sends nothing.
func TestE2EDrainAnnounceBounds(t *testing.T) {
	t.Parallel()
	env := []string{"QUIESCE_URL=http://" + refused.Addr(t), "QUIESCE_TOKEN=" + opsToken}
	for _, tc := range []struct {
		announce string
		code     int
		want     string
	}{
		{"5m", 1, "connection refused"},
		{"0s", 1, "connection refused"},
		{"5m0.001s", 2, "from 0 to 5m0s"},
	} {
		t.Run(tc.announce, func(t *testing.T) {
			t.Parallel()
			out, errOut, code := cli(t, env, "drain", "--announce", tc.announce)
			assert.Equal(t, tc.code, code, "stdout %s stderr %s", out, errOut)
			assert.Contains(t, errOut, tc.want)
		})
	}
}
