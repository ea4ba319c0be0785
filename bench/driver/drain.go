package main

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"sync"
	"time"
)

// drainTrial writes the marker by atomic rename at a random phase and
// returns the time from the rename to /readyz answering 503. gap is the
// pause between /readyz polls (0: a tight loop).
func drainTrial(c *http.Client, p *proc, phase, gap time.Duration) (time.Duration, error) {
	// Running, marker absent.
	os.Remove(markerPath(p.home))
	if err := waitCode(c, p, 200, gap, 5*time.Second); err != nil {
		return 0, fmt.Errorf("resume: %w", err)
	}
	time.Sleep(rand.N(phase))
	tmp, err := writeMarkerTemp(p.home)
	if err != nil {
		return 0, err
	}
	t0 := time.Now()
	if err := os.Rename(tmp, markerPath(p.home)); err != nil {
		return 0, err
	}
	deadline := t0.Add(5 * time.Second)
	for {
		code, err := readyz(c, p)
		if err == nil && code == 503 {
			return time.Since(t0), nil
		}
		if time.Now().After(deadline) {
			return 0, errors.New("no 503 within 5s of the rename")
		}
		if gap > 0 {
			time.Sleep(gap)
		}
	}
}

func waitCode(c *http.Client, p *proc, want int, gap, d time.Duration) error {
	deadline := time.Now().Add(d)
	for {
		code, err := readyz(c, p)
		if err == nil && code == want {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("/readyz not %d after %v (last %d, %v)", want, d, code, err)
		}
		if gap > 0 {
			time.Sleep(gap)
		} else {
			time.Sleep(200 * time.Microsecond)
		}
	}
}

func benchDrain(e *benchEnv, r *report) error {
	load0 := loadavg()
	a, err := e.gateway("--agent-work", "0s")
	if err != nil {
		return err
	}
	b, err := e.gateway("--agent-work", "0s", "--watch-interval", "1s")
	if err != nil {
		return err
	}
	// Two poll loops share the baseline's trials: each trial of a 1 s poll
	// loop needs two ticks (drain, then resume), so two instances halve the
	// wall time. Their /readyz is polled every pollGap, not in a tight loop,
	// so they load the CPU the gateway modes are measured on as little as
	// possible; pollGap is the resolution of (c).
	const pollGap = time.Millisecond
	var pls []*proc
	for range 2 {
		pl, err := e.pollLoop(true)
		if err != nil {
			return err
		}
		pls = append(pls, pl)
	}
	var mu sync.Mutex
	var c durs
	var cErr error
	var wg sync.WaitGroup
	for i, pl := range pls {
		n := opt.pollTrials / len(pls)
		if i == 0 {
			n += opt.pollTrials % len(pls)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			cl := newClient(2)
			for range n {
				d, err := drainTrial(cl, pl, time.Second, pollGap)
				mu.Lock()
				if err != nil {
					cErr = err
				} else {
					c = append(c, d)
				}
				mu.Unlock()
				if err != nil {
					return
				}
			}
		}()
	}
	var da, db durs
	cl := newClient(2)
	var rtt durs
	for range 500 {
		t0 := time.Now()
		if _, err := readyz(cl, a); err != nil {
			return err
		}
		rtt = append(rtt, time.Since(t0))
	}
	for range opt.drainTrials {
		d, err := drainTrial(cl, a, time.Second, 0)
		if err != nil {
			return fmt.Errorf("(a): %w", err)
		}
		da = append(da, d)
		d, err = drainTrial(cl, b, time.Second, 0)
		if err != nil {
			return fmt.Errorf("(b): %w", err)
		}
		db = append(db, d)
	}
	wg.Wait()
	if cErr != nil {
		return fmt.Errorf("(c): %w", cErr)
	}
	const goal = time.Millisecond
	s := &section{
		title: "Drain reaction (marker written by another process)",
		intro: fmt.Sprintf("The driver (a separate process) writes the marker to a temp file, then renames it over "+
			"`.drain_request.json` at a random phase (uniform in 0–1 s after the gateway was seen running again), "+
			"and measures from just before the `rename(2)` to the first `/readyz` that answers 503 (polled in a tight "+
			"keep-alive loop). Cancel is removing the file. Trials: %d for (a) and (b), interleaved, and %d for (c), "+
			"run at the same time on two instances of the poll loop.", len(da), len(c)),
		load: load0 + " → " + loadavg(),
	}
	for _, x := range []struct {
		name string
		d    durs
		tag  string
	}{{"(a) quiesce default (fsnotify + 1 s poll)", da, "(a)"}, {"(b) quiesce `--watch-interval 1s` (fsnotify cannot be disabled)", db, "(b)"}} {
		for _, q := range []struct {
			n string
			v float64
		}{{"p50", 0.5}, {"p99", 0.99}} {
			v, base := x.d.pct(q.v), c.pct(q.v)
			g, met := "—", "—"
			if q.n == "p99" {
				g, met = "≤ 1 ms", yesNo(v <= goal)
			}
			s.rows = append(s.rows, row{x.name + " " + q.n, ms(v), "(c) 1 s poll loop: " + ms(base),
				"(c)/" + x.tag + " " + ratio(float64(base), float64(v)), g, met})
		}
	}
	s.rows = append(s.rows, row{"(a) max", ms(da.pct(1)), "(c) max: " + ms(c.pct(1)), "", "", ""},
		row{"measurement floor: one `/readyz` round trip, p50 / p99", ms(rtt.pct(0.5)) + " / " + ms(rtt.pct(0.99)), "", "", "", ""})
	s.notes = append(s.notes,
		"quiesce has no flag that turns fsnotify off, so (b) cannot measure the poll path alone: it is the same "+
			"binary with the poll interval set explicitly to 1 s, and its figures are fsnotify's again. The poll "+
			"path's own reaction is bounded by `--watch-interval` and behaves like (c).",
		fmt.Sprintf("(c) is `bench/pollloop`: it stats the marker every second and flips a flag that its `/readyz` "+
			"reports; it is polled every %v (its resolution), and its reaction is uniform over the tick, so its p50 is "+
			"about 500 ms and its p99 about 990 ms.", pollGap),
		"The reaction includes one `/readyz` round trip (the measurement floor row). The tail is not broken down "+
			"further: it includes the gateway's scheduling delay on a machine whose load average (above) was "+
			"whatever the other users of the machine made it, and it was not measured on an idle machine.")
	r.add(s)
	return nil
}
