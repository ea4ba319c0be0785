package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"
)

// Exit codes.
const (
	exitOK          = 0
	exitError       = 1
	exitUsage       = 2
	exitWaitTimeout = 3  // drain --wait, wait, shutdown --wait: not done at --timeout
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
	Environ func() []string     // the environment as KEY=value (nil: unknownEnv finds nothing)

	cmd  command
	name string // the parsed command's name, for messages
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
	return &Main{Program: prog, Stdout: os.Stdout, Stderr: os.Stderr, Getenv: os.Getenv, Environ: os.Environ}
}

// command is one subcommand.
type command interface {
	// flagSet registers the command's flags on a new flag set.
	flagSet(m *Main) *flagSet
	// run runs the command after its flags are parsed.
	run(ctx context.Context, m *Main) error
}

// verbCommand is a command whose first argument is a subcommand that
// comes before its flags ("events replay --json").
type verbCommand interface {
	command
	// setVerb checks and keeps the subcommand.
	setVerb(verb string) error
}

// argsCommand is a command that takes arguments after its flags
// (completion bash, help drain); other commands refuse any.
type argsCommand interface {
	command
	// setArgs checks and keeps the arguments.
	setArgs(args []string) error
}

type commandInfo struct {
	summary string
	new     func() command
}

// commands is every subcommand; commandNames gives their order in help.
var commands = map[string]commandInfo{
	"run":        {"start a gateway (HTTP API, marker watcher, signal handling)", func() command { return &runCmd{} }},
	"check":      {"run's start-up checks (flags, home, tokens, address) without starting", func() command { return &checkCmd{} }},
	"drain":      {"stop starting new turns; in-flight turns finish (reversible)", func() command { return &drainCmd{} }},
	"cancel":     {"cancel the drain: start accepting turns again", func() command { return &cancelCmd{} }},
	"wait":       {"wait until no turn is in flight (changes nothing)", func() command { return &waitCmd{} }},
	"status":     {"show state, turns in flight, drain request, epoch, pid, uptime", func() command { return &statusCmd{} }},
	"turns":      {"list the turns in flight: session, age, streaming, event id (needs --url)", func() command { return &turnsCmd{} }},
	"events":     {"events replay: move rejected internal events back into the spool", func() command { return &eventsCmd{} }},
	"shutdown":   {"start the shutdown sequence (--force: interrupt turns now; --wait: until exited)", func() command { return &shutdownCmd{} }},
	"diagram":    {"print the lifecycle state machine as Mermaid or DOT", func() command { return &diagramCmd{} }},
	"version":    {"print the version and the commit it was built from", func() command { return &versionCmd{} }},
	"completion": {"print a shell completion script (bash or zsh)", func() command { return &completionCmd{} }},
	"help":       {"show the help of a command", func() command { return &helpCmd{} }},
}

var commandNames = []string{"run", "check", "drain", "cancel", "wait", "status", "turns", "events", "shutdown", "diagram", "version", "completion", "help"}

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

// Main parses args, runs the command and returns the exit code, printing
// any error to Stderr: "quiesce drain: <what went wrong and what to do>".
func (m *Main) Main(ctx context.Context, args []string) int {
	err := m.ParseFlags(ctx, args)
	if err == nil {
		err = m.Run(ctx)
	}
	code := ExitCode(err)
	var se *statusExit
	if errors.As(err, &se) && se.err == nil {
		return code // status already said it
	}
	if err != nil && !errors.Is(err, flag.ErrHelp) {
		prog := filepath.Base(m.Program)
		prefix := prog
		if m.name != "" {
			prefix += " " + m.name
		}
		fmt.Fprintf(m.Stderr, "%s: %s\n", prefix, stripPrefixes(err.Error()))
		if code == exitUsage {
			if m.name != "" && m.name != "help" {
				fmt.Fprintf(m.Stderr, "Run '%s help %s' for usage.\n", prog, m.name)
			} else {
				fmt.Fprintf(m.Stderr, "Run '%s -h' for usage.\n", prog)
			}
		}
	}
	return code
}

