package page

import (
	"errors"
	"fmt"
	"html"
	"html/template"
	"slices"
	"strings"
	"sync"

	"github.com/quiesce-dev/quiesce/fsm"
)

// The lifecycle diagram of the status page is drawn from fsm.Rules: the
// same table the machine is built from and that fsm.Describe, docs/diagrams
// and `quiesce diagram` draw, so the page cannot drift from them.
// lifecycleOf turns the table into a small graph and lifecycleSVG lays it
// out deterministically: the states in one row in declaration order,
// transitions to the next state as straight arrows (forward above the
// middle, backward below), longer transitions as arcs over (forward) or
// under (backward) the row, accepted repeats (no-ops) as dashed loops
// under their state, and each state's refused events as a note beneath it.

// errDiagram is wrapped by lifecycleOf when a rule names a state that
// fsm.States does not declare (the diagram has no box for it).
var errDiagram = errors.New("page: lifecycle diagram")

// lifecycleEdge is one accepted event between two states.
type lifecycleEdge struct {
	from, to fsm.State
	event    string
	noop     bool // an accepted repeat that changes nothing
}

// lifecycleGraph is the lifecycle as the page draws it.
type lifecycleGraph struct {
	states  []fsm.State // fsm.States: the row, left to right
	initial fsm.State   // the state a machine starts in
	final   []fsm.State // states no event leads out of
	edges   []lifecycleEdge
	refuses map[fsm.State]string // "drain, resume"
}

// lifecycle is the graph of fsm.Rules, built once (the table is fixed).
var lifecycle = sync.OnceValues(func() (*lifecycleGraph, error) {
	return lifecycleOf(fsm.Rules())
})

// lifecycleOf builds the graph of rules: the transitions in declaration
// order, then the no-ops (as fsm.Describe draws them), each state's
// refused events in declaration order, and as final every state that no
// transition leaves. The initial state is fsm.Running, where a machine
// starts.
func lifecycleOf(rules []fsm.Rule) (*lifecycleGraph, error) {
	g := &lifecycleGraph{states: fsm.States, initial: fsm.Running, refuses: map[fsm.State]string{}}
	leaves := map[fsm.State]bool{}
	for _, r := range rules {
		for _, s := range []fsm.State{r.From, r.To} {
			if !slices.Contains(fsm.States, s) {
				return nil, fmt.Errorf("%w: %s from %s: unknown state %q", errDiagram, r.Event, r.From, s)
			}
		}
		switch {
		case r.Transition():
			g.edges = append(g.edges, lifecycleEdge{from: r.From, to: r.To, event: string(r.Event)})
			leaves[r.From] = true
		case r.Err != nil:
			if g.refuses[r.From] != "" {
				g.refuses[r.From] += ", "
			}
			g.refuses[r.From] += string(r.Event)
		}
	}
	for _, r := range rules {
		if r.Noop() {
			g.edges = append(g.edges, lifecycleEdge{from: r.From, to: r.To, event: string(r.Event), noop: true})
		}
	}
	for _, s := range g.states {
		if !leaves[s] {
			g.final = append(g.final, s)
		}
	}
	return g, nil
}

// Layout of the diagram, in SVG user units.
const (
	svgBoxW     = 150 // a state's box
	svgBoxH     = 44
	svgGap      = 110 // between two boxes
	svgSide     = 70  // left of the first box (initial dot), right of the last (final)
	svgPad      = 14  // around everything
	svgLine     = 15  // a line of label text
	svgArc      = 34  // apex height of a transition over or under one state
	svgArcStep  = 18  // extra apex height per further state spanned
	svgLoop     = 34  // depth of a no-op loop under its box
	svgNoteWrap = 22  // characters per line of a refusal note
)

// stateDescriptions says, per state, what it means to a user of the
// gateway; the page shows the current state's.
var stateDescriptions = map[fsm.State]string{
	fsm.Running:      "accepting new turns",
	fsm.Draining:     "not starting new turns; the turns in flight finish; reversible",
	fsm.ShuttingDown: "shutting down: no new turns; it stops when the turns in flight end or at the deadline",
	fsm.Stopped:      "stopped",
}

