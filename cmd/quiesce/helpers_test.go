package main_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/quiesce-dev/quiesce/internal/fakeproc"
	"github.com/quiesce-dev/quiesce/internal/logbuf"
	"github.com/quiesce-dev/quiesce/notify"
)

// binary is the quiesce binary TestMain built; "" under -short.
var binary string

// TestMain builds the binary once for every end-to-end test.
func TestMain(m *testing.M) {
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	flag.Parse()
	if testing.Short() {
		fmt.Println("cmd/quiesce: -short: skipping the end-to-end tests (they build and run the binary)")
		return m.Run()
	}
	dir, err := os.MkdirTemp("", "quiesce-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	gotool, err := exec.LookPath("go")
	if err != nil {
		fmt.Fprintln(os.Stderr, "cmd/quiesce e2e: go tool not found:", err)
		return 1
	}
	binary = filepath.Join(dir, "quiesce")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	build := exec.CommandContext(ctx, gotool, "build", "-o", binary, ".")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "cmd/quiesce e2e: build:", err)
		return 1
	}
	return m.Run()
}

// needBinary skips t when TestMain did not build the binary (-short).
func needBinary(t *testing.T) {
	t.Helper()
	if binary == "" {
		t.Skip("end-to-end test: needs the binary (not built under -short)")
	}
}

const (
	opsToken = "ops-e2e-token-0123456789abcdef"
	// startTimeout bounds a gateway's start; exitTimeout its exit.
	startTimeout = 20 * time.Second
	exitTimeout  = 30 * time.Second
)

// fakeProcRoot returns a directory laid out like /proc for the instance
// epoch: sys/kernel/random/boot_id and 1/stat with PID 1's starttime
// (field 22). setStartTime changes it, which is a new instance.
func fakeProcRoot(t *testing.T, bootID string, start int) string {
	t.Helper()
	root := t.TempDir()
	require.NoError(t, fakeproc.Write(root, bootID, uint64(start)))
	return root
}

func setStartTime(t *testing.T, root string, start int) {
	t.Helper()
	require.NoError(t, fakeproc.SetStartTime(root, uint64(start)))
}

// newHome returns a gateway home with a tokens file for "ops".
func newHome(t *testing.T) string {
	t.Helper()
	home := filepath.Join(t.TempDir(), "home")
	require.NoError(t, os.Mkdir(home, 0o700))
	require.NoError(t, os.WriteFile(filepath.Join(home, "tokens"), []byte("# e2e\nops "+opsToken+"\n"), 0o600))
	return home
}

// gatewayProc is one running "quiesce run".
type gatewayProc struct {
	t      *testing.T
	cmd    *exec.Cmd
	home   string
	url    string
	stderr *lockedBuffer
	stdout *lockedBuffer
	addr   chan string   // the listening address, once
	done   chan struct{} // closed when the process has exited
	code   int
}

// lockedBuffer collects a child process's output.
type lockedBuffer = logbuf.Buffer

// startGateway runs the binary with "run" on a free loopback port, JSON
// logs and the echo agent, plus args, and waits for its "listening" log
// line. The process is killed when the test ends if it is still alive.
func startGateway(t *testing.T, home, procRoot string, args ...string) *gatewayProc {
	t.Helper()
	p := startProcess(t, home, procRoot, args...)
	select {
	case a := <-p.addr:
		p.url = "http://" + a
	case <-p.done:
		require.Fail(t, fmt.Sprintf("gateway exited (code %d) before listening; stderr:\n%s", p.code, p.stderr.String()))
	case <-time.After(startTimeout):
		require.Fail(t, fmt.Sprintf("gateway did not listen within %v; stderr:\n%s", startTimeout, p.stderr.String()))
	}
	return p
}

