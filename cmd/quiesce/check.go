package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/quiesce-dev/quiesce/gateway"
	"github.com/quiesce-dev/quiesce/server"
)

// exitTempFail is EX_TEMPFAIL: run could not start for a reason a restart
// may cure (ENOSPC, EDQUOT, EIO or EROFS in the home).
const exitTempFail = 75

// tempError is a transient failure at start: exit code 75.
type tempError struct{ err error }

// Error implements error: not an unusable file an operator must move, but
// a write that failed, and what a supervisor will do about it.
func (e *tempError) Error() string {
	msg := strings.TrimPrefix(stripPrefixes(e.err.Error()), stripPrefixes(gateway.ErrHome.Error())+": ")
	return "cannot write the home: " + msg + " (a temporary failure: exit 75, so a supervisor restarts the gateway; free space or fix the file system and it starts)"
}

// Unwrap returns the cause.
func (e *tempError) Unwrap() error { return e.err }

// transientErrnos are the file system errors at start that a restart may
// cure (space freed, quota raised, disk back, remounted read-write).
var transientErrnos = []error{syscall.ENOSPC, syscall.EDQUOT, syscall.EIO, syscall.EROFS}

// startError classifies an error of the start-up checks as run's exit
// code would: transient (75) or configuration (78).
func startError(err error) error {
	for _, errno := range transientErrnos {
		if errors.Is(err, errno) {
			return &tempError{err}
		}
	}
	return &configError{err}
}

// tokensPath is the tokens file run reads: --tokens-file, else
// $home/tokens.
func (c *runCmd) tokensPath() string {
	if c.tokensFile != "" {
		return c.tokensFile
	}
	return filepath.Join(c.home, "tokens")
}

// tokensLoadError is the configuration error for a tokens file at path
// that server.LoadTokens refused with err.
func tokensLoadError(path string, err error) error {
	if errors.Is(err, os.ErrNotExist) {
		return &configError{fmt.Errorf("tokens file %s is missing: create it with lines \"principal token\" (chmod 600), point --tokens-file at yours, or start with --dev", path)}
	}
	return &configError{fmt.Errorf("refusing to start: %w", err)}
}

// checkCmd is "quiesce check": run's start-up checks, without starting.
type checkCmd struct {
	runCmd
	allowRunning bool
}

func (c *checkCmd) flagSet(m *Main) *flagSet {
	fs := c.runCmd.flagSet(m) // run's flags, environment variables and defaults
	fs.Init("check", flag.ContinueOnError)
	fs.synopsis = "[--allow-running] [run's flags]"
	fs.description = `
Run the start-up checks of 'quiesce run' with the same flags and QUIESCE_*
variables, without starting anything or changing any file (like nginx -t):
the flags, the home (a directory this user can write, or one it can create;
no FIFO, directory or symlink where a file of the home belongs; not held by
another live gateway), the tokens file (the same loader and checks as run and
SIGHUP), and the listen address. Prints each check's outcome and exits as run
would: 0 all passed, 2 a usage error, 78 a configuration error, 75 a
transient one (full disk, read-only or failing file system).

A home held by a live gateway fails (run would exit 78). With
--allow-running it passes, and the address is not tried: use it to check a
changed tokens file before reloading a running gateway (systemd's
ExecReload, before SIGHUP).`
	fs.BoolVar(&c.allowRunning, "allow-running", false, "a live gateway holding the home passes (for checking a tokens file before a reload); its address is then not tried")
	return fs
}

// checkResult is one check's outcome.
type checkResult struct {
	name   string
	detail string // what passed, or why it was skipped
	err    error  // nil when it passed; a *usageError, *configError or *tempError
}

