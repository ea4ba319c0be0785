package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/quiesce-dev/quiesce/api"
	"github.com/quiesce-dev/quiesce/client"
	"github.com/quiesce-dev/quiesce/fsm"
	"github.com/quiesce-dev/quiesce/server"
)

// newTestMain returns a Main with buffers and the given environment.
func newTestMain(env map[string]string) (*Main, *bytes.Buffer, *bytes.Buffer) {
	var out, errb bytes.Buffer
	return &Main{Program: "quiesce", Stdout: &out, Stderr: &errb, Getenv: func(k string) string { return env[k] }}, &out, &errb
}

func TestParseFlagsExitCodes(t *testing.T) {
	tests := []struct {
		args []string
		env  map[string]string
		code int
	}{
		{nil, nil, exitUsage},
		{[]string{"-h"}, nil, exitOK},
		{[]string{"help"}, nil, exitOK},
		{[]string{"frobnicate"}, nil, exitUsage},
		{[]string{"run", "-h"}, nil, exitOK},
		{[]string{"drain", "--help"}, nil, exitOK},
		{[]string{"drain", "--no-such-flag"}, nil, exitUsage},
		{[]string{"status", "extra"}, nil, exitUsage},
		{[]string{"run", "--drain-timeout", "soon"}, nil, exitUsage},
		{[]string{"run"}, map[string]string{"QUIESCE_DRAIN_TIMEOUT": "soon"}, exitUsage},
		{[]string{"diagram", "--format", "dot"}, nil, exitOK},
		{[]string{"version"}, nil, exitOK},
		{[]string{"--version"}, nil, exitOK},
		{[]string{"version", "--json"}, nil, exitOK},
		{[]string{"help", "drain"}, nil, exitOK},
		{[]string{"help", "drian"}, nil, exitUsage},
		{[]string{"help", "drain", "cancel"}, nil, exitUsage},
		{[]string{"completion", "bash"}, nil, exitOK},
		{[]string{"completion", "zsh"}, nil, exitOK},
		{[]string{"completion", "fish"}, nil, exitUsage},
		{[]string{"completion"}, nil, exitUsage},
		{[]string{"drain", "--wait", "--timeout", "soon"}, nil, exitUsage},
		{[]string{"shutdown", "--wait", "--timeout", "90s", "--json"}, nil, exitOK},
		{[]string{"status", "--json"}, nil, exitOK},
		{[]string{"cancel", "--json", "--request-id", "r"}, nil, exitOK},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%q", tt.args), func(t *testing.T) {
			m, _, _ := newTestMain(tt.env)
			err := m.ParseFlags(context.Background(), tt.args)
			assert.Equal(t, tt.code, ExitCode(err), "err %v", err)
		})
	}
}

func TestParseFlagsEnvFallback(t *testing.T) {
	env := map[string]string{
		"QUIESCE_HOME": "/srv/q", "QUIESCE_ADDR": "127.0.0.1:9999", "QUIESCE_DRAIN_TIMEOUT": "2s",
		"QUIESCE_PROC_ROOT": "/fake/proc", "QUIESCE_LOG_FORMAT": "json",
	}
	m, _, _ := newTestMain(env)
	require.NoError(t, m.ParseFlags(context.Background(), []string{"run", "--addr", "127.0.0.1:1"}))
	c := m.cmd.(*runCmd)
	assert.Equal(t, "/srv/q", c.home)
	assert.Equal(t, "127.0.0.1:1", c.addr, "the command line wins over the environment")
	assert.Equal(t, 2*time.Second, c.drainTimeout)
	assert.Equal(t, "/fake/proc", c.procRoot)
	assert.Equal(t, "json", c.logFormat)

	m, _, _ = newTestMain(map[string]string{"QUIESCE_URL": "http://127.0.0.1:1", "QUIESCE_HOME": "/h"})
	require.NoError(t, m.ParseFlags(context.Background(), []string{"status"}))
	assert.Equal(t, "http://127.0.0.1:1", m.cmd.(*statusCmd).url)
	assert.Equal(t, "/h", m.cmd.(*statusCmd).home)
}

