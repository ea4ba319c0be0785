package marker_test

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/quiesce-dev/quiesce/internal/homefile"
	"github.com/quiesce-dev/quiesce/marker"
)

// TestHomefileWriteAtomic checks the atomic writer the marker is written
// with (homefile.WriteAtomic) on the cases the marker depends on.
func TestHomefileWriteAtomic(t *testing.T) {
	for _, perm := range []os.FileMode{0o600, 0o644, 0o400, 0o640} {
		t.Run(fmt.Sprintf("perm%04o", perm), func(t *testing.T) {
			dir := t.TempDir()
			p := filepath.Join(dir, "gateway_state.json")
			require.NoError(t, homefile.WriteAtomic(p, []byte("one"), perm))
			require.NoError(t, homefile.WriteAtomic(p, []byte("two"), perm), "replaces an existing file")
			data, err := os.ReadFile(p)
			require.NoError(t, err)
			require.Equal(t, "two", string(data))
			fi, err := os.Stat(p)
			require.NoError(t, err)
			require.Equal(t, perm, fi.Mode().Perm(), "got permissions %04o, want %04o", fi.Mode().Perm(), perm)
			require.Empty(t, tempFiles(t, dir))
		})
	}
	t.Run("refuses a directory target", func(t *testing.T) {
		dir := t.TempDir()
		p := filepath.Join(dir, "state")
		require.NoError(t, os.Mkdir(p, 0o700))
		err := homefile.WriteAtomic(p, []byte("x"), 0o600)
		require.ErrorIs(t, err, homefile.ErrNotRegular)
		require.DirExists(t, p)
		require.Empty(t, tempFiles(t, dir))
	})
	t.Run("refuses a symlink target", func(t *testing.T) {
		dir := t.TempDir()
		target := filepath.Join(dir, "real")
		require.NoError(t, os.WriteFile(target, []byte("real"), 0o600))
		p := filepath.Join(dir, "link")
		require.NoError(t, os.Symlink(target, p))
		require.ErrorIs(t, homefile.WriteAtomic(p, []byte("x"), 0o600), homefile.ErrNotRegular)
		data, err := os.ReadFile(target)
		require.NoError(t, err)
		require.Equal(t, "real", string(data))
	})
	t.Run("missing directory", func(t *testing.T) {
		err := homefile.WriteAtomic(filepath.Join(t.TempDir(), "nope", "f"), []byte("x"), 0o600)
		require.ErrorIs(t, err, fs.ErrNotExist)
	})
	t.Run("temp file removed when the write fails", func(t *testing.T) {
		dir := t.TempDir()
		p := filepath.Join(dir, "big")
		require.NoError(t, os.WriteFile(p, []byte("old"), 0o600))
		err := withFileSizeLimit(t, 16, func() error {
			return homefile.WriteAtomic(p, make([]byte, 4096), 0o600)
		})
		require.Error(t, err)
		require.Empty(t, tempFiles(t, dir), "temp removed on the error path")
		data, rerr := os.ReadFile(p)
		require.NoError(t, rerr)
		require.Equal(t, "old", string(data), "target untouched")
	})
}

// withFileSizeLimit runs f with RLIMIT_FSIZE lowered to limit bytes, so that
// writes beyond it fail with EFBIG (Go ignores SIGXFSZ).
func withFileSizeLimit(t *testing.T, limit uint64, f func() error) error {
	t.Helper()
	var old syscall.Rlimit
	require.NoError(t, syscall.Getrlimit(syscall.RLIMIT_FSIZE, &old))
	require.NoError(t, syscall.Setrlimit(syscall.RLIMIT_FSIZE, &syscall.Rlimit{Cur: limit, Max: old.Max}))
	defer func() { require.NoError(t, syscall.Setrlimit(syscall.RLIMIT_FSIZE, &old)) }()
	return f()
}

func TestWriteValidation(t *testing.T) {
	home := t.TempDir()
	_, err := marker.Write(home, marker.Request{Action: "cancel"})
	require.ErrorIs(t, err, marker.ErrInvalidRequest)
	require.Equal(t, marker.Absent, marker.Read(home, time.Now(), "", 0).Status)

	_, err = marker.Write(filepath.Join(home, "missing"), marker.Request{})
	require.ErrorIs(t, err, fs.ErrNotExist, "home must exist")

	require.NoError(t, os.Mkdir(marker.Path(home), 0o700))
	_, err = marker.Write(home, marker.Request{})
	require.ErrorIs(t, err, marker.ErrUnusable)
	require.DirExists(t, marker.Path(home))
}