func (c *checkCmd) run(_ context.Context, m *Main) error {
	var results []checkResult
	add := func(name, detail string, err error) { results = append(results, checkResult{name, detail, err}) }

	// In run's order: flags, home, tokens, address; each runs even when
	// an earlier one failed, so one pass shows everything to fix.
	if err := c.validate(); err != nil {
		add("flags", "", err)
	} else if _, err := newLogger(m.Stderr, c.logLevel, c.logFormat); err != nil {
		add("flags", "", err)
	} else {
		detail := fmt.Sprintf("agent %s, drain timeout %v, notify timeout %v", c.agent, c.drainTimeout, c.notifyTimeout)
		if unknown := m.unknownEnv(); len(unknown) > 0 {
			detail += "; ignored, as no command reads them: " + strings.Join(unknown, ", ")
		}
		add("flags", detail, nil)
	}
	running, detail, err := c.checkHome()
	add("home", detail, err)
	detail, err = c.checkTokens()
	add("tokens", detail, err)
	if running {
		add("address", "not tried: the running gateway may be listening there", nil)
	} else {
		detail, err = c.checkAddr()
		add("address", detail, err)
	}
	return printChecks(m.Stdout, results)
}

// printChecks prints one line per check and returns nil when all passed,
// else a *checkFailed whose exit code is the first failure's.
func printChecks(w io.Writer, results []checkResult) error {
	var first error
	var failed []string
	for _, r := range results {
		status, text := "ok  ", r.detail
		if r.err != nil {
			status, text = "FAIL", stripPrefixes(r.err.Error())
			failed = append(failed, r.name)
			if first == nil {
				first = r.err
			}
		}
		fmt.Fprintf(w, "%s %-8s %s\n", status, r.name, text)
	}
	if first == nil {
		fmt.Fprintf(w, "all %d checks passed: run would start\n", len(results))
		return nil
	}
	return &checkFailed{
		msg:   fmt.Sprintf("%d of %d checks failed (%s); run would exit %d", len(failed), len(results), strings.Join(failed, ", "), ExitCode(first)),
		first: first,
	}
}

// checkFailed is check's error: a summary (each failure is printed on
// its own line above it) that unwraps to the first failure in run's
// order, whose type gives the exit code run would exit with.
type checkFailed struct {
	msg   string
	first error
}

// Error implements error.
func (e *checkFailed) Error() string { return e.msg }

// Unwrap returns the first failure.
func (e *checkFailed) Unwrap() error { return e.first }

// checkHome checks the home as run's start would use it; running reports
// a live gateway holding it (which passes with --allow-running).
func (c *checkCmd) checkHome() (running bool, detail string, err error) {
	if c.home == "" {
		return false, "", usagef("--home: must not be empty")
	}
	err = gateway.CheckHome(c.home)
	switch {
	case err == nil:
		if _, serr := os.Stat(c.home); serr != nil {
			return false, c.home + " does not exist yet; run creates it (mode 0700)", nil
		}
		return false, c.home + " is usable and no gateway holds it", nil
	case errors.Is(err, gateway.ErrLocked):
		_, pid, _ := gateway.HomeLive(c.home)
		if pid == "" {
			pid = "unknown"
		}
		if c.allowRunning {
			return true, fmt.Sprintf("%s is usable; held by the running gateway, pid %s (--allow-running)", c.home, pid), nil
		}
		return true, "", &configError{fmt.Errorf("%w (or, to check a reload of that gateway, add --allow-running)", err)}
	default:
		return false, "", startError(err)
	}
}

// checkTokens loads the tokens file as run does (server.LoadTokens).
func (c *checkCmd) checkTokens() (string, error) {
	path := c.tokensPath()
	tokens, err := server.LoadTokens(path)
	switch {
	case err == nil:
		n := tokens.Len()
		return fmt.Sprintf("%s: %d %s", path, n, plural(n, "token", "tokens")), nil
	case c.dev && errors.Is(err, os.ErrNotExist):
		if fi, derr := os.Stat(filepath.Dir(path)); c.tokensFile != "" && (derr != nil || !fi.IsDir()) {
			return "", &configError{fmt.Errorf("dev token: cannot create %s: its directory %s does not exist", path, filepath.Dir(path))}
		}
		return path + " is missing; run --dev creates it with a dev token", nil
	default:
		return "", tokensLoadError(path, err)
	}
}

// checkAddr listens on --addr and closes at once, as run's listen would
// claim it.
func (c *checkCmd) checkAddr() (string, error) {
	ln, err := net.Listen("tcp", c.addr)
	if err != nil {
		return "", &configError{fmt.Errorf("listen %s: %w: %s", c.addr, err, listenHint(err))}
	}
	_ = ln.Close()
	return c.addr + " is free", nil
}

// plural returns one when n is 1, else many.
func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