func TestHelpListsCommandsAndExitCodes(t *testing.T) {
	m, out, _ := newTestMain(nil)
	assert.ErrorIs(t, m.ParseFlags(context.Background(), []string{"-h"}), flag.ErrHelp)
	for name := range commands {
		assert.Contains(t, out.String(), "  "+name+" ")
	}
	assert.Contains(t, out.String(), "3  drain --wait or wait timed out")

	// A command's help goes to stdout, so it can be paged or grepped;
	// "help <command>" prints the same.
	m, out, _ = newTestMain(nil)
	assert.ErrorIs(t, m.ParseFlags(context.Background(), []string{"run", "-h"}), flag.ErrHelp)
	assert.Contains(t, out.String(), "(env QUIESCE_HOME)")
	assert.Contains(t, out.String(), "-dev")
	m, viaHelp, _ := newTestMain(nil)
	require.NoError(t, m.ParseFlags(context.Background(), []string{"help", "run"}))
	require.NoError(t, m.Run(context.Background()))
	assert.Equal(t, out.String(), viaHelp.String())
}

func TestRunValidate(t *testing.T) {
	for _, args := range [][]string{
		{"--agent", "llm"},
		{"--agent", "exec"},
		{"--notify-webhook", "ftp://example.com/hook"},
		{"--drain-timeout", "0s"},
		{"--log-level", "loud"},
		{"--log-format", "xml"},
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			m, _, _ := newTestMain(nil)
			require.NoError(t, m.ParseFlags(context.Background(), append([]string{"run", "--home", t.TempDir()}, args...)))
			err := m.Run(context.Background())
			assert.Equal(t, exitUsage, ExitCode(err), "err %v", err)
		})
	}
}

func TestDiagram(t *testing.T) {
	for _, f := range []fsm.Format{fsm.Mermaid, fsm.DOT} {
		m, out, _ := newTestMain(nil)
		require.NoError(t, m.ParseFlags(context.Background(), []string{"diagram", "--format", string(f)}))
		require.NoError(t, m.Run(context.Background()))
		want, err := fsm.Describe(f)
		require.NoError(t, err)
		assert.Equal(t, strings.TrimRight(want, "\n")+"\n", out.String())
	}
}

func TestGroup(t *testing.T) {
	errFirst := errors.New("first")
	var order []string
	stopB, stopC := make(chan struct{}), make(chan struct{})
	var g group
	g.add(func() error { return errFirst }, func(error) { order = append(order, "a") })
	g.add(func() error { <-stopB; return nil }, func(error) { order = append(order, "b"); close(stopB) })
	g.add(func() error { <-stopC; return errors.New("late") }, func(error) { order = append(order, "c"); close(stopC) })
	done := make(chan error, 1)
	go func() { done <- g.run() }()
	select {
	case err := <-done:
		assert.Equal(t, errFirst, err)
		assert.Equal(t, []string{"a", "b", "c"}, order, "interrupts run in the order actors were added")
	case <-time.After(5 * time.Second):
		require.Fail(t, "group did not return")
	}
	var empty group
	assert.NoError(t, empty.run())
}

// TestUsageErrorsSayWhatToDo: what Main prints for a mistake names the
// fix: the command or flag meant, an example duration, the help to read.
func TestUsageErrorsSayWhatToDo(t *testing.T) {
	tests := []struct {
		args []string
		env  map[string]string
		want []string
	}{
		{[]string{"stauts"}, nil, []string{`unknown command "stauts"; did you mean "status"?`, "Run 'quiesce -h'"}},
		{[]string{"shutdwon", "--force"}, nil, []string{`did you mean "shutdown"?`}},
		{[]string{"frobnicate"}, nil, []string{`unknown command "frobnicate"`}},
		{[]string{"drain", "--tiemout", "3s"}, nil, []string{"quiesce drain: unknown flag --tiemout; did you mean --timeout?", "Run 'quiesce help drain'"}},
		{[]string{"drain", "--wait", "--timeout", "soon"}, nil, []string{`invalid value "soon" for flag --timeout`, "25s", "1m30s"}},
		{[]string{"drain", "--wait", "--timeout", "0s"}, nil, []string{"--timeout 0s: must be greater than zero, e.g. 25s"}},
		{[]string{"shutdown", "--wait", "--timeout", "-1s"}, nil, []string{"must be greater than zero"}},
		{[]string{"run"}, map[string]string{"QUIESCE_DRAIN_TIMEOUT": "soon"}, []string{`QUIESCE_DRAIN_TIMEOUT="soon"`, "1m30s"}},
		{[]string{"status", "extra"}, nil, []string{`quiesce status: unexpected argument "extra"`}},
		{[]string{"drain", "--wait=maybe"}, nil, []string{`invalid boolean value "maybe" for --wait`}},
		{[]string{"help", "stauts"}, nil, []string{`did you mean "status"?`, "Run 'quiesce -h'"}},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			m, out, errb := newTestMain(tt.env)
			assert.Equal(t, exitUsage, m.Main(context.Background(), tt.args))
			for _, w := range tt.want {
				assert.Contains(t, errb.String(), w)
			}
			assert.Empty(t, out.String())
			assert.Equal(t, 2, strings.Count(errb.String(), "\n"), "the error and where help is, no help dump: %s", errb.String())
		})
	}
}

