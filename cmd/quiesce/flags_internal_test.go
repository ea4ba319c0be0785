package main

import (
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/quiesce-dev/quiesce/server"
)

// TestRunEveryFlagHasEnv walks every flag of run: each one, set only
// through its QUIESCE_<FLAG> variable, takes the variable's value, and its
// help names the variable. A flag added to run without one fails here.
func TestRunEveryFlagHasEnv(t *testing.T) {
	m, _, _ := newTestMain(nil)
	fs := (&runCmd{}).flagSet(m)
	n := 0
	fs.VisitAll(func(f *flag.Flag) {
		if _, alias := fs.aliases[f.Name]; alias {
			return
		}
		n++
		t.Run(f.Name, func(t *testing.T) {
			value := "set-by-env"
			if g, ok := f.Value.(flag.Getter); ok {
				switch g.Get().(type) {
				case bool:
					value = "true"
				case time.Duration:
					value = "7s"
				case int:
					value = "7"
				}
			}
			env := map[string]string{envName(f.Name): value}
			m, _, _ := newTestMain(env)
			require.NoError(t, m.ParseFlags(t.Context(), []string{"run"}))
			got := m.cmd.(*runCmd).fs.Lookup(f.Name).Value.String()
			assert.Equal(t, value, got, "%s=%s", envName(f.Name), value)
			assert.Contains(t, f.Usage, "(env "+envName(f.Name)+")", "the help names the variable")
		})
	})
	assert.Greater(t, n, 15, "run's flags were walked")
}

// TestTokensFileOneSpelling: --tokens-file is the spelling of run and of
// the client commands; --token-file (and QUIESCE_TOKEN_FILE) stays
// accepted as an alias, and the canonical spelling wins over the alias's
// variable.
func TestTokensFileOneSpelling(t *testing.T) {
	tests := []struct {
		args []string
		env  map[string]string
		want string
	}{
		{[]string{"--tokens-file", "/a"}, nil, "/a"},
		{[]string{"--token-file", "/a"}, nil, "/a"},
		{nil, map[string]string{"QUIESCE_TOKENS_FILE": "/b"}, "/b"},
		{nil, map[string]string{"QUIESCE_TOKEN_FILE": "/b"}, "/b"},
		{nil, map[string]string{"QUIESCE_TOKENS_FILE": "/b", "QUIESCE_TOKEN_FILE": "/c"}, "/b"},
		{[]string{"--token-file", "/a"}, map[string]string{"QUIESCE_TOKENS_FILE": "/b"}, "/a"},
	}
	for _, cmd := range []string{"run", "drain", "cancel", "status", "shutdown"} {
		for _, tt := range tests {
			m, _, _ := newTestMain(tt.env)
			require.NoError(t, m.ParseFlags(t.Context(), append([]string{cmd}, tt.args...)), "%s %v", cmd, tt.args)
			var got string
			switch c := m.cmd.(type) {
			case *runCmd:
				got = c.tokensFile
			case *drainCmd:
				got = c.tokenFile
			case *cancelCmd:
				got = c.tokenFile
			case *statusCmd:
				got = c.tokenFile
			case *shutdownCmd:
				got = c.tokenFile
			}
			assert.Equal(t, tt.want, got, "%s %v %v", cmd, tt.args, tt.env)
		}
	}
}

// TestClientReadsServerTokensFile: the client and the server agree on the
// tokens file: a "principal token" file the server loads gives the client
// the token, never the principal.
func TestClientReadsServerTokensFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tokens")
	const token = "tok-0123456789abcdef0123"
	require.NoError(t, os.WriteFile(path, []byte("# ops\n\nops "+token+"\nci tok-fedcba9876543210fedc\n"), 0o600))
	tokens, err := server.LoadTokens(path)
	require.NoError(t, err)
	got, err := server.ReadClientToken(path)
	require.NoError(t, err)
	assert.Equal(t, token, got)
	principal, ok := tokens.Lookup(got)
	assert.True(t, ok, "the server accepts what the client sends")
	assert.Equal(t, "ops", principal)
}