// ExitCode maps an error from ParseFlags or Run to the exit code.
func ExitCode(err error) int {
	var ue *usageError
	var ce *configError
	var te *tempError
	var se *statusExit
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return exitOK
	case errors.As(err, &se):
		return se.code
	case errors.As(err, &ue):
		return exitUsage
	case errors.As(err, &te):
		return exitTempFail
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
// -h, and a usage error (exit 2) for anything it cannot parse; a mistyped
// command or flag gets a suggestion.
func (m *Main) ParseFlags(_ context.Context, args []string) error {
	if len(args) == 0 {
		m.usage(m.Stderr)
		return usagef("no command given")
	}
	name := args[0]
	switch name {
	case "-h", "-help", "--help":
		m.usage(m.Stdout)
		return flag.ErrHelp
	case "-version", "--version":
		name = "version"
	}
	info, ok := commands[name]
	if !ok {
		return unknownCommand(name)
	}
	cmd := info.new()
	fs := cmd.flagSet(m)
	m.name = name
	rest := args[1:]
	if vc, ok := cmd.(verbCommand); ok {
		switch {
		case len(rest) > 0 && !strings.HasPrefix(rest[0], "-"):
			if err := vc.setVerb(rest[0]); err != nil {
				return err
			}
			rest = rest[1:]
		case len(rest) > 0 && (rest[0] == "-h" || rest[0] == "-help" || rest[0] == "--help"):
			// help: parsed below
		default:
			return usagef("%s needs a subcommand before its flags, e.g. '%s replay --json'", name, name)
		}
	}
	if err := fs.parse(rest, m.Getenv); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fs.printHelp(m.Stdout)
		}
		return err
	}
	if ac, ok := cmd.(argsCommand); ok {
		if err := ac.setArgs(fs.Args()); err != nil {
			return err
		}
	} else if fs.NArg() > 0 {
		return usagef("unexpected argument %q", fs.Arg(0))
	}
	m.cmd = cmd
	return nil
}

// unknownCommand is the usage error for a command that does not exist,
// with the closest one if any is close.
func unknownCommand(name string) error {
	if flagName, ok := strings.CutPrefix(name, "-"); ok {
		// A flag before any command: only -h and --version exist there.
		flagName = strings.TrimPrefix(flagName, "-")
		if s := suggest(flagName, []string{"help", "version"}); s != "" {
			return usagef("unknown flag %s; did you mean --%s?", name, s)
		}
		return usagef("unknown flag %s: give a command first (flags follow it), e.g. '%s status --json'", name, "quiesce")
	}
	if s := suggest(name, commandNames); s != "" {
		return usagef("unknown command %q; did you mean %q?", name, s)
	}
	return usagef("unknown command %q", name)
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
		fmt.Fprintf(w, "  %-11s %s\n", n, commands[n].summary)
	}
	fmt.Fprintf(w, `
Run '%[1]s help <command>' (or '%[1]s <command> -h') for the flags of a command,
and '%[1]s --version' for the version.

Client commands (drain, cancel, wait, status, turns, events replay, shutdown)
use the HTTP API when --url or QUIESCE_URL is set (token from QUIESCE_TOKEN or
--tokens-file), and otherwise act on the gateway home (--home, QUIESCE_HOME,
default ./.quiesce) directly (turns needs --url). Each prints the API's JSON
with --json.

Exit codes:
  0  success
  1  error
  2  usage error (for run: also a flag of another --agent kind, a bad --addr)
  3  drain --wait or wait timed out with turns still in flight, or
     shutdown --wait before the gateway exited
  75 run, check: writing the home failed for a reason a restart may cure
     (disk full, quota, I/O error, read-only file system): supervisors
     restart it
  78 run, check: cannot start as configured (tokens file, home held by
     another gateway, unusable file in the home, address unusable): an
     operator must fix it, supervisors stop restarting
status exits by state, like 'systemctl is-active': 0 running, 3 draining,
  4 shutting down, 5 not running (stopped or dead), 6 unreachable (--url),
  7 starting (local)
`, m.Program)
}

