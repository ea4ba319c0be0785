package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// Exit codes.
const (
	exitOK          = 0
	exitError       = 1
	exitUsage       = 2
	exitWaitTimeout = 3  // drain --wait: turns still in flight at --timeout
	exitConfig      = 78 // EX_CONFIG: run cannot start as configured (supervisors stop restarting)
)

func main() {
	m := NewMain()
	os.Exit(m.Main(context.Background(), os.Args[1:]))
}

// Main is the quiesce program: ParseFlags picks and parses a subcommand,
// Run runs it. Tests drive it without os.Args.
type Main struct {
	Program string              // name in help texts and printed commands
	Stdout  io.Writer           // command output
	Stderr  io.Writer           // logs, errors and help
	Getenv  func(string) string // environment lookup

	cmd command
}

// NewMain returns a Main wired to the process: os.Args[0], stdout, stderr
// and the environment.
func NewMain() *Main {
	prog := "quiesce"
	if len(os.Args) > 0 && os.Args[0] != "" {
		prog = os.Args[0]
		if !strings.Contains(prog, string(filepath.Separator)) {
			prog = filepath.Base(prog)
		}
	}
	return &Main{Program: prog, Stdout: os.Stdout, Stderr: os.Stderr, Getenv: os.Getenv}
}

// command is one subcommand.
type command interface {
	// flagSet registers the command's flags on a new flag set.
	flagSet(m *Main) *flagSet
	// run runs the command after its flags are parsed.
	run(ctx context.Context, m *Main) error
}

type commandInfo struct {
	summary string
	new     func() command
}

var commands = map[string]commandInfo{
	"run":      {"start a gateway (HTTP API, marker watcher, signal handling)", func() command { return &runCmd{} }},
	"drain":    {"stop starting new turns; in-flight turns finish (reversible)", func() command { return &drainCmd{} }},
	"cancel":   {"cancel the drain: start accepting turns again", func() command { return &cancelCmd{} }},
	"status":   {"show state, turns in flight, drain request, epoch, pid, uptime", func() command { return &statusCmd{} }},
	"shutdown": {"start the shutdown sequence (--force: interrupt turns now)", func() command { return &shutdownCmd{} }},
	"diagram":  {"print the lifecycle state machine as Mermaid or DOT", func() command { return &diagramCmd{} }},
}

// usageError is a command-line mistake: exit code 2.
type usageError struct{ msg string }

// Error implements error.
func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

// configError is a configuration error at start (unusable tokens file,
// home held by another gateway, unusable file in the home, address in
// use): exit code 78, so a supervisor stops its restart loop.
type configError struct{ err error }

// Error implements error.
func (e *configError) Error() string { return e.err.Error() }

// Unwrap returns the cause.
func (e *configError) Unwrap() error { return e.err }

// errWaitTimeout is returned by drain --wait when turns are still in
// flight at its timeout: exit code 3.
var errWaitTimeout = errors.New("timed out waiting for in-flight turns to finish")

// Main parses args, runs the command and returns the exit code, printing
// any error to Stderr.
func (m *Main) Main(ctx context.Context, args []string) int {
	err := m.ParseFlags(ctx, args)
	if err == nil {
		err = m.Run(ctx)
	}
	code := ExitCode(err)
	if err != nil && !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintf(m.Stderr, "%s: %v\n", filepath.Base(m.Program), err)
		if code == exitUsage {
			fmt.Fprintf(m.Stderr, "Run '%s -h' for usage.\n", m.Program)
		}
	}
	return code
}

// ExitCode maps an error from ParseFlags or Run to the exit code.
func ExitCode(err error) int {
	var ue *usageError
	var ce *configError
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return exitOK
	case errors.As(err, &ue):
		return exitUsage
	case errors.As(err, &ce):
		return exitConfig
	case errors.Is(err, errWaitTimeout):
		return exitWaitTimeout
	default:
		return exitError
	}
}

