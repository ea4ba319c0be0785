package main

import (
	"bufio"
	"cmp"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// ---- 2. HTTP drain ----

func benchHTTPDrain(e *benchEnv, r *report) error {
	load0 := loadavg()
	gw, err := e.gateway("--agent-work", "0s")
	if err != nil {
		return err
	}
	const senders = 8
	cl := newClient(senders + 4)
	var after200, after503, before200, total int64
	var minGap time.Duration = -1
	for trial := range opt.httpTrials {
		if _, _, err := gatewayFlip(cl, gw, false, -1, 5*time.Second); err != nil {
			return err
		}
		var drainAt atomic.Int64 // unix ns the drain's 200 was read; 0 before
		var stop atomic.Bool
		var wg sync.WaitGroup
		var mu sync.Mutex
		for i := range senders {
			wg.Add(1)
			go func() {
				defer wg.Done()
				session := fmt.Sprintf("d%d-%d", trial, i)
				for !stop.Load() {
					sent := time.Now().UnixNano()
					code, err := turn(cl, gw, session, "x")
					if err != nil {
						continue
					}
					d := drainAt.Load()
					mu.Lock()
					total++
					switch {
					case d != 0 && sent > d && code == 200:
						after200++
					case d != 0 && sent > d && code == 503:
						after503++
						if g := time.Duration(sent - d); minGap < 0 || g < minGap {
							minGap = g
						}
					case code == 200:
						before200++
					}
					mu.Unlock()
				}
			}()
		}
		time.Sleep(50 * time.Millisecond)
		code, err := apiCall(cl, gw, http.MethodPost, "/api/gateway/drain", "{}", nil)
		drainAt.Store(time.Now().UnixNano())
		if err != nil || code != 200 {
			stop.Store(true)
			wg.Wait()
			return fmt.Errorf("drain: %d %v", code, err)
		}
		time.Sleep(50 * time.Millisecond)
		stop.Store(true)
		wg.Wait()
		if code, err := apiCall(cl, gw, http.MethodPost, "/api/gateway/drain", `{"action":"cancel"}`, nil); err != nil || code != 200 {
			return fmt.Errorf("cancel: %d %v", code, err)
		}
	}
	s := &section{
		title: "HTTP drain",
		intro: fmt.Sprintf("%d trials: %d clients send turns (echo agent, `--agent-work 0s`) in a loop; `POST /api/gateway/drain` "+
			"is sent while they run; a turn counts as sent after the drain when its request was started after the drain's "+
			"200 had been read. Then the drain is cancelled.", opt.httpTrials, senders),
		rows: []row{{"turns sent after the drain's 200 and accepted (200)", strconv.FormatInt(after200, 10),
			fmt.Sprintf("refused (503) after it: %d; accepted before it: %d; of %d turns", after503, before200, total),
			"—", "0", yesNo(after200 == 0)}},
		load: load0 + " → " + loadavg(),
	}
	r.add(s)
	return nil
}

// ---- 3. shutdown exit latency ----

func benchExit(e *benchEnv, r *report) error {
	load0 := loadavg()
	var dq, db, df durs
	cl := newClient(4)
	inflightTurn := func(p *proc) (time.Duration, error) {
		defer p.kill()
		got := make(chan error, 1)
		var readAt time.Time
		go func() {
			code, err := turn(cl, p, "exit", "bye")
			readAt = time.Now()
			if err == nil && code != 200 {
				err = fmt.Errorf("turn answered %d", code)
			}
			got <- err
		}()
		time.Sleep(50 * time.Millisecond) // the turn (200 ms) is in flight
		if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			return 0, err
		}
		if err := <-got; err != nil {
			return 0, fmt.Errorf("%s: %w (log %s)", p.name, err, p.log)
		}
		select {
		case <-p.done:
		case <-time.After(30 * time.Second):
			return 0, fmt.Errorf("%s did not exit", p.name)
		}
		if p.err != nil {
			return 0, fmt.Errorf("%s exit: %v", p.name, p.err)
		}
		return p.exitAt.Sub(readAt), nil
	}
	for range opt.exitTrials {
		gw, err := e.gateway("--agent-work", "200ms")
		if err != nil {
			return err
		}
		d, err := inflightTurn(gw)
		if err != nil {
			return err
		}
		dq = append(dq, d)
		bare, err := e.bare(200 * time.Millisecond)
		if err != nil {
			return err
		}
		if d, err = inflightTurn(bare); err != nil {
			return err
		}
		db = append(db, d)
		fl, err := e.start("floor", nil, "", "", "")
		if err != nil {
			return err
		}
		if err := waitLog(fl, "ready", 5*time.Second); err != nil {
			return err
		}
		t0 := time.Now()
		fl.cmd.Process.Signal(syscall.SIGTERM)
		<-fl.done
		df = append(df, fl.exitAt.Sub(t0))
		e.killAll()
	}
	s := &section{
		title: "Shutdown exit latency",
		intro: fmt.Sprintf("%d interleaved trials each: a fresh process, one turn in flight (200 ms of work: "+
			"`--agent-work 200ms`), SIGTERM 50 ms into it; measured from the moment the driver has read the whole reply "+
			"to `cmd.Wait` returning. Baseline A is `bench/bare` (the same turn; `http.Server.Shutdown` on SIGTERM); the "+
			"floor B is `bench/floor` (exits on SIGTERM; measured from `kill(2)` to `cmd.Wait`).", len(dq)),
		load: load0 + " → " + loadavg(),
	}
	for _, q := range []struct {
		n    string
		v    float64
		goal time.Duration
	}{{"p50", 0.5, 2500 * time.Microsecond}, {"p99", 0.99, 5 * time.Millisecond}} {
		v, b, f := dq.pct(q.v), db.pct(q.v), df.pct(q.v)
		s.rows = append(s.rows,
			row{"exit latency " + q.n, ms(v), "A bare net/http: " + ms(b), "quiesce/A " + ratio(float64(v), float64(b)), "—", "—"},
			row{"exit − floor " + q.n, ms(v - f), "B floor: " + ms(f), "quiesce/B " + ratio(float64(v), float64(f)),
				"≤ " + ms(q.goal), yesNo(v-f <= q.goal)},
			row{"bare − floor " + q.n + " (reference)", ms(b - f), "", "", "", ""})
	}
	s.notes = append(s.notes,
		"Baseline A is slow for a known reason: `http.Server.Shutdown` checks for idle connections on a timer that "+
			"starts at 1 ms and doubles (up to 500 ms), so after a turn that ran ~150 ms into the shutdown it notices "+
			"the idle connection up to about one doubling later. quiesce's ratio against A is therefore not a goal; "+
			"the goal is against the floor B.",
		"The trials start a fresh process each, so these figures include no warm-up effects of a long-running gateway.",
		"Between the last reply and the exit the gateway wakes its shutdown sequence (the Release that ends the last turn "+
			"wakes it, no poll), closes the notifier, stops its background goroutines, writes the final state file (one "+
			"fsync: the content's, before the rename) and closes the server. The marker watcher was stopped when the "+
			"shutdown began: the kernel takes 5-20 ms to release an inotify watch, and that now overlaps the last turns.")
	for _, q := range []struct {
		v    float64
		goal time.Duration
	}{{0.5, 2500 * time.Microsecond}, {0.99, 5 * time.Millisecond}} {
		if dq.pct(q.v)-df.pct(q.v) > q.goal {
			s.notes = append(s.notes, fmt.Sprintf("A goal is missed at p%.0f: the one fsync on the exit path is the disk's "+
				"to give, and its tail is the disk's tail (other writers on the machine, the journal's commits); what would "+
				"close it is a state file that is not fsynced at the end, which would give up its content surviving a power loss.", q.v*100))
		}
	}
	r.add(s)
	return nil
}