func TestSuggest(t *testing.T) {
	tests := []struct{ in, want string }{
		{"stauts", "status"}, // a swap counts once
		{"statsu", "status"}, // at the end too
		{"cancle", "cancel"}, // swap
		{"drian", "drain"},   // swap
		{"shutdwon", "shutdown"},
		{"dra", "drain"}, // a unique prefix
		{"diag", "diagram"},
		{"verison", "version"},
		{"completoin", "completion"},
		{"stat", "status"},
		{"rnu", "run"}, // swap in a short name
		{"x", ""},      // nothing close
		{"frobnicate", ""},
		{"", ""},
		{"s", ""}, // status and shutdown both start with s
		{"status", "status"},
	}
	for _, tt := range tests {
		assert.Equalf(t, tt.want, suggest(tt.in, commandNames), "suggest(%q)", tt.in)
	}
	assert.Equal(t, "timeout", suggest("tiemout", []string{"home", "url", "timeout", "wait"}))
	assert.Equal(t, "request-id", suggest("requestid", []string{"request-id", "json"}))
}

func TestEditDistance(t *testing.T) {
	for _, tt := range []struct {
		a, b string
		d    int
	}{
		{"", "", 0}, {"a", "", 1}, {"", "abc", 3}, {"drain", "drain", 0},
		{"drain", "drian", 1}, {"drain", "rain", 1}, {"drain", "drains", 1}, {"drain", "grain", 1},
		{"kitten", "sitting", 3}, {"ca", "abc", 3},
	} {
		assert.Equalf(t, tt.d, editDistance(tt.a, tt.b), "%q %q", tt.a, tt.b)
		assert.Equalf(t, tt.d, editDistance(tt.b, tt.a), "%q %q", tt.b, tt.a)
	}
}

func TestVersion(t *testing.T) {
	tests := []struct {
		name string
		bi   debug.BuildInfo
		want buildInfo
		line string
	}{
		{"Unknown", debug.BuildInfo{GoVersion: "go1.26.0"},
			buildInfo{Version: "(devel)", Go: "go1.26.0"}, "quiesce (devel) go1.26.0"},
		{"WorkTree", debug.BuildInfo{GoVersion: "go1.26.0", Main: debug.Module{Version: "(devel)"}, Settings: []debug.BuildSetting{
			{Key: "vcs", Value: "git"}, {Key: "vcs.revision", Value: "0123456789abcdef0123456789abcdef01234567"},
			{Key: "vcs.time", Value: "2026-11-23T10:00:00Z"}, {Key: "vcs.modified", Value: "true"}}},
			buildInfo{Version: "(devel)", Revision: "0123456789abcdef0123456789abcdef01234567", Time: "2026-11-23T10:00:00Z", Modified: true, Go: "go1.26.0"},
			"quiesce (devel) (0123456789ab, 2026-11-23T10:00:00Z, modified) go1.26.0"},
		{"Release", debug.BuildInfo{GoVersion: "go1.26.0", Main: debug.Module{Version: "v1.2.3"}, Settings: []debug.BuildSetting{
			{Key: "vcs.revision", Value: "abc"}, {Key: "vcs.modified", Value: "false"}}},
			buildInfo{Version: "v1.2.3", Revision: "abc", Go: "go1.26.0"}, "quiesce v1.2.3 (abc) go1.26.0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := buildInfoFrom(&tt.bi)
			assert.Equal(t, tt.want, got)
			assert.Equal(t, tt.line, got.String())
		})
	}
	for _, args := range [][]string{{"version"}, {"--version"}, {"-version"}} {
		m, out, _ := newTestMain(nil)
		require.Equal(t, exitOK, m.Main(context.Background(), args), args)
		assert.Equal(t, readBuildInfo().String()+"\n", out.String())
	}
	m, out, _ := newTestMain(nil)
	require.Equal(t, exitOK, m.Main(context.Background(), []string{"version", "--json"}))
	var doc map[string]any
	require.NoError(t, json.Unmarshal(out.Bytes(), &doc), out.String())
	assert.NotEmpty(t, doc["version"])
	assert.Contains(t, doc, "modified")
}

