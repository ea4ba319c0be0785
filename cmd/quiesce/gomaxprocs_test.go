package main_test

import (
	"bufio"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// TestGOMAXPROCSFollowsTheCPUsItMayUse: the gateway runs on the Go
// runtime's default settings, so its GOMAXPROCS follows the CPUs it may
// use when they change while it runs (a container's CPU limit, or, as
// here, its CPU affinity), as go_sched_gomaxprocs_threads in /metrics
// shows.
func TestGOMAXPROCSFollowsTheCPUsItMayUse(t *testing.T) {
	var all unix.CPUSet
	require.NoError(t, unix.SchedGetaffinity(0, &all))
	p := startGateway(t, newHome(t), fakeProcRoot(t, "boot-a", 100))
	gomaxprocs := func() int {
		r := p.call(http.MethodGet, "/metrics", "", "")
		require.Equal(t, http.StatusOK, r.code)
		sc := bufio.NewScanner(strings.NewReader(r.raw))
		for sc.Scan() {
			if v, ok := strings.CutPrefix(sc.Text(), "go_sched_gomaxprocs_threads "); ok {
				n, err := strconv.Atoi(v)
				require.NoError(t, err, "go_sched_gomaxprocs_threads %q", v)
				return n
			}
		}
		require.Fail(t, "no go_sched_gomaxprocs_threads in /metrics")
		return 0
	}
	if gomaxprocs() < 2 {
		t.Skip("the gateway starts with GOMAXPROCS 1: no CPU to take away")
	}
	// One CPU it may use now: the first of the test's own.
	var one unix.CPUSet
	for cpu := range 1024 {
		if all.IsSet(cpu) {
			one.Set(cpu)
			break
		}
	}
	// Every thread of the gateway, again on each check: a thread started
	// in between keeps the mask of the thread that started it.
	pin := func() {
		tasks, err := os.ReadDir(filepath.Join("/proc", strconv.Itoa(p.cmd.Process.Pid), "task"))
		require.NoError(t, err)
		for _, task := range tasks {
			tid, err := strconv.Atoi(task.Name())
			require.NoError(t, err)
			if err := unix.SchedSetaffinity(tid, &one); err != nil && !errors.Is(err, unix.ESRCH) { // ESRCH: the thread exited
				require.NoError(t, err, "sched_setaffinity %d", tid)
			}
		}
	}
	eventually(t, 15*time.Second, "GOMAXPROCS 1 after the gateway was pinned to one CPU", func() bool {
		pin()
		return gomaxprocs() == 1
	})
}
