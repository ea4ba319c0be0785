package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// children is every process the drill started, so that each one is killed
// when the drill ends, whatever way it ends (a failure, ctrl-C, a panic
// unwinding through run's defer). Each child also gets a parent-death
// signal on Linux, so a drill killed with -9 leaves none behind.
type children struct {
	mu    sync.Mutex // guards procs: the drill and its restart steps add to it
	procs []*child
}

// child is one process the drill started.
type child struct {
	name string
	cmd  *exec.Cmd
	log  string        // the file its stdout and stderr go to
	done chan struct{} // closed once it has exited and been reaped
	err  error         // cmd.Wait's error, valid after done
}

// start runs bin with args as a child in its own process group, with its
// output in dir/<name>.log (a new file per start: name is unique).
func (c *children) start(dir, name string, env []string, bin string, args ...string) (*child, error) {
	logPath := filepath.Join(dir, name+".log")
	f, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("%s: log file: %w", name, err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = append(cleanEnv(), env...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = childAttr()
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("start %s (%s): %w", name, bin, err)
	}
	p := &child{name: name, cmd: cmd, log: logPath, done: make(chan struct{})}
	// Reaps the child and records when it ended.
	go func() {
		p.err = cmd.Wait()
		f.Close()
		close(p.done)
	}()
	c.mu.Lock()
	c.procs = append(c.procs, p)
	c.mu.Unlock()
	return p, nil
}

// exited reports whether p has exited.
func (p *child) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// kill sends SIGKILL to p's process group and waits for p to be reaped,
// at most 10 s.
func (p *child) kill() error {
	if p.exited() {
		return nil
	}
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	select {
	case <-p.done:
		return nil
	case <-time.After(10 * time.Second):
		return fmt.Errorf("%s (pid %d) did not die within 10s of SIGKILL", p.name, p.cmd.Process.Pid)
	}
}

// killAll kills every child still alive.
func (c *children) killAll() error {
	c.mu.Lock()
	procs := c.procs
	c.procs = nil
	c.mu.Unlock()
	var errs []error
	for _, p := range procs {
		errs = append(errs, p.kill())
	}
	return errors.Join(errs...)
}

// tail returns the last n bytes of p's log, for error messages.
func (p *child) tail(n int) string {
	b, err := os.ReadFile(p.log)
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return strings.TrimSpace(string(b))
}

// runCLI runs the quiesce binary with args to completion (bounded by ctx)
// and returns its exit code and combined output.
func runCLI(ctx context.Context, bin string, env []string, args ...string) (int, string, error) {
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(cleanEnv(), env...)
	cmd.SysProcAttr = childAttr()
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	switch {
	case ctx.Err() != nil:
		return -1, string(out), fmt.Errorf("quiesce %s: %w", strings.Join(args, " "), ctx.Err())
	case errors.As(err, &ee):
		return ee.ExitCode(), string(out), nil
	case err != nil:
		return -1, string(out), fmt.Errorf("quiesce %s: %w", strings.Join(args, " "), err)
	}
	return 0, string(out), nil
}

// cleanEnv is the drill's environment without QUIESCE_* variables, so an
// operator's settings never leak into the fleet's gateways and commands.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "QUIESCE_") {
			env = append(env, kv)
		}
	}
	return env
}