// completion returns the script for shell.
func completion(t *testing.T, shell string) string {
	t.Helper()
	m, out, errb := newTestMain(nil)
	require.Equal(t, exitOK, m.Main(context.Background(), []string{"completion", shell}), errb.String())
	return out.String()
}

// TestCompletionScripts: each script names every command and every flag
// of each, from the flag sets that parse them.
func TestCompletionScripts(t *testing.T) {
	for _, shell := range []string{"bash", "zsh"} {
		t.Run(shell, func(t *testing.T) {
			script := completion(t, shell)
			m, _, _ := newTestMain(nil)
			for _, name := range commandNames {
				assert.Contains(t, script, name)
				commands[name].new().flagSet(m).VisitAll(func(f *flag.Flag) {
					assert.Containsf(t, script, "--"+f.Name, "%s --%s", name, f.Name)
				})
			}
			shellPath, err := exec.LookPath(shell)
			if err != nil {
				t.Skipf("%s not installed: syntax not checked", shell)
			}
			cmd := exec.Command(shellPath, "-n")
			cmd.Stdin = strings.NewReader(script)
			outb, err := cmd.CombinedOutput()
			assert.NoErrorf(t, err, "%s -n: %s", shell, outb)
		})
	}
}

// TestBashCompletion runs the bash script the way bash's programmable
// completion does and checks what a Tab offers.
func TestBashCompletion(t *testing.T) {
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("bash not installed")
	}
	script := filepath.Join(t.TempDir(), "quiesce.bash")
	require.NoError(t, os.WriteFile(script, []byte(completion(t, "bash")), 0o600))
	tests := []struct {
		words []string // the command line; the last word is the one completed
		want  []string
	}{
		{[]string{"quiesce", "dr"}, []string{"drain"}},
		{[]string{"quiesce", "s"}, []string{"status", "shutdown"}},
		{[]string{"quiesce", "--v"}, []string{"--version"}},
		{[]string{"quiesce", "drain", "--ti"}, []string{"--timeout"}},
		{[]string{"quiesce", "drain", "--wait", "--j"}, []string{"--json"}},
		{[]string{"quiesce", "shutdown", "--w"}, []string{"--wait"}},
		{[]string{"quiesce", "diagram", "--format", ""}, []string{"mermaid", "dot"}},
		{[]string{"quiesce", "completion", ""}, []string{"bash", "zsh"}},
		{[]string{"quiesce", "help", "ca"}, []string{"cancel"}},
		{[]string{"quiesce", "drain", "--timeout", ""}, nil},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.words, " "), func(t *testing.T) {
			var words []string
			for _, w := range tt.words {
				words = append(words, fmt.Sprintf("%q", w))
			}
			prog := fmt.Sprintf(`source %q; COMP_WORDS=(%s); COMP_CWORD=%d; _quiesce; printf '%%s\n' "${COMPREPLY[@]}"`,
				script, strings.Join(words, " "), len(tt.words)-1)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			out, err := exec.CommandContext(ctx, bash, "--norc", "--noprofile", "-c", prog).CombinedOutput()
			require.NoError(t, err, string(out))
			got := strings.Fields(string(out))
			if tt.want == nil {
				assert.Empty(t, got)
			} else {
				assert.ElementsMatch(t, tt.want, got)
			}
		})
	}
}