func waitLog(p *proc, what string, d time.Duration) error {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if b, _ := os.ReadFile(p.log); strings.Contains(string(b), what) {
			return nil
		}
		time.Sleep(time.Millisecond)
	}
	return fmt.Errorf("%s: no %q in its output", p.name, what)
}

// ---- 4. throughput ----

// The throughput, latency and idle goals of issue 17 (item 8), the
// contract for these figures since the library returned: earlier goals
// (0.95×, 1.1×, idle 1.0×) were set while hand-written twins of libraries
// carried the turn path.
const (
	tputGoal = 0.9  // quiesce's req/s at least this times bare's
	p99Goal  = 1.15 // quiesce's p99 at most this times bare's
	idleGoal = 1.1  // quiesce's idle CPU at most this times the poll loop's
)

type loadResult struct {
	n    int64
	errs int64
	lat  durs
	dur  time.Duration
}

func (l *loadResult) rate() float64 { return float64(l.n) / l.dur.Seconds() }

// load runs conc keep-alive clients (each its own session) for d.
func load(cl *http.Client, p *proc, conc int, d time.Duration, tag string) *loadResult {
	var mu sync.Mutex
	res := &loadResult{}
	var wg sync.WaitGroup
	start := time.Now()
	deadline := start.Add(d)
	for i := range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			session := fmt.Sprintf("%s-%d", tag, i)
			var lat durs
			var n, errs int64
			for time.Now().Before(deadline) {
				t0 := time.Now()
				code, err := turn(cl, p, session, "hello")
				if err != nil || code != 200 {
					errs++
					continue
				}
				lat = append(lat, time.Since(t0))
				n++
			}
			mu.Lock()
			res.n += n
			res.errs += errs
			res.lat = append(res.lat, lat...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	res.dur = time.Since(start)
	return res
}

func benchThroughput(e *benchEnv, r *report) error {
	load0 := loadavg()
	gw, err := e.gateway("--agent-work", "0s")
	if err != nil {
		return err
	}
	bare, err := e.bare(0)
	if err != nil {
		return err
	}
	s := &section{
		title: "Throughput",
		intro: fmt.Sprintf("Keep-alive clients (each its own session) send turns for %v per server per concurrency, in %d "+
			"interleaved rounds (quiesce and bare alternate, swapping who goes first), after a 300 ms warm-up each. quiesce "+
			"runs the echo agent with `--agent-work 0s`; `bench/bare` does the same work (bearer check, JSON decode of "+
			"`{\"text\"}`, JSON encode of `{\"session\",\"reply\"}`). The clients run in the driver, on the same machine.",
			opt.tputDur, opt.tputRounds),
	}
	for _, cs := range strings.Split(opt.concs, ",") {
		conc, err := strconv.Atoi(strings.TrimSpace(cs))
		if err != nil || conc < 1 {
			return fmt.Errorf("-conc %q", opt.concs)
		}
		cl := newClient(conc)
		load(cl, gw, conc, 300*time.Millisecond, "w")
		load(cl, bare, conc, 300*time.Millisecond, "w")
		q, b := &loadResult{}, &loadResult{}
		var qCPU, bCPU int64 // ns on CPU of each server process during its rounds
		round := opt.tputDur / time.Duration(opt.tputRounds)
		for i := range opt.tputRounds {
			order := []*proc{gw, bare}
			if i%2 == 1 {
				order = []*proc{bare, gw}
			}
			for _, p := range order {
				c0, err := cpuNS(p.pid())
				if err != nil {
					return err
				}
				res := load(cl, p, conc, round, fmt.Sprintf("c%d", conc))
				c1, err := cpuNS(p.pid())
				if err != nil {
					return err
				}
				dst, cpu := q, &qCPU
				if p == bare {
					dst, cpu = b, &bCPU
				}
				*cpu += c1 - c0
				dst.n += res.n
				dst.errs += res.errs
				dst.dur += res.dur
				dst.lat = append(dst.lat, res.lat...)
			}
		}
		cl.CloseIdleConnections()
		rr := q.rate() / b.rate()
		pr := float64(q.lat.pct(0.99)) / float64(b.lat.pct(0.99))
		s.rows = append(s.rows,
			row{fmt.Sprintf("req/s at concurrency %d", conc), fmt.Sprintf("%.0f", q.rate()),
				fmt.Sprintf("bare: %.0f", b.rate()), fmt.Sprintf("%.2f×", rr), fmt.Sprintf("≥ %.2g×", tputGoal), yesNo(rr >= tputGoal)},
			row{fmt.Sprintf("p99 latency at concurrency %d", conc), ms(q.lat.pct(0.99)),
				"bare: " + ms(b.lat.pct(0.99)), fmt.Sprintf("%.2f×", pr), fmt.Sprintf("≤ %.3g×", p99Goal), yesNo(pr <= p99Goal)},
		)
		qPer, bPer := float64(qCPU)/float64(max(q.n, 1)), float64(bCPU)/float64(max(b.n, 1))
		s.rows = append(s.rows, row{fmt.Sprintf("server CPU per turn at concurrency %d", conc), fmt.Sprintf("%.1f µs", qPer/1e3),
			fmt.Sprintf("bare: %.1f µs", bPer/1e3), fmt.Sprintf("%.2f×", qPer/bPer), "—", "—"})
		if rr < tputGoal || pr > p99Goal {
			s.notes = append(s.notes, fmt.Sprintf("concurrency %d misses a goal: quiesce's process spent %.2f× bare's CPU per turn "+
				"(the row above). Most of a turn's server CPU is net/http's and the kernel's: reading the request, "+
				"finishing the response and the syscalls. Besides bare's work quiesce sets the read deadlines of "+
				"ReadHeaderTimeout, ReadTimeout and IdleTimeout, adds X-Content-Type-Options, claims a session and "+
				"counts metrics; the deadlines and the header are protections, kept. The clients share the 2 CPUs with "+
				"the servers, so a round's figures move with whatever else runs: rerun on a quieter machine before "+
				"reading a gap below about 5%% as the code's.", conc, qPer/bPer))
		}
		if q.errs+b.errs > 0 {
			s.notes = append(s.notes, fmt.Sprintf("concurrency %d: %d failed turns on quiesce, %d on bare", conc, q.errs, b.errs))
		}
		s.notes = append(s.notes, fmt.Sprintf("concurrency %d: p50 quiesce %s, bare %s", conc, ms(q.lat.pct(0.5)), ms(b.lat.pct(0.5))))
	}
	s.load = load0 + " → " + loadavg()
	r.add(s)
	return nil
}

// ---- 5. memory per parked turn ----

func inflight(cl *http.Client, p *proc) (int, error) {
	if p.name == "bare" {
		resp, err := cl.Get(p.url + "/inflight")
		if err != nil {
			return 0, err
		}
		defer resp.Body.Close()
		var n int
		_, err = fmt.Fscan(resp.Body, &n)
		return n, err
	}
	var st struct {
		ActiveAgents int `json:"active_agents"`
	}
	_, err := apiCall(cl, p, http.MethodGet, "/api/gateway/status", "", &st)
	return st.ActiveAgents, err
}

// parked returns the RSS growth in KiB per turn parked in p.
func parked(p *proc, n int) (float64, int64, error) {
	ctl := newClient(2)
	// A few quick requests first, so both servers have their lazily
	// allocated state before the first sample.
	for range 3 {
		inflight(ctl, p)
	}
	time.Sleep(200 * time.Millisecond)
	rss0, err := vmRSSKiB(p.pid())
	if err != nil {
		return 0, 0, err
	}
	tr := &http.Transport{MaxIdleConnsPerHost: 1, DisableKeepAlives: true}
	cl := &http.Client{Transport: tr, Timeout: 5 * time.Minute}
	sem := make(chan struct{}, 256) // bound the connect rate
	for i := range n {
		sem <- struct{}{}
		go func() {
			go func() { time.Sleep(5 * time.Millisecond); <-sem }()
			turn(cl, p, fmt.Sprintf("m%d", i), "parked")
		}()
	}
	deadline := time.Now().Add(90 * time.Second)
	for {
		k, err := inflight(ctl, p)
		if err == nil && k >= n {
			break
		}
		if time.Now().After(deadline) {
			return 0, 0, fmt.Errorf("%s: only %d of %d turns parked", p.name, k, n)
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(500 * time.Millisecond)
	rss1, err := vmRSSKiB(p.pid())
	if err != nil {
		return 0, 0, err
	}
	p.kill() // releases the parked turns (the clients see the connection close)
	return float64(rss1-rss0) / float64(n), rss1 - rss0, nil
}

func benchMemory(e *benchEnv, r *report) error {
	load0 := loadavg()
	s := &section{
		title: "Memory per parked turn",
		intro: "N turns parked in flight at once (each client its own session and connection), echo agent with " +
			"`--agent-work 1m`; the baseline `bench/bare` sleeps 1 minute in its handler. The figure is the growth of " +
			"VmRSS (/proc/<pid>/status) from before the turns to once all N are in flight (the gateway's " +
			"`active_agents`, bare's counter), divided by N; the processes are then killed.",
	}
	for _, ns := range strings.Split(opt.parked, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(ns))
		if err != nil || n < 1 {
			return fmt.Errorf("-parked %q", opt.parked)
		}
		gw, err := e.gateway("--agent-work", "1m", "--log-level", "warn")
		if err != nil {
			return err
		}
		qPer, qTot, err := parked(gw, n)
		if err != nil {
			return err
		}
		bare, err := e.bare(time.Minute)
		if err != nil {
			return err
		}
		bPer, bTot, err := parked(bare, n)
		if err != nil {
			return err
		}
		e.killAll()
		above := qPer - bPer
		s.rows = append(s.rows, row{fmt.Sprintf("RSS per parked turn, N = %d", n),
			fmt.Sprintf("%.2f KiB (%d KiB in all)", qPer, qTot), fmt.Sprintf("bare: %.2f KiB (%d KiB)", bPer, bTot),
			fmt.Sprintf("%.2f× (+%.2f KiB)", qPer/bPer, above), "≤ +2 KiB above bare", yesNo(above <= 2)})
	}
	s.load = load0 + " → " + loadavg()
	s.notes = append(s.notes, "The memory run starts the gateway with `--log-level warn` so that the log file does "+
		"not grow with the turns; the turn path is otherwise the default one.")
	r.add(s)
	return nil
}

// ---- 6. idle CPU ----

// idleSettle is how long both programs run before the idle figure's window.
const idleSettle = 5 * time.Second

// idleGroup is several instances of one program whose CPU time is summed:
// one instance's idle CPU moves by ±15 % from window to window (when the
// runtime's sysmon and idle threads happen to wake), so the figure sums
// opt.idleProcs of each side by side.
type idleGroup struct {
	procs []*proc
	t0    []map[string]threadStat // each one's threads at the window's start
}

func (g *idleGroup) start() error {
	g.t0 = g.t0[:0]
	for _, p := range g.procs {
		ts, err := threadStats(p.pid())
		if err != nil {
			return err
		}
		g.t0 = append(g.t0, ts)
	}
	return nil
}

// idleUse is what an idleGroup used in the window: each instance's CPU
// time, their sum, and by thread rank (each instance's threads ordered by
// CPU time, the busiest first) the sum over the instances.
type idleUse struct {
	each   []int64
	sum    int64
	byRank []threadStat
}

func (g *idleGroup) used() (idleUse, error) {
	var u idleUse
	for i, p := range g.procs {
		ts, err := threadStats(p.pid())
		if err != nil {
			return u, err
		}
		var threads []threadStat
		var total int64
		for tid, t1 := range ts {
			t0 := g.t0[i][tid] // zero for a thread started in the window
			d := threadStat{t1.cpu - t0.cpu, t1.slices - t0.slices}
			threads = append(threads, d)
			total += d.cpu
		}
		slices.SortFunc(threads, func(a, b threadStat) int { return cmp.Compare(b.cpu, a.cpu) })
		for k, d := range threads {
			if k == len(u.byRank) {
				u.byRank = append(u.byRank, threadStat{})
			}
			u.byRank[k].cpu += d.cpu
			u.byRank[k].slices += d.slices
		}
		u.each = append(u.each, total)
		u.sum += total
	}
	return u, nil
}

func benchIdle(e *benchEnv, r *report) error {
	load0 := loadavg()
	n := max(opt.idleProcs, 1)
	gw, pl := &idleGroup{}, &idleGroup{}
	for range n {
		g, err := e.gateway()
		if err != nil {
			return err
		}
		p, err := e.pollLoop(false)
		if err != nil {
			return err
		}
		gw.procs, pl.procs = append(gw.procs, g), append(pl.procs, p)
	}
	// Both settle first: what a process does in its first seconds (the
	// runtime returning start-up memory, the first GC) is start-up work,
	// not what it costs to stay idle.
	time.Sleep(idleSettle)
	if err := gw.start(); err != nil {
		return err
	}
	if err := pl.start(); err != nil {
		return err
	}
	t0 := time.Now()
	time.Sleep(opt.idleDur)
	gu, err := gw.used()
	if err != nil {
		return err
	}
	pu, err := pl.used()
	if err != nil {
		return err
	}
	el := time.Since(t0)
	gEach, gSum, pEach, pSum := gu.each, gu.sum, pu.each, pu.sum
	// per10 is one instance's CPU time per 10 s, from a sum over k instances.
	per10 := func(ns int64, k int) time.Duration {
		return time.Duration(float64(ns) * float64(10*time.Second) / float64(el) / float64(k))
	}
	spread := func(each []int64) string {
		lo, hi := slices.Min(each), slices.Max(each)
		return ms(per10(lo, 1)) + " to " + ms(per10(hi, 1))
	}
	gq, pq := per10(gSum, n), per10(pSum, n)
	rt := float64(gSum) / float64(pSum)
	s := &section{
		title: "Idle CPU",
		intro: fmt.Sprintf("%d gateways (default flags, no client) and %d `bench/pollloop`s (a 1 s stat loop, no HTTP) run "+
			"side by side, after all have run %v (start-up work is not idle cost), for %v; the figure is the time on "+
			"CPU of all of each one's threads (the first field of /proc/<pid>/task/*/schedstat, summed: "+
			"/proc/<pid>/schedstat alone covers only the main thread), summed over the instances of each program, "+
			"scaled to one instance and 10 s.", n, n, idleSettle, el.Round(time.Millisecond)),
		rows: []row{
			{"CPU per 10 s idle", ms(gq), "1 s poll loop: " + ms(pq), ratio(float64(gSum), float64(pSum)), fmt.Sprintf("≤ %.2g×", idleGoal), yesNo(rt <= idleGoal)},
			{"CPU per 10 s idle (absolute)", ms(gq), "", "", "< 3 ms", yesNo(gq < 3*time.Millisecond)},
		},
		load: load0 + " → " + loadavg(),
	}
	// By thread: where the difference is (threads that did not run in
	// the window are left out).
	wakes := func(t threadStat) string {
		return fmt.Sprintf("%s, %.1f wakes/s, %.1f µs a wake", ms(per10(t.cpu, n)),
			float64(t.slices)/el.Seconds()/float64(n), float64(t.cpu)/1e3/float64(max(t.slices, 1)))
	}
	for k := range max(len(gu.byRank), len(pu.byRank)) {
		var g, p threadStat
		if k < len(gu.byRank) {
			g = gu.byRank[k]
		}
		if k < len(pu.byRank) {
			p = pu.byRank[k]
		}
		if g.slices == 0 && p.slices == 0 {
			continue
		}
		s.rows = append(s.rows, row{fmt.Sprintf("thread %d by CPU: per 10 s", k+1), wakes(g), "poll loop: " + wakes(p),
			ratio(float64(g.cpu), float64(p.cpu)), "—", "—"})
	}
	s.notes = append(s.notes, fmt.Sprintf("One instance per 10 s: gateways %s, poll loops %s. One instance's idle CPU "+
		"moves by about ±15 %% from window to window (when the runtime's sysmon and idle threads happen to wake), "+
		"hence the sum over %d of each (`-idle-procs`).", spread(gEach), spread(pEach), n))
	s.notes = append(s.notes, "What an idle gateway does each second: its marker poll wakes one goroutine, which looks "+
		"for the missing marker with one os.Lstat and reconciles without calling into looplab; fsnotify, the HTTP "+
		"server and the state writer sleep until something happens. Both run on the Go runtime's default settings: its "+
		"periodic re-read of the container's CPU limit (GOMAXPROCS follows it) is on in both.")
	if rt > idleGoal || gq >= 3*time.Millisecond {
		s.notes = append(s.notes, "A goal is missed. The thread rows show where: each program's threads ranked by "+
			"time on CPU (the busiest is the runtime's monitor thread, sysmon), summed over the instances, with the "+
			"timeslices each ran (the third field of its schedstat) as its wakes. Checked by hand on this machine, not "+
			"by this driver: neither program collects garbage while idle (`GODEBUG=gctrace=1 quiesce run` prints no "+
			"cycle in 4 min: the runtime forces one every 2 min only after a first), and both make about the same "+
			"futex and epoll_pwait calls a second once the poll loop also serves HTTP (`perf stat -e "+
			"syscalls:sys_enter_futex,syscalls:sys_enter_epoll_pwait -p PID -- sleep 40`). Taking the lock off the "+
			"no-op reconcile, or `errors.Is` off the marker read, moved the ratio by less than one run's spread, so "+
			"neither was kept.")
	}
	r.add(s)
	return nil
}

// ---- 7. flatness ----

type flatSample struct {
	files      map[string]int64
	total      int64
	rss        int64
	goroutines int
	p99        map[int]time.Duration // by sessions (concurrent keep-alive clients)
	rate       map[int]float64
}

// flatSessions are the numbers of concurrent sessions (one keep-alive
// client each) a flatness sample loads the gateway with, 1 s each.
var flatSessions = []int{1, 10, 100, 1000}

func sampleFlat(gw *proc, cl *http.Client) (*flatSample, error) {
	s := &flatSample{files: map[string]int64{}, p99: map[int]time.Duration{}, rate: map[int]float64{}}
	for _, n := range flatSessions {
		res := load(cl, gw, n, time.Second, fmt.Sprintf("f%d", n))
		if res.errs > 0 {
			return nil, fmt.Errorf("%d of %d turns failed at %d sessions", res.errs, res.n+res.errs, n)
		}
		s.p99[n], s.rate[n] = res.lat.pct(0.99), res.rate()
	}
	// The sessions' connections are closed before the counts below, so
	// they count the gateway's own goroutines and memory, not 1000 idle
	// keep-alive connections.
	cl.CloseIdleConnections()
	time.Sleep(200 * time.Millisecond)
	ents, err := os.ReadDir(gw.home)
	if err != nil {
		return nil, err
	}
	for _, en := range ents {
		if fi, err := os.Stat(filepath.Join(gw.home, en.Name())); err == nil && fi.Mode().IsRegular() {
			s.files[en.Name()] = fi.Size()
			s.total += fi.Size()
		}
	}
	if s.rss, err = vmRSSKiB(gw.pid()); err != nil {
		return nil, err
	}
	resp, err := cl.Get(gw.url + "/metrics")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "go_goroutines "); ok {
			s.goroutines, _ = strconv.Atoi(strings.TrimSpace(v))
		}
	}
	return s, nil
}

