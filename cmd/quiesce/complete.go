package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strings"
)

// completionCmd is "quiesce completion bash|zsh".
type completionCmd struct {
	shell string
}

func (c *completionCmd) flagSet(m *Main) *flagSet {
	return m.newFlagSet("completion", "bash|zsh", `
Print a completion script for the commands and their flags.

  bash:  source <(quiesce completion bash)
         or save it as /etc/bash_completion.d/quiesce
  zsh:   source <(quiesce completion zsh)    (after compinit)
         or save it as _quiesce in a directory of your $fpath`)
}

func (c *completionCmd) setArgs(args []string) error {
	if len(args) != 1 {
		return usagef("want one shell: bash or zsh")
	}
	switch args[0] {
	case "bash", "zsh":
		c.shell = args[0]
		return nil
	}
	return usagef("shell %q: want bash or zsh", args[0])
}

func (c *completionCmd) run(_ context.Context, m *Main) error {
	specs := completionSpecs(m)
	if c.shell == "zsh" {
		return writeZsh(m.Stdout, m.programName(), specs)
	}
	return writeBash(m.Stdout, m.programName(), specs)
}

// programName is the name the completion is registered for.
func (m *Main) programName() string {
	name := m.Program
	if i := strings.LastIndexByte(name, '/'); i >= 0 {
		name = name[i+1:]
	}
	if name == "" || strings.ContainsAny(name, " \t'\"$`\\") {
		return "quiesce"
	}
	return name
}

// commandSpec is what completion knows about a command.
type commandSpec struct {
	name, summary string
	flags         []flagSpec
	// args are the words its first argument can be (completion, help).
	args []string
}

// flagSpec is what completion knows about a flag.
type flagSpec struct {
	name, usage string
	takesValue  bool
	// values are the words the value can be; dir and file ask for paths.
	values    []string
	dir, file bool
}

// flagValues are the value sets of the flags that have one.
var flagValues = map[string][]string{
	"format":     {"mermaid", "dot"},
	"log-format": {"text", "json"},
	"log-level":  {"debug", "info", "warn", "error"},
}

// completionSpecs describes every command and its flags, from the same
// flag sets that parse them.
func completionSpecs(m *Main) []commandSpec {
	var specs []commandSpec
	for _, name := range commandNames {
		spec := commandSpec{name: name, summary: commands[name].summary}
		commands[name].new().flagSet(m).VisitAll(func(f *flag.Flag) {
			fl := flagSpec{name: f.Name, usage: f.Usage, takesValue: !isBoolFlag(f), values: flagValues[f.Name]}
			switch f.Name {
			case "home", "proc-root":
				fl.dir = true
			case "token-file", "tokens-file":
				fl.file = true
			}
			spec.flags = append(spec.flags, fl)
		})
		switch name {
		case "completion":
			spec.args = []string{"bash", "zsh"}
		case "events":
			spec.args = eventsVerbs
		case "help":
			spec.args = commandNames
		}
		specs = append(specs, spec)
	}
	return specs
}

func isBoolFlag(f *flag.Flag) bool {
	b, ok := f.Value.(interface{ IsBoolFlag() bool })
	return ok && b.IsBoolFlag()
}