func TestWriteRemovesOrphanTemps(t *testing.T) {
	home := t.TempDir()
	orphan := filepath.Join(home, marker.FileName+homefile.TempInfix+"0123456789abcdef")
	other := filepath.Join(home, "gateway_state.json"+homefile.TempInfix+"0123456789abcdef")
	for _, p := range []string{orphan, other} {
		require.NoError(t, os.WriteFile(p, []byte(`{"action":"dr`), 0o600))
	}
	_, err := marker.Write(home, marker.Request{})
	require.NoError(t, err)
	require.NoFileExists(t, orphan, "the marker's orphaned temp file is cleaned")
	require.FileExists(t, other, "other files' temps are not the marker's business")
}

func TestConcurrentWritesInProcess(t *testing.T) {
	home := t.TempDir()
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 25 {
				_, err := marker.Write(home, marker.Request{Principal: fmt.Sprintf("g%d-%d", g, i)})
				require.NoError(t, err)
				st := marker.Read(home, time.Now(), "", 0)
				require.Equal(t, marker.Active, st.Status)
			}
		})
	}
	wg.Wait()
	require.Empty(t, tempFiles(t, home))
}

// helperHomeEnv names the home of TestHelperChild.
const helperHomeEnv = "QUIESCE_MARKER_HELPER_HOME"

// TestHelperChild is not a test: re-executed by other tests as a separate
// process, it runs marker commands read from stdin ("write <id>",
// "clear [<id>]", "exit") and answers each with one line.
func TestHelperChild(t *testing.T) {
	home := os.Getenv(helperHomeEnv)
	if home == "" {
		t.Skip("helper process for other tests")
	}
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		f := strings.Fields(in.Text())
		if len(f) == 0 {
			continue
		}
		switch f[0] {
		case "write":
			req := marker.Request{Principal: "child"}
			if len(f) > 1 {
				req.RequestID = f[1]
			}
			_, err := marker.Write(home, req)
			fmt.Printf("ok %v\n", err)
		case "clear":
			id := ""
			if len(f) > 1 {
				id = f[1]
			}
			existed, err := marker.Clear(home, id)
			fmt.Printf("ok %v %v\n", existed, err)
		case "exit":
			return
		}
	}
}

// helper is a running TestHelperChild process.
type helper struct {
	cmd   *exec.Cmd
	in    io.WriteCloser
	lines chan string
}

// startHelper starts a helper process acting on home.
func startHelper(t *testing.T, home string) *helper {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), helperHomeEnv+"="+home)
	in, err := cmd.StdinPipe()
	require.NoError(t, err)
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	cmd.Stderr = os.Stderr
	require.NoError(t, cmd.Start())
	h := &helper{cmd: cmd, in: in, lines: make(chan string, 16)}
	go func() {
		defer close(h.lines)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), "ok") {
				h.lines <- sc.Text()
			}
		}
	}()
	t.Cleanup(func() {
		_ = in.Close()
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	})
	return h
}

// send sends one command without waiting for its answer.
func (h *helper) send(t *testing.T, cmd string) {
	t.Helper()
	_, err := io.WriteString(h.in, cmd+"\n")
	require.NoError(t, err)
}

// recv waits for the answer to one command.
func (h *helper) recv(t *testing.T) string {
	t.Helper()
	select {
	case line, ok := <-h.lines:
		require.True(t, ok, "helper exited")
		return line
	case <-time.After(10 * time.Second):
		require.FailNow(t, "helper did not answer")
		return ""
	}
}

// do sends one command and waits for its answer.
func (h *helper) do(t *testing.T, cmd string) string {
	t.Helper()
	h.send(t, cmd)
	return h.recv(t)
}

