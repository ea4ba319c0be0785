package fsm

import (
	"fmt"
	"strings"
)

// Format is a diagram notation understood by Describe.
type Format string

// The diagram formats.
const (
	Mermaid Format = "mermaid" // Mermaid stateDiagram-v2
	DOT     Format = "dot"     // Graphviz DOT
)

// Describe renders the lifecycle from the rules table (the same table that
// defines the looplab/fsm machine) in the given format. The output is
// deterministic: rules are drawn in declaration order. Transitions are
// solid edges, accepted repeats are self-loops marked "no-op", and refused
// events are listed per state. It returns an error for an unknown format.
func Describe(format Format) (string, error) {
	switch format {
	case Mermaid:
		return describeMermaid(), nil
	case DOT:
		return describeDOT(), nil
	}
	return "", fmt.Errorf("fsm: unknown diagram format %q (want %q or %q)", format, Mermaid, DOT)
}

// refusals lists, per state, the events it refuses, in declaration order.
func refusals() map[State][]string {
	out := map[State][]string{}
	for _, r := range rules {
		if r.err != nil {
			out[r.from] = append(out[r.from], string(r.event))
		}
	}
	return out
}

func describeMermaid() string {
	var b strings.Builder
	b.WriteString("stateDiagram-v2\n")
	fmt.Fprintf(&b, "    [*] --> %s\n", Running)
	for _, r := range rules {
		if r.transition() {
			fmt.Fprintf(&b, "    %s --> %s: %s\n", r.from, r.to, r.event)
		}
	}
	for _, r := range rules {
		if r.noop() {
			fmt.Fprintf(&b, "    %s --> %s: %s (no-op)\n", r.from, r.to, r.event)
		}
	}
	fmt.Fprintf(&b, "    %s --> [*]\n", Stopped)
	ref := refusals()
	for _, s := range States {
		if evs := ref[s]; len(evs) > 0 {
			fmt.Fprintf(&b, "    note right of %s: refuses %s\n", s, strings.Join(evs, ", "))
		}
	}
	return b.String()
}

func describeDOT() string {
	var b strings.Builder
	b.WriteString("digraph lifecycle {\n")
	b.WriteString("    rankdir = LR;\n")
	b.WriteString("    node [shape = box, style = rounded];\n")
	ref := refusals()
	for _, s := range States {
		attrs := ""
		if s == Running {
			attrs = ", peripheries = 2"
		}
		label := string(s)
		if evs := ref[s]; len(evs) > 0 {
			label += "\\nrefuses " + strings.Join(evs, ", ")
		}
		fmt.Fprintf(&b, "    %q [label = \"%s\"%s];\n", s, label, attrs)
	}
	for _, r := range rules {
		if r.transition() {
			fmt.Fprintf(&b, "    %q -> %q [label = %q];\n", r.from, r.to, r.event)
		}
	}
	for _, r := range rules {
		if r.noop() {
			fmt.Fprintf(&b, "    %q -> %q [label = %q, style = dashed];\n", r.from, r.to, string(r.event)+" (no-op)")
		}
	}
	b.WriteString("}\n")
	return b.String()
}
