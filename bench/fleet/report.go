package main

import (
	"fmt"
	"maps"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"time"
)

// markdown is the drill's report: one column per run, then each restart.
func markdown(opt options, results []*result, haproxyVersion string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d gateways behind %s, %d keep-alive clients, %d rolling restart(s) per run; agent work %v-%v per turn, %.0f %% of turns streamed, %.0f %% of requests internal events. Commit %s, %s, %d CPUs, %s.\n\n",
		opt.gateways, haproxyVersion, opt.clients, opt.rollouts, opt.workMin, opt.workMax, opt.streamShare*100, opt.eventShare*100,
		commit(), runtime.GOOS, runtime.NumCPU(), time.Now().UTC().Format("2006-01-02"))
	b.WriteString("| |")
	for _, r := range results {
		if r.mode == modeAnnounce {
			fmt.Fprintf(&b, " with announce (`drain --announce %v`) |", r.announce)
		} else {
			b.WriteString(" without announce (baseline) |")
		}
	}
	b.WriteString("\n|---|" + strings.Repeat("---|", len(results)) + "\n")
	row := func(name string, f func(*result) string) {
		b.WriteString("| " + name + " |")
		for _, r := range results {
			b.WriteString(" " + f(r) + " |")
		}
		b.WriteString("\n")
	}
	row("turns sent (streamed)", func(r *result) string { return fmt.Sprintf("%d (%d)", r.sent, r.streamed) })
	row("answered", func(r *result) string { return fmt.Sprint(r.answered) })
	row("refused (503 draining / no gateway)", func(r *result) string { return countWith(r.refused) })
	row("failed (other 5xx, connection errors, truncated streams)", func(r *result) string { return countWith(r.failed) })
	row("events sent / acknowledged (202)", func(r *result) string {
		return fmt.Sprintf("%d / %d", r.eventsSent, r.eventsAcked)
	})
	row("events run (completed by the agent)", func(r *result) string {
		if r.eventsRunTwice > 0 {
			return fmt.Sprintf("%d (%d twice)", r.eventsRun, r.eventsRunTwice)
		}
		return fmt.Sprint(r.eventsRun)
	})
	row("events lost (acknowledged, never run)", func(r *result) string { return fmt.Sprint(r.eventsLost) })
	row("turns started twice", func(r *result) string { return fmt.Sprint(r.turnsStartedTwice) })
	row("agent runs cut off by their gateway", func(r *result) string { return fmt.Sprint(r.agentCancelled) })
	row("a session's turns on two gateways at once", func(r *result) string { return fmt.Sprint(r.overlaps) })
	row("restart time per gateway: median (min-max)", func(r *result) string {
		return spread(r.restarts, func(x restart) time.Duration { return x.total })
	})
	row("balancer marked it down, from the drain's start: median (max)", func(r *result) string {
		var ds []time.Duration
		for _, x := range r.restarts {
			if x.markedDown >= 0 {
				ds = append(ds, x.markedDown)
			}
		}
		if len(ds) == 0 {
			return "-"
		}
		slices.Sort(ds)
		return fmt.Sprintf("%v (%v)", ms(ds[len(ds)/2]), ms(ds[len(ds)-1]))
	})
	row("goal: 0 refused, 0 failed, 0 lost, 0 started twice", func(r *result) string {
		switch {
		case r.err != nil:
			return "**did not complete**"
		case r.mode == modeBaseline:
			if len(r.problems()) == 0 {
				return "(baseline: refusals expected; 0 failed, 0 lost, 0 twice)"
			}
			return "**no**"
		case len(r.problems()) == 0:
			return "met"
		}
		return "**missed**"
	})
	for _, r := range results {
		fmt.Fprintf(&b, "\n%s run (%v in all), each restart (drain --wait; shutdown --wait; start until /readyz; until the balancer marks it up):\n\n", r.mode, r.took.Round(time.Second))
		b.WriteString("| rollout | gateway | drain | shutdown | ready | up | total | marked down after |\n|---|---|---|---|---|---|---|---|\n")
		for _, x := range r.restarts {
			down := "not seen"
			if x.markedDown >= 0 {
				down = ms(x.markedDown)
			}
			fmt.Fprintf(&b, "| %d | gw%d | %s | %s | %s | %s | %s | %s |\n", x.rollout, x.gateway,
				ms(x.drain), ms(x.shutdown), ms(x.ready), ms(x.up), ms(x.total), down)
		}
		for _, p := range r.problems() {
			fmt.Fprintf(&b, "\n- %s: %s", r.mode, p)
		}
		for _, e := range r.examples {
			fmt.Fprintf(&b, "\n- %s, e.g. %s", r.mode, e)
		}
		if len(r.problems())+len(r.examples) > 0 {
			b.WriteString("\n")
		}
	}
	return b.String()
}

// countWith is a total with its breakdown by kind: "12 (draining 12)".
func countWith(m map[string]int) string {
	n := sum(m)
	if n == 0 {
		return "0"
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("%s %d", k, m[k]))
	}
	return fmt.Sprintf("**%d** (%s)", n, strings.Join(parts, ", "))
}

// spread is "median (min-max)" of f over rs.
func spread(rs []restart, f func(restart) time.Duration) string {
	if len(rs) == 0 {
		return "-"
	}
	var ds []time.Duration
	for _, r := range rs {
		ds = append(ds, f(r))
	}
	slices.Sort(ds)
	return fmt.Sprintf("%s (%s-%s)", ms(ds[len(ds)/2]), ms(ds[0]), ms(ds[len(ds)-1]))
}

// ms is d in seconds with two decimals ("1.23 s").
func ms(d time.Duration) string { return fmt.Sprintf("%.2f s", d.Seconds()) }

// commit is the checkout's HEAD, marked -dirty with uncommitted changes.
func commit() string {
	out, err := exec.Command("git", "rev-parse", "--short=12", "HEAD").Output()
	if err != nil {
		return "unknown"
	}
	c := strings.TrimSpace(string(out))
	if st, err := exec.Command("git", "status", "--porcelain", "--untracked-files=no").Output(); err == nil && len(st) > 0 {
		c += "-dirty"
	}
	return c
}