// startProcess starts "quiesce run" without waiting for it to listen.
func startProcess(t *testing.T, home, procRoot string, args ...string) *gatewayProc {
	t.Helper()
	needBinary(t)
	full := append([]string{"run", "--home", home, "--addr", "127.0.0.1:0", "--log-format", "json", "--agent", "echo"}, args...)
	cmd := exec.Command(binary, full...)
	cmd.Env = append(cleanEnv(), "QUIESCE_PROC_ROOT="+procRoot)
	p := &gatewayProc{t: t, cmd: cmd, home: home, stderr: &lockedBuffer{}, stdout: &lockedBuffer{},
		addr: make(chan string, 1), done: make(chan struct{})}
	cmd.Stdout = p.stdout
	stderr, err := cmd.StderrPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	go func() {
		p.copyStderr(stderr)
		_ = cmd.Wait()
		p.code = cmd.ProcessState.ExitCode()
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = cmd.Process.Kill()
			select {
			case <-p.done:
			case <-time.After(exitTimeout):
				assert.Fail(t, fmt.Sprintf("gateway pid %d did not die after SIGKILL", cmd.Process.Pid))
			}
		}
		if t.Failed() {
			t.Logf("gateway stderr:\n%s", p.stderr.String())
		}
	})
	return p
}

// copyStderr keeps the process's log and sends the address of its
// "listening" line on p.addr.
func (p *gatewayProc) copyStderr(r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	sent := false
	for sc.Scan() {
		_, _ = p.stderr.Write(append(sc.Bytes(), '\n'))
		var line struct{ Msg, Addr string }
		if !sent && json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == "listening" && line.Addr != "" {
			p.addr <- line.Addr
			sent = true
		}
	}
	_, _ = io.Copy(p.stderr, r)
}

// cleanEnv is the test's environment without QUIESCE_* variables.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "QUIESCE_") {
			env = append(env, kv)
		}
	}
	return env
}

// signal sends sig to the gateway.
func (p *gatewayProc) signal(sig syscall.Signal) {
	p.t.Helper()
	require.NoError(p.t, p.cmd.Process.Signal(sig))
}

// wait waits for the process to exit and returns its exit code.
func (p *gatewayProc) wait() int {
	p.t.Helper()
	select {
	case <-p.done:
		return p.code
	case <-time.After(exitTimeout):
		require.Fail(p.t, fmt.Sprintf("gateway did not exit within %v; stderr:\n%s", exitTimeout, p.stderr.String()))
		return -1
	}
}

// httpClient bounds every request of the tests.
var httpClient = &http.Client{Timeout: 60 * time.Second}

// response is one HTTP answer.
type response struct {
	code   int
	header http.Header
	body   map[string]any
	raw    string
}

// call sends one request with the ops token (token "" sends none).
func (p *gatewayProc) call(method, path, token, body string) response {
	p.t.Helper()
	r, err := doCall(p.url, method, path, token, body)
	require.NoError(p.t, err)
	return r
}

func doCall(base, method, path, token, body string) (response, error) {
	return doCallWith(httpClient, base, method, path, token, body)
}

// turn sends a message for session.
func (p *gatewayProc) turn(session, text string) response {
	p.t.Helper()
	return p.call(http.MethodPost, "/v1/sessions/"+session+"/messages", opsToken, fmt.Sprintf(`{"text":%q}`, text))
}

// turnAsync sends a message in the background; the answer arrives on the
// returned channel (a failed request arrives as code 0 and raw error).
func (p *gatewayProc) turnAsync(session, text string) <-chan response {
	ch := make(chan response, 1)
	base := p.url
	go func() {
		r, err := doCall(base, http.MethodPost, "/v1/sessions/"+session+"/messages", opsToken, fmt.Sprintf(`{"text":%q}`, text))
		if err != nil {
			r = response{raw: err.Error()}
		}
		ch <- r
	}()
	return ch
}

// await returns the answer on ch, failing after a bound.
func await(t *testing.T, ch <-chan response) response {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(exitTimeout):
		require.Fail(t, "no answer within the bound")
		return response{}
	}
}