func commandOrder(name string) int {
	for i, n := range commandNames {
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

// tokenEnv is the one QUIESCE_ variable that is not a flag's: the bearer
// token of the client commands.
const tokenEnv = "QUIESCE_TOKEN"

// unknownEnv returns the QUIESCE_ variables set in the environment that
// no command reads (a misspelling, or a flag that is gone, such as
// QUIESCE_HOME_CHANNEL), sorted: they are ignored, which run says.
func (m *Main) unknownEnv() []string {
	if m.Environ == nil {
		return nil
	}
	known := map[string]bool{tokenEnv: true}
	for _, info := range commands {
		fs := info.new().flagSet(m)
		for _, n := range fs.env {
			known[envName(n)] = true
		}
		for a := range fs.aliases {
			known[envName(a)] = true
		}
	}
	var unknown []string
	for _, kv := range m.Environ() {
		k, v, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, envPrefix) && v != "" && !known[k] {
			unknown = append(unknown, k)
		}
	}
	sort.Strings(unknown)
	return unknown
}

// flagSet is a subcommand's flag set plus the flags that fall back to
// the environment and the aliases of flags.
type flagSet struct {
	*flag.FlagSet
	env                         []string
	prog, synopsis, description string
	// aliases maps an alias (another spelling accepted on the command
	// line and in the environment) to the flag it stands for.
	aliases map[string]string
	// fromEnv holds the flags parse set from their environment variable,
	// keyed by flag name, with the variable's name.
	fromEnv map[string]string
}

// newFlagSet returns a ContinueOnError flag set whose help (-h, or
// "help <command>") shows the synopsis, the description and the flags.
func (m *Main) newFlagSet(name, synopsis, description string) *flagSet {
	fs := &flagSet{FlagSet: flag.NewFlagSet(name, flag.ContinueOnError),
		prog: m.Program, synopsis: synopsis, description: description}
	fs.SetOutput(m.Stderr)
	fs.Usage = func() { fs.printHelp(fs.Output()) }
	return fs
}

// printHelp writes the command's help to w.
func (fs *flagSet) printHelp(w io.Writer) {
	fmt.Fprintf(w, "Usage: %s %s %s\n\n%s\n\nFlags:\n", fs.prog, fs.Name(), fs.synopsis, strings.TrimSpace(fs.description))
	out := fs.Output()
	fs.SetOutput(w)
	fs.PrintDefaults()
	fs.SetOutput(out)
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

// withEnvAll marks every flag defined so far, aliases and -h aside, as
// falling back to its environment variable (see withEnv): a flag added
// to the set gets its QUIESCE_<FLAG> variable without a list to keep.
func (fs *flagSet) withEnvAll() {
	marked := map[string]bool{}
	for _, n := range fs.env {
		marked[n] = true
	}
	var names []string
	fs.VisitAll(func(f *flag.Flag) {
		if _, alias := fs.aliases[f.Name]; !alias && !marked[f.Name] {
			names = append(names, f.Name)
		}
	})
	fs.withEnv(names...)
}

// alias accepts --alias (and its environment variable) as another
// spelling of the flag name, which must be defined; the help lists it as
// such. Call it before withEnv or withEnvAll.
func (fs *flagSet) alias(alias, name string) {
	f := fs.Lookup(name)
	fs.Var(f.Value, alias, "alias of --"+name+" ("+envName(alias)+" works too)")
	if fs.aliases == nil {
		fs.aliases = map[string]string{}
	}
	fs.aliases[alias] = name
}

// given reports whether the flag name was set, on the command line (by
// any of its spellings) or from the environment.
func (fs *flagSet) given(name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) {
		if f.Name == name || fs.aliases[f.Name] == name {
			set = true
		}
	})
	return set
}