// lifecycleSVG returns the lifecycle diagram as inline SVG with current's
// box marked (class "current"). Every text in it is escaped. Each state is
// a <g class="state" data-state="..."> that the page's script re-marks.
func lifecycleSVG(current fsm.State) (template.HTML, error) {
	g, err := lifecycle()
	if err != nil {
		return "", err
	}
	return template.HTML(g.svg(current)), nil // built by svg, which escapes every text
}

// svg renders g (see lifecycleSVG).
func (g *lifecycleGraph) svg(current fsm.State) string {
	col := map[fsm.State]int{}
	for i, s := range g.states {
		col[s] = i
	}
	boxX := func(s fsm.State) int { return svgPad + svgSide + col[s]*(svgBoxW+svgGap) }

	// Heights: arcs over the row, then the row, loops, notes and arcs under.
	over, under := 0, 0
	for _, e := range g.edges {
		if d := col[e.to] - col[e.from]; d >= 2 {
			over = max(over, svgArc+(d-2)*svgArcStep+svgLine)
		} else if d <= -2 {
			under = max(under, svgArc+(-d-2)*svgArcStep+svgLine)
		}
	}
	noteLines := 0
	for _, s := range g.states {
		noteLines = max(noteLines, len(wrapWords(g.refuses[s], svgNoteWrap))+1)
	}
	boxY := svgPad + over + 8
	bottom := boxY + svgBoxH
	notesY := bottom + svgLoop + 2*svgLine + 8
	underY := notesY + noteLines*svgLine
	width := 2*svgPad + 2*svgSide + len(g.states)*svgBoxW + (len(g.states)-1)*svgGap
	height := underY + under + svgPad
	cy := boxY + svgBoxH/2

	var b strings.Builder
	e := html.EscapeString
	fmt.Fprintf(&b, `<svg class="lifecycle" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 %d %d" width="%d" height="%d" role="img" aria-labelledby="lifecycle-title">`,
		width, height, width, height)
	b.WriteString(`<title id="lifecycle-title">Lifecycle: `)
	names := make([]string, len(g.states))
	for i, s := range g.states {
		names[i] = e(string(s))
	}
	b.WriteString(strings.Join(names, ", ") + `</title>`)
	b.WriteString(`<defs><marker id="lifecycle-arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="8" markerHeight="8" orient="auto-start-reverse">` +
		`<path d="M0,0 L10,5 L0,10 z" fill="#444"/></marker></defs>`)

	// Initial and final markers.
	if g.initial != "" {
		x := boxX(g.initial)
		fmt.Fprintf(&b, `<circle class="initial" cx="%d" cy="%d" r="7" fill="#444"/>`, x-svgSide+18, cy)
		fmt.Fprintf(&b, `<path class="edge" d="M%d,%d L%d,%d" stroke="#444" fill="none" marker-end="url(#lifecycle-arrow)"/>`, x-svgSide+26, cy, x-2, cy)
	}
	for _, s := range g.final {
		x := boxX(s) + svgBoxW
		fmt.Fprintf(&b, `<path class="edge" d="M%d,%d L%d,%d" stroke="#444" fill="none" marker-end="url(#lifecycle-arrow)"/>`, x+2, cy, x+svgSide-30, cy)
		fmt.Fprintf(&b, `<circle class="final" cx="%d" cy="%d" r="9" fill="none" stroke="#444" stroke-width="1.5"/>`, x+svgSide-20, cy)
		fmt.Fprintf(&b, `<circle class="final" cx="%d" cy="%d" r="5" fill="#444"/>`, x+svgSide-20, cy)
	}

	// Edges.
	for _, ed := range g.edges {
		fx, tx := boxX(ed.from), boxX(ed.to)
		label := e(ed.event)
		switch d := col[ed.to] - col[ed.from]; {
		case ed.noop || d == 0:
			cx := fx + svgBoxW/2
			fmt.Fprintf(&b, `<path class="edge noop" d="M%d,%d C%d,%d %d,%d %d,%d" stroke="#777" stroke-dasharray="4 3" fill="none" marker-end="url(#lifecycle-arrow)"/>`,
				cx-16, bottom, cx-34, bottom+svgLoop, cx+34, bottom+svgLoop, cx+16, bottom+2)
			fmt.Fprintf(&b, `<text class="label noop" x="%d" y="%d" text-anchor="middle">%s (no-op)</text>`, cx, bottom+svgLoop+svgLine-2, label)
		case d == 1:
			y := cy - 7
			fmt.Fprintf(&b, `<path class="edge" d="M%d,%d L%d,%d" stroke="#444" fill="none" marker-end="url(#lifecycle-arrow)"/>`, fx+svgBoxW, y, tx-2, y)
			fmt.Fprintf(&b, `<text class="label" x="%d" y="%d" text-anchor="middle">%s</text>`, (fx+svgBoxW+tx)/2, y-5, label)
		case d == -1:
			y := cy + 7
			fmt.Fprintf(&b, `<path class="edge" d="M%d,%d L%d,%d" stroke="#444" fill="none" marker-end="url(#lifecycle-arrow)"/>`, fx, y, tx+svgBoxW+2, y)
			fmt.Fprintf(&b, `<text class="label" x="%d" y="%d" text-anchor="middle">%s</text>`, (fx+tx+svgBoxW)/2, y+svgLine, label)
		case d >= 2:
			x1, x2 := fx+svgBoxW*3/4, tx+svgBoxW/4
			h := svgArc + (d-2)*svgArcStep
			fmt.Fprintf(&b, `<path class="edge" d="M%d,%d Q%d,%d %d,%d" stroke="#444" fill="none" marker-end="url(#lifecycle-arrow)"/>`,
				x1, boxY, (x1+x2)/2, boxY-2*h, x2, boxY-2)
			fmt.Fprintf(&b, `<text class="label" x="%d" y="%d" text-anchor="middle">%s</text>`, (x1+x2)/2, boxY-h-5, label)
		default: // d <= -2
			x1, x2 := fx+svgBoxW/4, tx+svgBoxW*3/4
			h := svgArc + (-d-2)*svgArcStep
			fmt.Fprintf(&b, `<path class="edge" d="M%d,%d Q%d,%d %d,%d" stroke="#444" fill="none" marker-end="url(#lifecycle-arrow)"/>`,
				x1, underY-4, (x1+x2)/2, underY+2*h, x2, underY-2)
			fmt.Fprintf(&b, `<text class="label" x="%d" y="%d" text-anchor="middle">%s</text>`, (x1+x2)/2, underY+h+svgLine, label)
		}
	}

	// States, drawn last so they sit over the arrows' ends.
	for _, s := range g.states {
		x := boxX(s)
		class := "state"
		if s == current {
			class += " current"
		}
		fmt.Fprintf(&b, `<g class="%s" data-state="%s" data-description="%s">`, class, e(string(s)), e(stateDescriptions[s]))
		fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%d" height="%d" rx="10" fill="#fff" stroke="#444"/>`, x, boxY, svgBoxW, svgBoxH)
		fmt.Fprintf(&b, `<text class="name" x="%d" y="%d" text-anchor="middle" dominant-baseline="central">%s</text>`, x+svgBoxW/2, cy, e(string(s)))
		b.WriteString(`</g>`)
		if evs := g.refuses[s]; evs != "" {
			fmt.Fprintf(&b, `<text class="note" x="%d" y="%d" text-anchor="middle">`, x+svgBoxW/2, notesY)
			fmt.Fprintf(&b, `<tspan x="%d" dy="0">refuses</tspan>`, x+svgBoxW/2)
			for _, l := range wrapWords(evs, svgNoteWrap) {
				fmt.Fprintf(&b, `<tspan x="%d" dy="%d">%s</tspan>`, x+svgBoxW/2, svgLine, e(l))
			}
			b.WriteString(`</text>`)
		}
	}
	b.WriteString(`</svg>`)
	return b.String()
}

// wrapWords splits s at spaces into lines of at most n bytes (a longer
// word gets a line of its own).
func wrapWords(s string, n int) []string {
	var lines []string
	cur := ""
	for w := range strings.FieldsSeq(s) {
		switch {
		case cur == "":
			cur = w
		case len(cur)+1+len(w) <= n:
			cur += " " + w
		default:
			lines = append(lines, cur)
			cur = w
		}
	}
	if cur != "" {
		lines = append(lines, cur)
	}
	return lines
}