// ParseFlags picks the subcommand named by args[0] and parses the rest
// with its own flag set. It returns flag.ErrHelp after printing help for
// -h, and a usage error (exit 2) for anything it cannot parse.
func (m *Main) ParseFlags(_ context.Context, args []string) error {
	if len(args) == 0 {
		m.usage(m.Stderr)
		return usagef("no command given")
	}
	name := args[0]
	switch name {
	case "-h", "-help", "--help", "help":
		m.usage(m.Stdout)
		return flag.ErrHelp
	}
	info, ok := commands[name]
	if !ok {
		return usagef("unknown command %q", name)
	}
	cmd := info.new()
	fs := cmd.flagSet(m)
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return &usageError{msg: err.Error()}
	}
	if fs.NArg() > 0 {
		return usagef("%s: unexpected argument %q", name, fs.Arg(0))
	}
	if err := fs.applyEnv(m.Getenv); err != nil {
		return err
	}
	m.cmd = cmd
	return nil
}

// Run runs the parsed command.
func (m *Main) Run(ctx context.Context) error {
	if m.cmd == nil {
		return usagef("no command parsed")
	}
	return m.cmd.run(ctx, m)
}

func (m *Main) usage(w io.Writer) {
	fmt.Fprintf(w, "Usage: %s <command> [flags]\n\nA gateway runtime you can drain, cancel and shut down safely.\n\nCommands:\n", m.Program)
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Slice(names, func(i, j int) bool { return commandOrder(names[i]) < commandOrder(names[j]) })
	for _, n := range names {
		fmt.Fprintf(w, "  %-9s %s\n", n, commands[n].summary)
	}
	fmt.Fprintf(w, `
Run '%[1]s <command> -h' for the flags of a command.

Client commands (drain, cancel, status, shutdown) use the HTTP API when --url
or QUIESCE_URL is set (token from QUIESCE_TOKEN or --token-file), and otherwise
act on the gateway home (--home, QUIESCE_HOME, default ./.quiesce) directly.

Exit codes:
  0  success
  1  error
  2  usage error
  3  drain --wait timed out with turns still in flight
`, m.Program)
}

func commandOrder(name string) int {
	for i, n := range []string{"run", "drain", "cancel", "status", "shutdown", "diagram"} {
		if n == name {
			return i
		}
	}
	return 99
}

// envPrefix prefixes the environment variable of a flag: --drain-timeout
// falls back to QUIESCE_DRAIN_TIMEOUT.
const envPrefix = "QUIESCE_"

// envName returns the environment variable a flag falls back to.
func envName(flagName string) string {
	return envPrefix + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// flagSet is a subcommand's flag set plus the flags that fall back to
// the environment.
type flagSet struct {
	*flag.FlagSet
	env []string
}

// newFlagSet returns a ContinueOnError flag set whose -h help shows the
// synopsis, the description and the flags.
func (m *Main) newFlagSet(name, synopsis, description string) *flagSet {
	fs := &flagSet{FlagSet: flag.NewFlagSet(name, flag.ContinueOnError)}
	fs.SetOutput(m.Stderr)
	fs.Usage = func() {
		w := fs.Output()
		fmt.Fprintf(w, "Usage: %s %s %s\n\n%s\n\nFlags:\n", m.Program, name, synopsis, strings.TrimSpace(description))
		fs.PrintDefaults()
	}
	return fs
}

// withEnv marks flags that fall back to their environment variable when
// not given on the command line, and names it in their help.
func (fs *flagSet) withEnv(names ...string) {
	for _, n := range names {
		f := fs.Lookup(n)
		f.Usage += " (env " + envName(n) + ")"
		fs.env = append(fs.env, n)
	}
}

// applyEnv sets every env-backed flag that was not given on the command
// line from its environment variable, if set.
func (fs *flagSet) applyEnv(getenv func(string) string) error {
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	for _, n := range fs.env {
		if given[n] {
			continue
		}
		if v := getenv(envName(n)); v != "" {
			if err := fs.Set(n, v); err != nil {
				return usagef("%s=%q: %v", envName(n), v, err)
			}
		}
	}
	return nil
}