// source names how the flag name was set, for messages: "--agent-url",
// or "--agent-url (from QUIESCE_AGENT_URL)".
func (fs *flagSet) source(name string) string {
	if v, ok := fs.fromEnv[name]; ok {
		return fmt.Sprintf("--%s (from %s)", name, v)
	}
	return "--" + name
}

// parse parses args, then fills the env-backed flags not given from
// getenv. Errors are usage errors that say what to write instead: a
// duration gets an example, an unknown flag a suggestion. The flag
// package's own printing is silenced (Main prints the error once).
func (fs *flagSet) parse(args []string, getenv func(string) string) error {
	restore := fs.friendlyDurations()
	defer restore()
	out, usage := fs.Output(), fs.Usage
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	err := fs.Parse(args)
	fs.SetOutput(out)
	fs.Usage = usage
	switch {
	case errors.Is(err, flag.ErrHelp):
		return err
	case err != nil:
		return &usageError{msg: fs.explainParseError(err)}
	}
	return fs.applyEnv(getenv)
}

// explainParseError adds a suggestion to "flag provided but not defined".
func (fs *flagSet) explainParseError(err error) string {
	const undefined = "flag provided but not defined: "
	msg := err.Error()
	name, ok := strings.CutPrefix(msg, undefined)
	if !ok {
		// "for flag -timeout", "for -wait": name the flags as the synopses do.
		return singleDash.ReplaceAllString(msg, "for $1--")
	}
	name = strings.TrimLeft(name, "-")
	var names []string
	fs.VisitAll(func(f *flag.Flag) { names = append(names, f.Name) })
	msg = fmt.Sprintf("unknown flag --%s", name)
	if s := suggest(name, names); s != "" {
		msg += fmt.Sprintf("; did you mean --%s?", s)
	}
	return msg
}

// singleDash matches a flag named with one dash in the flag package's
// errors.
var singleDash = regexp.MustCompile(`for (flag )?-\b`)

// friendlyDurations wraps every duration flag's value, until restore is
// called, so that a bad value says how to write one.
func (fs *flagSet) friendlyDurations() (restore func()) {
	var wrapped []*flag.Flag
	fs.VisitAll(func(f *flag.Flag) {
		if g, ok := f.Value.(flag.Getter); ok {
			if _, ok := g.Get().(time.Duration); ok {
				f.Value = durationValue{g}
				wrapped = append(wrapped, f)
			}
		}
	})
	return func() {
		for _, f := range wrapped {
			f.Value = f.Value.(durationValue).Getter
		}
	}
}

// durationValue is a duration flag whose parse error gives examples.
type durationValue struct{ flag.Getter }

// Set implements flag.Value.
func (d durationValue) Set(s string) error {
	if err := d.Getter.Set(s); err != nil {
		return errors.New("want a duration such as 25s, 1m30s or 500ms")
	}
	return nil
}

// applyEnv sets every env-backed flag that was not given on the command
// line from its environment variable, if set.
//
// An alias's variable is read only when the flag's own is unset, and a
// flag given by any spelling ignores both.
func (fs *flagSet) applyEnv(getenv func(string) string) error {
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) {
		given[f.Name] = true
		if n, ok := fs.aliases[f.Name]; ok {
			given[n] = true
		}
	})
	spellings := map[string][]string{}
	for a, n := range fs.aliases {
		spellings[n] = append(spellings[n], a)
	}
	for _, n := range fs.env {
		if _, alias := fs.aliases[n]; alias || given[n] {
			continue
		}
		sort.Strings(spellings[n])
		for _, s := range append([]string{n}, spellings[n]...) {
			v := getenv(envName(s))
			if v == "" {
				continue
			}
			if err := fs.Set(n, v); err != nil {
				return usagef("%s=%q: %v", envName(s), v, err)
			}
			if fs.fromEnv == nil {
				fs.fromEnv = map[string]string{}
			}
			fs.fromEnv[n] = envName(s)
			break
		}
	}
	return nil
}