// TestClearNeverLosesConcurrentWrite races Clear(old id) in this process
// against Write(new id) in another: whichever wins the lock, the new marker
// survives (compare-and-delete, not read-then-delete).
func TestClearNeverLosesConcurrentWrite(t *testing.T) {
	home := t.TempDir()
	h := startHelper(t, home)
	require.Equal(t, "ok <nil>", h.do(t, "write warmup"))
	var removed, mismatched int
	rounds := 150
	if testing.Short() {
		rounds = 30
	}
	for i := range rounds {
		a, err := marker.Write(home, marker.Request{RequestID: fmt.Sprintf("a%04d", i)})
		require.NoError(t, err)
		idB := fmt.Sprintf("b%04d", i)
		h.send(t, "write "+idB)
		existed, err := marker.Clear(home, a.RequestID)
		switch {
		case err == nil:
			require.True(t, existed)
			removed++
		case errors.Is(err, marker.ErrRequestMismatch):
			require.True(t, existed)
			mismatched++
		default:
			require.NoError(t, err)
		}
		require.Equal(t, "ok <nil>", h.recv(t))
		st := marker.Read(home, time.Now(), "", 0)
		require.Equal(t, marker.Active, st.Status, "round %d: the newer marker must survive", i)
		require.Equal(t, idB, st.Request.RequestID, "round %d", i)
	}
	t.Logf("clear won the race %d times, the other process's write %d times", removed, mismatched)
	h.send(t, "exit")
}

// crashChildEnv names the home of TestCrashChild.
const crashChildEnv = "QUIESCE_MARKER_CRASH_CHILD"

// TestCrashChild is not a test: re-executed by TestCrashSafety, it writes
// the marker in a tight loop, alternating a large and a small payload,
// until it is killed. It prints "started" after its first write.
func TestCrashChild(t *testing.T) {
	home := os.Getenv(crashChildEnv)
	if home == "" {
		t.Skip("crash child for TestCrashSafety")
	}
	big := strings.Repeat("p", 64<<10)
	deadline := time.Now().Add(time.Minute) // never outlive a parent that died
	for i := 0; time.Now().Before(deadline); i++ {
		principal := "small"
		if i%2 == 0 {
			principal = big
		}
		if _, err := marker.Write(home, marker.Request{Principal: principal}); err != nil {
			fmt.Println("error", err)
			os.Exit(2)
		}
		if i == 0 {
			fmt.Println("started")
		}
	}
}

// TestCrashSafety (I7) kills a writer with SIGKILL at random moments and
// checks that the marker is always a complete, parseable marker, and that
// the next Write leaves no temporary files behind.
func TestCrashSafety(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test skipped in -short mode")
	}
	kills, budget := 200, 60*time.Second
	if os.Getenv("QUIESCE_SOAK") == "1" {
		kills, budget = 1000, 10*time.Minute
	}
	home := t.TempDir()
	deadline := time.Now().Add(budget)
	done := 0
	for ; done < kills && time.Now().Before(deadline); done++ {
		crashOnce(t, home)
		data, err := os.ReadFile(marker.Path(home))
		require.NoError(t, err, "kill %d: the first write completed, so the marker exists", done)
		var fields map[string]any
		require.NoError(t, json.Unmarshal(data, &fields), "kill %d: torn marker (%d bytes)", done, len(data))
		st := marker.Read(home, time.Now(), "", 0)
		require.Equal(t, marker.Active, st.Status, "kill %d", done)
		require.Contains(t, []int{len("small"), 64 << 10}, len(st.Request.Principal), "kill %d", done)
	}
	t.Logf("%d kills, %d temp files left by killed writers before the final write", done, len(tempFiles(t, home)))
	require.GreaterOrEqual(t, done, min(kills, 50), "too few kills within the time budget")
	_, err := marker.Write(home, marker.Request{})
	require.NoError(t, err)
	require.Empty(t, tempFiles(t, home), "the next Write cleans up after killed writers")
}

// crashOnce starts a crash child, waits until it is writing in a loop, lets
// it run for 0–5 ms and kills it with SIGKILL.
func crashOnce(t *testing.T, home string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashChildEnv+"="+home)
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	started := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(out).ReadString('\n')
		started <- line
		_, _ = io.Copy(io.Discard, out)
	}()
	select {
	case line := <-started:
		require.Equal(t, "started\n", line)
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		require.FailNow(t, "crash child did not start")
	}
	time.Sleep(time.Duration(rand.IntN(5001)) * time.Microsecond)
	require.NoError(t, cmd.Process.Signal(syscall.SIGKILL))
	err = cmd.Wait()
	var exit *exec.ExitError
	require.ErrorAs(t, err, &exit)
	require.Equal(t, syscall.SIGKILL, exit.Sys().(syscall.WaitStatus).Signal(), "the child was killed, it did not fail")
}