// idleSeq is an idleWaiter that answers statuses in order, then repeats
// the last; idle when no turn is in flight.
type idleSeq struct {
	states []api.Status
	i      int
	err    error
}

func (s *idleSeq) WaitIdle(context.Context, time.Duration) (api.Status, bool, error) {
	if s.err != nil {
		return api.Status{}, false, s.err
	}
	st := s.states[min(s.i, len(s.states)-1)]
	s.i++
	return st, st.ActiveAgents == 0, nil
}

func (s *idleSeq) Status(ctx context.Context) (api.Status, error) {
	st, _, err := s.WaitIdle(ctx, 0)
	return st, err
}

func live(state fsm.State, n int, oldest float64) api.Status {
	return api.Status{State: state, ActiveAgents: n, OldestTurnSeconds: oldest, Live: true}
}

func TestWaitIdle(t *testing.T) {
	ctx := context.Background()
	t.Run("Idle", func(t *testing.T) {
		var out bytes.Buffer
		_, err := waitIdle(ctx, &idleSeq{states: []api.Status{
			live(fsm.Running, 2, 3), // the drain not seen yet (local state file lag)
			live(fsm.Draining, 2, 4),
			live(fsm.Draining, 1, 2),
			live(fsm.Draining, 0, 0),
		}}, newProgress(&out, false), time.Minute, waitDrained)
		require.NoError(t, err)
		lines := strings.Split(strings.TrimSpace(out.String()), "\n")
		require.Len(t, lines, 5, out.String())
		assert.True(t, strings.HasPrefix(lines[1], "draining, 2 turns in flight (oldest 4"), lines[1])
		assert.True(t, strings.HasPrefix(lines[2], "draining, 1 turn in flight (oldest 2"), lines[2])
		assert.True(t, strings.HasPrefix(lines[3], "draining, 0 turns in flight, waited"), lines[3])
		assert.True(t, strings.HasPrefix(lines[4], "idle:"), lines[4])
	})
	t.Run("Quiet", func(t *testing.T) {
		var out bytes.Buffer
		st, err := waitIdle(ctx, &idleSeq{states: []api.Status{live(fsm.Draining, 1, 1), live(fsm.Draining, 0, 0)}},
			newProgress(&out, true), time.Minute, waitDrained)
		require.NoError(t, err)
		assert.Empty(t, out.String(), "--json prints only documents")
		assert.Equal(t, 0, st.ActiveAgents)
	})
	t.Run("NotLive", func(t *testing.T) {
		var out bytes.Buffer
		_, err := waitIdle(ctx, &idleSeq{states: []api.Status{{State: fsm.Running, ActiveAgents: 3}}}, newProgress(&out, false), time.Minute, waitDrained)
		require.NoError(t, err, "a home no gateway holds has nothing in flight")
		assert.Contains(t, out.String(), "no gateway is running")
	})
	t.Run("Cancelled", func(t *testing.T) {
		_, err := waitIdle(ctx, &idleSeq{states: []api.Status{live(fsm.Draining, 1, 1), live(fsm.Running, 1, 1)}},
			newProgress(&bytes.Buffer{}, false), time.Minute, waitDrained)
		require.ErrorContains(t, err, "cancelled")
		assert.Equal(t, exitError, ExitCode(err))
	})
	t.Run("Timeout", func(t *testing.T) {
		_, err := waitIdle(ctx, &idleSeq{states: []api.Status{live(fsm.Draining, 1, 1)}}, newProgress(&bytes.Buffer{}, false), time.Millisecond, waitDrained)
		assert.ErrorIs(t, err, errWaitTimeout)
		assert.ErrorContains(t, err, "1 turn still in flight")
		assert.Equal(t, exitWaitTimeout, ExitCode(err))
	})
	t.Run("AnyIdle", func(t *testing.T) {
		// wait: idle in any state, with no wait for a drain to show, and a
		// cancel while waiting is no error.
		var out bytes.Buffer
		st, err := waitIdle(ctx, &idleSeq{states: []api.Status{
			live(fsm.Draining, 2, 3), live(fsm.Running, 1, 1), live(fsm.Running, 0, 0),
		}}, newProgress(&out, false), time.Minute, waitAnyIdle)
		require.NoError(t, err)
		assert.Equal(t, fsm.Running, st.State)
		assert.Contains(t, out.String(), "new turns may start at any time")
	})
	t.Run("AnyIdleTimeout", func(t *testing.T) {
		_, err := waitIdle(ctx, &idleSeq{states: []api.Status{live(fsm.Running, 1, 1)}}, newProgress(&bytes.Buffer{}, false),
			time.Millisecond, waitAnyIdle)
		assert.ErrorIs(t, err, errWaitTimeout)
		assert.Equal(t, exitWaitTimeout, ExitCode(err))
	})
	t.Run("StatusError", func(t *testing.T) {
		_, err := waitIdle(ctx, &idleSeq{err: errors.New("connection refused")}, newProgress(&bytes.Buffer{}, false), time.Minute, waitDrained)
		assert.ErrorContains(t, err, "connection refused")
	})
}