// status returns the API status document.
func (p *gatewayProc) status() map[string]any {
	p.t.Helper()
	r := p.call(http.MethodGet, "/api/gateway/status", opsToken, "")
	require.Equal(p.t, http.StatusOK, r.code, r.raw)
	return r.body
}

// eventually polls cond every 10ms until it holds, failing after bound.
func eventually(t *testing.T, bound time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.NewTimer(bound)
	defer deadline.Stop()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-deadline.C:
			require.Fail(t, fmt.Sprintf("timed out waiting for %s", what))
		case <-tick.C:
		}
	}
}

// waitInFlight waits until the gateway reports n turns in flight.
func (p *gatewayProc) waitInFlight(n int) {
	p.t.Helper()
	eventually(p.t, 10*time.Second, fmt.Sprintf("%d turns in flight", n), func() bool {
		return p.status()["active_agents"] == float64(n)
	})
}

// readMarker returns the drain marker as JSON, or nil when there is none.
func readMarker(t *testing.T, home string) map[string]any {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(home, ".drain_request.json"))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	require.NoError(t, err)
	var m map[string]any
	require.NoError(t, json.Unmarshal(data, &m), "marker %q", data)
	return m
}

// outbox returns the messages of kind in the home's outbox.
func outbox(t *testing.T, home string, kind notify.Kind) []notify.Message {
	t.Helper()
	msgs, err := notify.ReadOutbox(filepath.Join(home, "outbox.jsonl"))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	require.NoError(t, err)
	var out []notify.Message
	for _, m := range msgs {
		if m.Kind == kind {
			out = append(out, m)
		}
	}
	return out
}

// targets returns the targets of msgs, sorted as sent.
func targets(msgs []notify.Message) []string {
	var out []string
	for _, m := range msgs {
		out = append(out, m.Target)
	}
	return out
}

// cli runs the binary with args and env (plus the test's environment
// without QUIESCE_*), and returns stdout, stderr and the exit code.
func cli(t *testing.T, env []string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	needBinary(t)
	ctx, cancel := context.WithTimeout(context.Background(), exitTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, args...)
	cmd.Env = append(cleanEnv(), env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	if err != nil {
		require.ErrorAsf(t, err, &ee, "run %v: an error other than an exit status", args)
	}
	return out.String(), errb.String(), cmd.ProcessState.ExitCode()
}

// doCallWith is doCall through client c (the soak tests use clients with
// their own connection pools, so they can close them and count fds).
func doCallWith(c *http.Client, base, method, path, token, body string) (response, error) {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, base+path, rd)
	if err != nil {
		return response{}, err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := c.Do(req)
	if err != nil {
		return response{}, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return response{}, err
	}
	r := response{code: resp.StatusCode, header: resp.Header, raw: string(data)}
	if len(bytes.TrimSpace(data)) > 0 && data[0] == '{' {
		if err := json.Unmarshal(data, &r.body); err != nil {
			return r, fmt.Errorf("decode %q: %w", data, err)
		}
	}
	return r, nil
}

// envCount returns the positive integer in the environment variable name,
// or def when it is unset; anything else fails the test.
func envCount(t *testing.T, name string, def int) int {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	var n int
	if _, err := fmt.Sscanf(v, "%d", &n); err != nil || n <= 0 || fmt.Sprint(n) != v {
		require.Fail(t, fmt.Sprintf("%s=%q: want a positive integer", name, v))
	}
	return n
}

// writeMarkerFile replaces the drain marker with data the way an outside
// writer (an upstream Python tool, an operator's script) does: a temp file
// in the home, then rename over the marker. The temp name does not match
// the gateway's "<file>.tmp-<hex>" pattern, so it is never taken for a
// leftover of the gateway's own writers.
func writeMarkerFile(home string, data []byte) error {
	tmp := filepath.Join(home, "outside-writer.drain_request.partial")
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(home, ".drain_request.json"))
}
