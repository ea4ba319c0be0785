package deploy_test

// Small parsers for the deployment files: a systemd unit, a Dockerfile,
// command lines with quiesce's flags, systemd time spans, and YAML
// documents (go.yaml.in/yaml/v3). Each reads only what the checks need
// and fails loudly on anything it does not understand.

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"
)

// unit is a parsed systemd unit file: section → key → every assignment,
// in file order.
type unit map[string]map[string][]string

// parseUnit parses a unit file: [Section] headers, Key=Value lines,
// '#' and ';' comments, and lines continued with a trailing backslash
// (joined with a space, as systemd does).
func parseUnit(data string) (unit, error) {
	u := unit{}
	section := ""
	var cont strings.Builder
	for n, raw := range strings.Split(data, "\n") {
		line := strings.TrimSpace(raw)
		if cont.Len() == 0 && (line == "" || line[0] == '#' || line[0] == ';') {
			continue
		}
		if strings.HasSuffix(line, `\`) {
			cont.WriteString(strings.TrimSuffix(line, `\`) + " ")
			continue
		}
		line = cont.String() + line
		cont.Reset()
		if strings.HasPrefix(line, "[") {
			if !strings.HasSuffix(line, "]") {
				return nil, fmt.Errorf("line %d: section header %q not closed", n+1, line)
			}
			section = line[1 : len(line)-1]
			if u[section] == nil {
				u[section] = map[string][]string{}
			}
			continue
		}
		key, value, ok := strings.Cut(line, "=")
		if !ok || section == "" {
			return nil, fmt.Errorf("line %d: want Key=Value inside a [Section], got %q", n+1, line)
		}
		key, value = strings.TrimSpace(key), strings.TrimSpace(value)
		u[section][key] = append(u[section][key], value)
	}
	return u, nil
}

// last returns the last assignment of key in section (the one systemd
// uses for single-valued settings).
func (u unit) last(section, key string) (string, bool) {
	vs := u[section][key]
	if len(vs) == 0 {
		return "", false
	}
	return vs[len(vs)-1], true
}

// words returns the words of a list-valued setting: every assignment
// adds its words, an empty assignment resets the list.
func (u unit) words(section, key string) []string {
	var out []string
	for _, v := range u[section][key] {
		if v == "" {
			out = nil
			continue
		}
		out = append(out, strings.Fields(v)...)
	}
	return out
}

// splitCommand splits a command line into words: white space separates
// them, '...' and "..." quote (a backslash escapes inside double quotes).
// A leading systemd exec prefix (@, -, :, +, !, !!) is dropped.
func splitCommand(s string) ([]string, error) {
	var words []string
	var w strings.Builder
	inWord := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == ' ' || c == '\t':
			if inWord {
				words = append(words, w.String())
				w.Reset()
				inWord = false
			}
		case c == '\'' || c == '"':
			end := i + 1
			for ; end < len(s) && s[end] != c; end++ {
				if c == '"' && s[end] == '\\' && end+1 < len(s) {
					end++
					w.WriteByte(s[end])
					continue
				}
				w.WriteByte(s[end])
			}
			if end == len(s) {
				return nil, fmt.Errorf("unclosed %c in %q", c, s)
			}
			i, inWord = end, true
		default:
			w.WriteByte(c)
			inWord = true
		}
	}
	if inWord {
		words = append(words, w.String())
	}
	if len(words) > 0 {
		words[0] = strings.TrimLeft(words[0], "@-:+!")
	}
	return words, nil
}

// boolFlags are the boolean flags of quiesce's commands: they take no
// separate value.
var boolFlags = map[string]bool{"dev": true, "wait": true, "suppress-notification": true, "json": true, "force": true,
	"allow-running": true, "exit-zero-on-timeout": true, "watch-poll-only": true}

// command is a quiesce command line: the subcommand and its flags.
type command struct {
	sub   string
	flags map[string]string // flag name without dashes → value ("true" for a boolean flag)
}

// parseQuiesce parses args (the program, a subcommand, flags) as a
// quiesce command line, the way package flag does: "-name value",
// "--name value" and "--name=value", boolean flags without a value; a
// repeated flag keeps its last value.
func parseQuiesce(args []string) (command, error) {
	if len(args) < 2 || filepath.Base(args[0]) != "quiesce" {
		return command{}, fmt.Errorf("want \"quiesce <command> [flags]\", got %q", args)
	}
	c := command{sub: args[1], flags: map[string]string{}}
	rest := args[2:]
	for i := 0; i < len(rest); i++ {
		a := rest[i]
		if !strings.HasPrefix(a, "-") || a == "-" || a == "--" {
			return command{}, fmt.Errorf("quiesce %s: unexpected argument %q (every argument is a flag)", c.sub, a)
		}
		name, value, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		switch {
		case hasValue:
		case boolFlags[name]:
			value = "true"
		case i+1 < len(rest):
			i++
			value = rest[i]
		default:
			return command{}, fmt.Errorf("quiesce %s: flag %s has no value", c.sub, a)
		}
		c.flags[name] = value
	}
	return c, nil
}

// duration returns the duration flag name, or def when it is not given.
func (c command) duration(name string, def time.Duration) (time.Duration, error) {
	v, ok := c.flags[name]
	if !ok {
		return def, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return 0, fmt.Errorf("quiesce %s --%s %q: %w", c.sub, name, v, err)
	}
	return d, nil
}

// timespanUnits are the units of a systemd time span (systemd.time(7)).
var timespanUnits = map[string]time.Duration{
	"us": time.Microsecond, "usec": time.Microsecond,
	"ms": time.Millisecond, "msec": time.Millisecond,
	"s": time.Second, "sec": time.Second, "second": time.Second, "seconds": time.Second,
	"m": time.Minute, "min": time.Minute, "minute": time.Minute, "minutes": time.Minute,
	"h": time.Hour, "hr": time.Hour, "hour": time.Hour, "hours": time.Hour,
}

// parseTimespan parses a systemd time span: a bare number of seconds, or
// numbers with units ("35s", "1min 30s", "1m30s").
func parseTimespan(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if s == "infinity" {
		return 0, errors.New("infinity: systemd would never SIGKILL a wedged gateway")
	}
	if n, err := strconv.ParseFloat(s, 64); err == nil {
		return time.Duration(n * float64(time.Second)), nil
	}
	var total time.Duration
	rest := strings.ReplaceAll(s, " ", "")
	for rest != "" {
		i := 0
		for i < len(rest) && (rest[i] >= '0' && rest[i] <= '9' || rest[i] == '.') {
			i++
		}
		j := i
		for j < len(rest) && rest[j] >= 'a' && rest[j] <= 'z' {
			j++
		}
		n, err := strconv.ParseFloat(rest[:i], 64)
		unitLen, ok := timespanUnits[rest[i:j]]
		if err != nil || !ok {
			return 0, fmt.Errorf("%q is not a systemd time span", s)
		}
		total += time.Duration(n * float64(unitLen))
		rest = rest[j:]
	}
	return total, nil
}

// instruction is one Dockerfile instruction.
type instruction struct {
	line int    // 1-based line of its first line
	cmd  string // upper case: FROM, RUN, ...
	args string
}

// stage is one build stage of a Dockerfile: its FROM and what follows.
type stage struct {
	from   string // the base image
	name   string // the AS name, if any
	instrs []instruction
}

// all returns the stage's instructions of cmd, in order.
func (s stage) all(cmd string) []instruction {
	var out []instruction
	for _, in := range s.instrs {
		if in.cmd == cmd {
			out = append(out, in)
		}
	}
	return out
}

// parseDockerfile splits a Dockerfile into stages. Comment lines (also
// inside a continued instruction) are skipped; a trailing backslash
// continues an instruction on the next line.
func parseDockerfile(data string) ([]stage, error) {
	var stages []stage
	var cur strings.Builder
	start := 0
	flush := func() error {
		text := strings.TrimSpace(cur.String())
		cur.Reset()
		if text == "" {
			return nil
		}
		word, args, _ := strings.Cut(text, " ")
		in := instruction{line: start, cmd: strings.ToUpper(word), args: strings.TrimSpace(args)}
		if in.cmd == "FROM" {
			f := strings.Fields(in.args)
			f = slices.DeleteFunc(f, func(s string) bool { return strings.HasPrefix(s, "--") })
			if len(f) == 0 {
				return fmt.Errorf("line %d: FROM without an image", start)
			}
			st := stage{from: f[0]}
			if len(f) == 3 && strings.EqualFold(f[1], "AS") {
				st.name = f[2]
			}
			stages = append(stages, st)
			return nil
		}
		if len(stages) == 0 {
			return fmt.Errorf("line %d: %s before the first FROM", start, in.cmd)
		}
		last := &stages[len(stages)-1]
		last.instrs = append(last.instrs, in)
		return nil
	}
	for n, raw := range strings.Split(data, "\n") {
		line := strings.TrimSpace(raw)
		if strings.HasPrefix(line, "#") || (line == "" && cur.Len() == 0) {
			continue
		}
		if cur.Len() == 0 {
			start = n + 1
		}
		if strings.HasSuffix(line, `\`) {
			cur.WriteString(strings.TrimSuffix(line, `\`) + " ")
			continue
		}
		cur.WriteString(line)
		if err := flush(); err != nil {
			return nil, err
		}
	}
	if err := flush(); err != nil {
		return nil, err
	}
	return stages, nil
}

// execForm parses the JSON array of an exec-form ENTRYPOINT or CMD.
func execForm(in instruction) ([]string, error) {
	var args []string
	if err := json.Unmarshal([]byte(in.args), &args); err != nil {
		return nil, fmt.Errorf("line %d: %s %s is not the exec form [\"quiesce\", \"run\", ...]: %w", in.line, in.cmd, in.args, err)
	}
	return args, nil
}

// manifest is one YAML document of deploy/k8s.
type manifest struct {
	file string
	node *yaml.Node     // the document, for raw scalars
	obj  map[string]any // the document, decoded
}

// kind returns the document's kind.
func (m manifest) kind() string { s, _ := m.obj["kind"].(string); return s }

// readManifests reads every .yaml file in dir: base name → content.
func readManifests(t *testing.T, dir string) map[string]string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	require.NoErrorf(t, err, "no YAML files in %s", dir)
	require.NotEmptyf(t, files, "no YAML files in %s", dir)
	out := map[string]string{}
	for _, f := range files {
		data, err := os.ReadFile(f)
		require.NoError(t, err)
		out[filepath.Base(f)] = string(data)
	}
	return out
}

// parseManifests parses every YAML document of files (base name →
// content), in the order of the names.
func parseManifests(t *testing.T, files map[string]string) []manifest {
	t.Helper()
	var out []manifest
	for _, f := range slices.Sorted(maps.Keys(files)) {
		dec := yaml.NewDecoder(strings.NewReader(files[f]))
		for {
			var node yaml.Node
			err := dec.Decode(&node)
			if errors.Is(err, io.EOF) {
				break
			}
			require.NoErrorf(t, err, "%s", f)
			var obj map[string]any
			require.NoErrorf(t, node.Decode(&obj), "%s", f)
			if obj == nil {
				continue // an empty document
			}
			out = append(out, manifest{file: f, node: &node, obj: obj})
		}
	}
	return out
}

// rawScalars returns the raw text of every scalar value under key in n,
// at any depth (e.g. "0400" for defaultMode: 0400).
func rawScalars(n *yaml.Node, key string) []string {
	var out []string
	var walk func(n *yaml.Node)
	walk = func(n *yaml.Node) {
		if n.Kind == yaml.MappingNode {
			for i := 0; i+1 < len(n.Content); i += 2 {
				if n.Content[i].Value == key && n.Content[i+1].Kind == yaml.ScalarNode {
					out = append(out, n.Content[i+1].Value)
				}
			}
		}
		for _, c := range n.Content {
			walk(c)
		}
	}
	walk(n)
	return out
}

// at walks obj along path (map keys) and returns what is there, or nil.
func at(obj any, path ...string) any {
	for _, p := range path {
		m, ok := obj.(map[string]any)
		if !ok {
			return nil
		}
		obj = m[p]
	}
	return obj
}

// objects returns v as a list of objects (nil when it is not a list).
func objects(v any) []map[string]any {
	list, _ := v.([]any)
	var out []map[string]any
	for _, item := range list {
		if m, ok := item.(map[string]any); ok {
			out = append(out, m)
		}
	}
	return out
}

// strs returns v as a list of strings (nil when it is not one).
func strs(v any) []string {
	list, _ := v.([]any)
	var out []string
	for _, item := range list {
		out = append(out, fmt.Sprint(item))
	}
	return out
}