// TestProgressOldestAge: a value the gateway reported again (a local
// state file not rewritten since) keeps ageing; a new value replaces it.
func TestProgressOldestAge(t *testing.T) {
	p := newProgress(&bytes.Buffer{}, true)
	t0 := time.Now()
	assert.Equal(t, 5*time.Second, p.oldestAge(live(fsm.Draining, 1, 5), t0))
	assert.Equal(t, 7*time.Second, p.oldestAge(live(fsm.Draining, 1, 5), t0.Add(2*time.Second)))
	assert.Equal(t, time.Second, p.oldestAge(live(fsm.Draining, 1, 1), t0.Add(3*time.Second)))
	assert.Equal(t, time.Duration(0), p.oldestAge(live(fsm.Draining, 0, 0), t0.Add(4*time.Second)))
}

func TestStripPrefixes(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"server: client: GET /x: boom", "GET /x: boom"},
		{"gateway: drain: gateway: drain marker unusable: marker: /h/m is a FIFO", "drain: drain marker unusable: /h/m is a FIFO"},
		{"no prefix: here", "no prefix: here"},
		{"tokens file: open x: denied", "tokens file: open x: denied"},
	} {
		assert.Equal(t, tt.want, stripPrefixes(tt.in))
	}
}

// TestHTTPErrorsSayWhatToDo: the API's error answers, as a user reads them.
func TestHTTPErrorsSayWhatToDo(t *testing.T) {
	c, err := client.New("http://127.0.0.1:8470", "t", nil)
	require.NoError(t, err)
	tests := []struct {
		name   string
		source string
		err    error
		want   []string
	}{
		{"401Env", "QUIESCE_TOKEN", &client.APIError{StatusCode: 401, Code: api.CodeUnauthorized},
			[]string{"refused the token from QUIESCE_TOKEN", "tokens file", "unset it"}},
		{"401File", "the token file /h/tokens", &client.APIError{StatusCode: 401, Code: api.CodeUnauthorized},
			[]string{"refused the token from the token file /h/tokens", "SIGHUP"}},
		{"409Mismatch", "", &client.APIError{StatusCode: 409, Code: api.CodeConflict,
			Message: `request_id is not the active drain's (the active request_id is "mine"); nothing was changed`},
			[]string{`the active request_id is "mine"`, "quiesce status"}},
		{"409Marker", "", &client.APIError{StatusCode: 409, Code: api.CodeMarkerUnusable, Message: "The drain marker cannot be used: /h/.drain_request.json is a FIFO. Move it aside."},
			[]string{"is a FIFO", "Move it aside"}},
		{"409ShuttingDown", "", &client.APIError{StatusCode: 409, Code: api.CodeShuttingDown, Message: server.ShuttingDownText},
			[]string{"shutting down", "shutdown wins", "shutdown --wait"}},
		{"404", "", &client.APIError{StatusCode: 404, Code: api.CodeNotFound}, []string{"base URL"}},
		{"Refused", "", fmt.Errorf("%w: GET x: %w", client.ErrUnreachable, syscall.ECONNREFUSED),
			[]string{"connection refused", "Is the gateway running?", "--url (QUIESCE_URL)"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := &httpControl{c: c, tokenSource: tt.source}
			got := h.explain(tt.err)
			for _, w := range tt.want {
				assert.Contains(t, got.Error(), w)
			}
			assert.ErrorIs(t, got, tt.err, "the cause is kept for errors.Is")
			assert.NotContains(t, got.Error(), "server:")
		})
	}
}

