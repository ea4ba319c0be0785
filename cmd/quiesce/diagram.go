package main

import (
	"context"
	"io"
	"strings"

	"github.com/quiesce-dev/quiesce/fsm"
)

// diagramCmd is "quiesce diagram".
type diagramCmd struct {
	format string
}

func (c *diagramCmd) flagSet(m *Main) *flagSet {
	fs := m.newFlagSet("diagram", "[--format mermaid|dot]", `
Print the lifecycle state machine, drawn from the same table that defines it.`)
	fs.StringVar(&c.format, "format", string(fsm.Mermaid), "mermaid or dot")
	return fs
}

func (c *diagramCmd) run(_ context.Context, m *Main) error {
	switch fsm.Format(c.format) {
	case fsm.Mermaid, fsm.DOT:
	default:
		return usagef("--format %q: want mermaid or dot", c.format)
	}
	out, err := fsm.Describe(fsm.Format(c.format))
	if err != nil {
		return err
	}
	_, err = io.WriteString(m.Stdout, strings.TrimRight(out, "\n")+"\n")
	return err
}