func writeBash(w io.Writer, prog string, specs []commandSpec) error {
	var b strings.Builder
	fn := "_" + strings.NewReplacer("-", "_", ".", "_").Replace(prog)
	fmt.Fprintf(&b, `# bash completion for %[1]s. Load it in this shell with
#   source <(%[1]s completion bash)
# or for every shell by saving it as /etc/bash_completion.d/%[1]s.
%[2]s() {
    local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]}
    if [[ $COMP_CWORD -eq 1 ]]; then
        COMPREPLY=($(compgen -W "%[3]s --help --version" -- "$cur"))
        return
    fi
    case "${COMP_WORDS[1]}" in
`, prog, fn, strings.Join(commandNames, " "))
	for _, s := range specs {
		fmt.Fprintf(&b, "    %s)\n        case \"$prev\" in\n", s.name)
		var names []string
		for _, f := range s.flags {
			names = append(names, "--"+f.name)
			if !f.takesValue {
				continue
			}
			var action string
			switch {
			case len(f.values) > 0:
				action = fmt.Sprintf(`COMPREPLY=($(compgen -W "%s" -- "$cur"))`, strings.Join(f.values, " "))
			case f.dir:
				action = `COMPREPLY=($(compgen -d -- "$cur"))`
			case f.file:
				action = `COMPREPLY=($(compgen -f -- "$cur"))`
			default:
				action = "COMPREPLY=()"
			}
			fmt.Fprintf(&b, "        -%[1]s|--%[1]s) %[2]s; return ;;\n", f.name, action)
		}
		b.WriteString("        esac\n")
		if len(s.args) > 0 {
			fmt.Fprintf(&b, "        if [[ $COMP_CWORD -eq 2 && $cur != -* ]]; then\n            COMPREPLY=($(compgen -W \"%s\" -- \"$cur\"))\n            return\n        fi\n",
				strings.Join(s.args, " "))
		}
		fmt.Fprintf(&b, "        COMPREPLY=($(compgen -W \"%s\" -- \"$cur\")) ;;\n", strings.Join(append(names, "--help"), " "))
	}
	fmt.Fprintf(&b, "    esac\n}\ncomplete -F %s %s\n", fn, prog)
	_, err := io.WriteString(w, b.String())
	return err
}

func writeZsh(w io.Writer, prog string, specs []commandSpec) error {
	var b strings.Builder
	fn := "_" + strings.NewReplacer("-", "_", ".", "_").Replace(prog)
	fmt.Fprintf(&b, `#compdef %[1]s
compdef %[2]s %[1]s
# zsh completion for %[1]s. Load it in this shell (after compinit) with
#   source <(%[1]s completion zsh)
# or for every shell by saving it as %[2]s in a directory of your $fpath.

%[2]s() {
    local -a commands
    commands=(
`, prog, fn)
	for _, s := range specs {
		fmt.Fprintf(&b, "        %s\n", zshQuote(s.name+":"+zshEscape(s.summary)))
	}
	b.WriteString(`    )
    if (( CURRENT == 2 )); then
        _describe -t commands 'command' commands
        return
    fi
    local cmd=$words[2]
    shift words
    (( CURRENT-- ))
    case $cmd in
`)
	for _, s := range specs {
		fmt.Fprintf(&b, "    %s)\n        _arguments -s \\\n", s.name)
		for _, f := range s.flags {
			spec := "--" + f.name + "[" + zshText(f.usage) + "]"
			if f.takesValue {
				switch {
				case len(f.values) > 0:
					spec += ":" + f.name + ":(" + strings.Join(f.values, " ") + ")"
				case f.dir:
					spec += ":directory:_files -/"
				case f.file:
					spec += ":file:_files"
				default:
					spec += ":" + f.name + ": "
				}
			}
			fmt.Fprintf(&b, "            %s \\\n", zshQuote(spec))
		}
		if len(s.args) > 0 {
			fmt.Fprintf(&b, "            %s \\\n", zshQuote("1:"+s.name+":("+strings.Join(s.args, " ")+")"))
		}
		b.WriteString("            '(- *)--help[show the help]'\n        ;;\n")
	}
	fmt.Fprintf(&b, "    esac\n}\n\nif [ \"$funcstack[1]\" = \"%[1]s\" ]; then\n    %[1]s \"$@\"\nfi\n", fn)
	_, err := io.WriteString(w, b.String())
	return err
}

// zshText makes a flag's usage fit an _arguments description: its first
// clause, on one line, with the brackets and colons that _arguments and
// _describe parse escaped.
func zshText(s string) string {
	if i := strings.Index(s, "; "); i > 0 {
		s = s[:i]
	}
	if i := strings.Index(s, " (env "); i > 0 {
		s = s[:i]
	}
	return zshEscape(s)
}

// zshEscape escapes what _arguments and _describe parse in a description.
func zshEscape(s string) string {
	return strings.NewReplacer("\\", "\\\\", "[", "\\[", "]", "\\]", ":", "\\:", "\n", " ").Replace(s)
}

// zshQuote single-quotes s for zsh.
func zshQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