func TestPrintResults(t *testing.T) {
	yes, no := true, false
	tests := []struct {
		name string
		out  func(*bytes.Buffer)
		want []string
	}{
		{"DrainReplaced", func(b *bytes.Buffer) {
			printDrain(b, drainResult{DrainResponse: api.DrainResponse{Principal: "ops", RequestID: "r2", State: fsm.Draining, WasDraining: true}})
		}, []string{"request_id r2", "replaced the drain request that was already active", "state draining"}},
		{"DrainLocalNotLive", func(b *bytes.Buffer) {
			printDrain(b, drainResult{DrainResponse: api.DrainResponse{State: fsm.Stopped}, localInfo: localInfo{Home: "/h", Live: &no}})
		}, []string{"in /h", "no gateway is running", "comes up draining"}},
		{"DrainLocalNotPickedUp", func(b *bytes.Buffer) {
			printDrain(b, drainResult{DrainResponse: api.DrainResponse{State: fsm.Running}, localInfo: localInfo{Home: "/h", Live: &yes}})
		}, []string{"not picked it up yet"}},
		{"CancelNothing", func(b *bytes.Buffer) {
			printCancel(b, cancelResult{CancelResponse: api.CancelResponse{State: fsm.Running}})
		}, []string{"no drain to cancel", "was draining: false", "state running"}},
		{"ShutdownRepeat", func(b *bytes.Buffer) {
			printShutdown(b, shutdownResult{ShutdownResponse: api.ShutdownResponse{ShutdownID: "s1", AlreadyShuttingDown: true, State: fsm.ShuttingDown}})
		}, []string{"already in progress", "nothing changed", "--force"}},
		{"ShutdownLocalForce", func(b *bytes.Buffer) {
			printShutdown(b, shutdownResult{PID: 42, Signals: []string{"SIGTERM", "SIGINT"}})
		}, []string{"SIGTERM then SIGINT to pid 42"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b bytes.Buffer
			tt.out(&b)
			for _, w := range tt.want {
				assert.Contains(t, b.String(), w)
			}
		})
	}
}

// TestZshCompletion runs the zsh script with the completion system's
// _arguments and _describe replaced by stubs that print what they were
// given, and checks each command gets its own flags.
func TestZshCompletion(t *testing.T) {
	zsh, err := exec.LookPath("zsh")
	if err != nil {
		t.Skip("zsh not installed")
	}
	script := filepath.Join(t.TempDir(), "_quiesce")
	require.NoError(t, os.WriteFile(script, []byte(completion(t, "zsh")), 0o600))
	run := func(t *testing.T, words ...string) string {
		t.Helper()
		var quoted []string
		for _, w := range words {
			quoted = append(quoted, zshQuote(w))
		}
		prog := fmt.Sprintf(`compdef() { :; }
_arguments() { print -rl -- "$@"; }
_describe() { print -rl -- describe "${(@P)4}"; }
source %s
words=(%s); CURRENT=%d; _quiesce`, zshQuote(script), strings.Join(quoted, " "), len(words))
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		out, err := exec.CommandContext(ctx, zsh, "-f", "-c", prog).CombinedOutput()
		require.NoError(t, err, string(out))
		return string(out)
	}
	out := run(t, "quiesce", "dr")
	assert.Contains(t, out, "describe")
	assert.Contains(t, out, "drain:stop starting new turns")
	assert.Contains(t, out, `cancel:cancel the drain\: start accepting turns again`)

	out = run(t, "quiesce", "drain", "--ti")
	assert.Contains(t, out, "--timeout[with --wait\\: give up after this long (exit 3)]:timeout: ")
	assert.Contains(t, out, "--home[gateway home (used when --url is not set, and for the default --token-file)]:directory:_files -/")
	assert.NotContains(t, out, "--force[", "shutdown's flags are not drain's")

	out = run(t, "quiesce", "diagram", "--format", "")
	assert.Contains(t, out, "--format[mermaid or dot]:format:(mermaid dot)")
	out = run(t, "quiesce", "completion", "")
	assert.Contains(t, out, "1:completion:(bash zsh)")
}
