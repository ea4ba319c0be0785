package main

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// waitCmd is "quiesce wait": drain --wait's wait alone, which changes
// nothing, so a drain --wait that timed out can wait again without
// draining again (a second drain would replace or refresh the request).
type waitCmd struct {
	target
	timeout time.Duration
}

func (c *waitCmd) flagSet(m *Main) *flagSet {
	fs := m.newFlagSet("wait", "[--timeout 60s] [--json]", `
Wait until no turn is in flight, showing the turns in flight and the oldest
one's age, then exit 0; exit 3 if turns are still running at --timeout. It
changes nothing: no drain, no cancel (use it after a 'drain --wait' that timed
out). Over HTTP it long-polls the status (?wait=idle); locally it follows the
home's state file. A gateway that is running may start new turns at any time:
drain it first to let it empty.`)
	c.target.register(fs)
	fs.DurationVar(&c.timeout, "timeout", 60*time.Second, "give up after this long (exit 3)")
	return fs
}

func (c *waitCmd) run(ctx context.Context, m *Main) error {
	if err := positive("--timeout", c.timeout); err != nil {
		return err
	}
	ctl, err := c.control(m)
	if err != nil {
		return err
	}
	st, err := waitIdle(ctx, ctl, newProgress(m.Stdout, c.json), c.timeout, waitAnyIdle)
	if errors.Is(err, errWaitTimeout) {
		err = fmt.Errorf("%w; nothing was changed: run '%s wait%s' again to keep waiting", err, m.programName(), c.target.flags())
	}
	return printWaited(m, c.json, st, err)
}
