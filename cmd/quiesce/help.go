package main

import "context"

// helpCmd is "quiesce help [command]".
type helpCmd struct {
	topic string
}

func (c *helpCmd) flagSet(m *Main) *flagSet {
	return m.newFlagSet("help", "[command]", `
Show the help of a command: its synopsis, what it does and its flags. Without
a command, list the commands.`)
}

func (c *helpCmd) setArgs(args []string) error {
	switch {
	case len(args) > 1:
		return usagef("unexpected argument %q: help takes one command", args[1])
	case len(args) == 0:
		return nil
	}
	if _, ok := commands[args[0]]; !ok {
		return unknownCommand(args[0])
	}
	c.topic = args[0]
	return nil
}

func (c *helpCmd) run(_ context.Context, m *Main) error {
	if c.topic == "" {
		m.usage(m.Stdout)
		return nil
	}
	commands[c.topic].new().flagSet(m).printHelp(m.Stdout)
	return nil
}