// TestRunAgentFlagsOfAnotherKind: a flag that belongs to another agent
// kind is a usage error naming the --agent it needs, whether given on the
// command line or through QUIESCE_*: the echo agent never answers in
// place of the agent the user meant.
func TestRunAgentFlagsOfAnotherKind(t *testing.T) {
	for _, tt := range []struct {
		args []string
		env  map[string]string
		want []string
	}{
		{[]string{"--agent-url", "http://127.0.0.1:9/turn"}, nil, []string{"--agent-url is for --agent http", "--agent is not set"}},
		{[]string{"--agent-cmd", "cat"}, nil, []string{"--agent-cmd is for --agent exec"}},
		{[]string{"--agent", "exec", "--agent-cmd", "cat", "--agent-work", "1s"}, nil, []string{"--agent-work is for --agent echo", "--agent is exec"}},
		{[]string{"--agent", "exec", "--agent-cmd", "cat", "--agent-timeout", "1s"}, nil, []string{"--agent-timeout is for --agent http"}},
		{[]string{"--agent", "exec", "--agent-cmd", "cat"}, map[string]string{"QUIESCE_AGENT_URL": "http://127.0.0.1:9/"},
			[]string{"--agent-url (from QUIESCE_AGENT_URL) is for --agent http", "unset QUIESCE_AGENT_URL"}},
		{nil, map[string]string{"QUIESCE_AGENT_CMD": "cat"}, []string{"--agent-cmd (from QUIESCE_AGENT_CMD) is for --agent exec"}},
		{[]string{"--addr", ":99999"}, nil, []string{`--addr ":99999"`, "0 to 65535"}},
		{[]string{"--addr", "8470"}, nil, []string{"want host:port"}},
	} {
		t.Run(strings.Join(tt.args, " ")+fmt.Sprint(tt.env), func(t *testing.T) {
			m, _, errb := newTestMain(tt.env)
			home := filepath.Join(t.TempDir(), "home")
			code := m.Main(t.Context(), append([]string{"run", "--home", home}, tt.args...))
			assert.Equal(t, exitUsage, code)
			for _, w := range tt.want {
				assert.Contains(t, errb.String(), w)
			}
			assert.NoDirExists(t, home, "nothing starts before the usage error")
		})
	}
	m, _, _ := newTestMain(nil)
	require.NoError(t, m.ParseFlags(t.Context(), []string{"run", "--agent", "http", "--agent-url", "http://127.0.0.1:9/", "--agent-timeout", "1s"}))
	assert.NoError(t, m.cmd.(*runCmd).validate(), "flags of the chosen kind are fine")
}

// TestFlagSuggestions: a mistyped flag gets a "did you mean", before a
// command (--vesion) as after one.
func TestFlagSuggestions(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"--vesion"}, "did you mean --version?"},
		{[]string{"-hepl"}, "did you mean --help?"},
		{[]string{"status", "--jsn"}, "did you mean --json?"},
		{[]string{"run", "--tokenfile", "x"}, "did you mean --token-file?"},
	} {
		m, _, errb := newTestMain(nil)
		assert.Equal(t, exitUsage, m.Main(t.Context(), tt.args), "%v", tt.args)
		assert.Contains(t, errb.String(), tt.want, "%v", tt.args)
	}
}

// TestListenHintFollowsErrno: the hint of a listen error is about its
// cause, not always "another gateway".
func TestListenHintFollowsErrno(t *testing.T) {
	wrap := func(e error) error {
		return fmt.Errorf("server: listen: %w", &net.OpError{Op: "listen", Net: "tcp", Err: &os.SyscallError{Syscall: "bind", Err: e}})
	}
	for _, tt := range []struct {
		err  error
		want string
	}{
		{wrap(syscall.EADDRINUSE), "another process listens on that address"},
		{wrap(syscall.EACCES), "privileged"},
		{wrap(syscall.EADDRNOTAVAIL), "not one of this host's"},
		{&net.DNSError{Err: "no such host", Name: "nosuch"}, "does not resolve"},
	} {
		hint := listenHint(tt.err)
		assert.Contains(t, hint, tt.want, "%v", tt.err)
		if !errors.Is(tt.err, syscall.EADDRINUSE) {
			assert.NotContains(t, hint, "another", "%v", tt.err)
		}
	}
}