func benchFlat(e *benchEnv, r *report) error {
	if opt.flatTurns <= 0 {
		return nil
	}
	load0 := loadavg()
	gw, err := e.gateway("--agent-work", "0s")
	if err != nil {
		return err
	}
	cl := newClient(flatSessions[len(flatSessions)-1])
	load(cl, gw, 8, 300*time.Millisecond, "w")
	a, err := sampleFlat(gw, cl)
	if err != nil {
		return err
	}
	// The turns in between: 8 clients, sessions cycling, until flatTurns.
	var left atomic.Int64
	left.Store(int64(opt.flatTurns))
	var wg sync.WaitGroup
	var errs atomic.Int64
	t0 := time.Now()
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := 0; left.Add(-1) >= 0; k++ {
				if code, err := turn(cl, gw, fmt.Sprintf("flat%d-%d", i, k%100), "flat"); err != nil || code != 200 {
					errs.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	el := time.Since(t0)
	b, err := sampleFlat(gw, cl)
	if err != nil {
		return err
	}
	s := &section{
		title: fmt.Sprintf("Flatness after %d turns", opt.flatTurns),
		intro: fmt.Sprintf("One gateway (`--agent-work 0s`, default logging to a file outside the home); a sample at the "+
			"start (after a warm-up) and one after %d more turns from 8 clients over 800 sessions (%v, %d failed). Each "+
			"sample loads the gateway for 1 s at each of %v concurrent sessions (one keep-alive client each) for its "+
			"p99 and rate. The baseline is the start sample.",
			opt.flatTurns, el.Round(time.Millisecond), errs.Load(), flatSessions),
		rows: []row{
			{"home files, bytes in all", strconv.FormatInt(b.total, 10), "start: " + strconv.FormatInt(a.total, 10), ratio(float64(b.total), float64(a.total)), "flat", "—"},
			{"VmRSS", fmt.Sprintf("%d KiB", b.rss), fmt.Sprintf("start: %d KiB", a.rss), ratio(float64(b.rss), float64(a.rss)), "flat", "—"},
			{"go_goroutines", strconv.Itoa(b.goroutines), "start: " + strconv.Itoa(a.goroutines), ratio(float64(b.goroutines), float64(a.goroutines)), "flat", "—"},
		},
		load: load0 + " → " + loadavg(),
	}
	for _, n := range flatSessions {
		s.rows = append(s.rows,
			row{fmt.Sprintf("p99 at %d sessions", n), ms(b.p99[n]), "start: " + ms(a.p99[n]), ratio(float64(b.p99[n]), float64(a.p99[n])), "flat", "—"},
			row{fmt.Sprintf("req/s at %d sessions", n), fmt.Sprintf("%.0f", b.rate[n]), fmt.Sprintf("start: %.0f", a.rate[n]), ratio(b.rate[n], a.rate[n]), "flat", "—"})
	}
	all := map[string]bool{}
	for n := range a.files {
		all[n] = true
	}
	for n := range b.files {
		all[n] = true
	}
	var names []string
	for n := range all {
		sa, sb := "—", "—"
		if v, ok := a.files[n]; ok {
			sa = strconv.FormatInt(v, 10)
		}
		if v, ok := b.files[n]; ok {
			sb = strconv.FormatInt(v, 10)
		}
		names = append(names, fmt.Sprintf("`%s` %s → %s", n, sa, sb))
	}
	sort.Strings(names)
	s.notes = append(s.notes, "Files at the start → the end (bytes; — : absent, e.g. a temp file of an atomic write in progress at the sample): "+strings.Join(names, ", ")+".",
		"No number is set as the goal for flatness; met? is left for the reader.")
	r.add(s)
	return nil
}
