// Command driver is quiesce's end-to-end performance harness (make bench,
// or go run ./bench/driver). It builds the real binary and the baselines in
// bench/ into a temp dir, runs them on loopback, measures every figure as a
// ratio against a baseline measured in the same run, and prints the report
// (docs/PERFORMANCE.md's text); -out writes it to a file (make bench
// UPDATE=1 gives -out docs/PERFORMANCE.md). Its one test runs the shutdown
// at scale figure at a small scale; the figures themselves run only here.
package main

import (
	"flag"
	"fmt"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

type options struct {
	out           string
	drainTrials   int
	pollTrials    int
	pollInstances int
	httpTrials    int
	exitTrials    int
	tputDur       time.Duration
	tputRounds    int
	concs         string
	parked        string
	idleDur       time.Duration
	idleProcs     int
	flatTurns     int
	skip          string
	keep          bool
	tree          bool
}

var opt options

func main() {
	flag.StringVar(&opt.out, "out", "", "where to write the report, e.g. docs/PERFORMANCE.md (make bench UPDATE=1 does); empty: stdout only")
	flag.IntVar(&opt.drainTrials, "drain-trials", 200, "marker drain reaction trials for the default gateway (a)")
	flag.IntVar(&opt.pollTrials, "poll-trials", 200, "marker drain reaction trials for the poll-only gateway (b) and for the 1 s poll loop (c) each; each takes up to 2 ticks; (b) and (c) run side by side, before (a)")
	flag.IntVar(&opt.pollInstances, "poll-instances", 4, "instances of (b) and of (c) that share their trials")
	flag.IntVar(&opt.httpTrials, "http-trials", 20, "HTTP drain trials")
	flag.IntVar(&opt.exitTrials, "exit-trials", 100, "shutdown exit latency trials per program (at least 100, so that p99 is not just the worst trial)")
	flag.DurationVar(&opt.tputDur, "tput-duration", 3*time.Second, "throughput: measuring time per server per concurrency")
	flag.IntVar(&opt.tputRounds, "tput-rounds", 6, "throughput: the duration is split into this many interleaved A/B rounds")
	flag.StringVar(&opt.concs, "conc", "1,8,64", "throughput concurrencies")
	flag.StringVar(&opt.parked, "parked", "2000,10000", "memory: numbers of parked turns, comma separated (e.g. 2000,10000)")
	flag.DurationVar(&opt.idleDur, "idle", 2*time.Minute, "idle CPU: measuring time (2 min: each program meets about one of the runtime's forced GCs, every 2 min)")
	flag.IntVar(&opt.idleProcs, "idle-procs", 3, "idle CPU: instances of the gateway and of the poll loop run side by side, their CPU time summed")
	flag.IntVar(&opt.flatTurns, "flat-turns", 100000, "flatness: turns run between the start and end samples (0: skip)")
	flag.StringVar(&opt.skip, "skip", "", "figures to skip, comma separated: drain,http,exit,tput,mem,idle,flat,gate,scale")
	flag.BoolVar(&opt.keep, "keep", false, "keep the temp dir (binaries, homes, logs)")
	flag.BoolVar(&opt.tree, "tree", false, "build quiesce from the working tree (default: from a clean export of HEAD, so the report names exactly what was measured)")
	flag.Parse()
	log.SetFlags(log.Ltime | log.Lmicroseconds)
	log.SetPrefix("bench: ")

	start := time.Now()
	tmp, err := os.MkdirTemp("", "quiesce-bench-")
	if err != nil {
		log.Fatal(err)
	}
	if !opt.keep {
		defer os.RemoveAll(tmp)
	} else {
		log.Printf("temp dir %s", tmp)
	}
	env := &benchEnv{dir: tmp}
	if err := env.build(); err != nil {
		log.Fatal(err)
	}
	rep := &report{start: start, cmdline: "go run ./bench/driver " + strings.Join(os.Args[1:], " ")}
	skip := map[string]bool{}
	for _, s := range strings.Split(opt.skip, ",") {
		skip[strings.TrimSpace(s)] = true
	}
	type fig struct {
		name string
		run  func(*benchEnv, *report) error
	}
	for _, f := range []fig{
		{"drain", benchDrain}, {"http", benchHTTPDrain}, {"exit", benchExit}, {"tput", benchThroughput},
		{"mem", benchMemory}, {"idle", benchIdle}, {"flat", benchFlat}, {"gate", benchGate},
		{"scale", benchShutdownScale},
	} {
		if skip[f.name] {
			continue
		}
		log.Printf("figure %s", f.name)
		t0 := time.Now()
		if err := f.run(env, rep); err != nil {
			log.Printf("figure %s failed: %v", f.name, err)
			rep.failed(f.name, err)
		}
		log.Printf("figure %s done in %v", f.name, time.Since(t0).Round(time.Millisecond))
		env.killAll()
	}
	env.killAll()
	md := rep.markdown()
	fmt.Println(md)
	if opt.out != "" {
		if err := os.WriteFile(opt.out, []byte(md), 0o644); err != nil {
			log.Fatal(err)
		}
		log.Printf("wrote %s in %v", opt.out, time.Since(start).Round(time.Second))
	}
}

type benchEnv struct {
	dir   string
	src   string // the quiesce source measured (the tree, or a clean export of HEAD)
	bins  map[string]string
	procs []*proc
	n     int
}

func (e *benchEnv) build() error {
	e.bins = map[string]string{}
	quiesceSrc := "."
	if !opt.tree {
		// A clean export of HEAD: uncommitted edits in the tree (other
		// work in progress) are not measured under HEAD's name.
		quiesceSrc = filepath.Join(e.dir, "src")
		tar := filepath.Join(e.dir, "src.tar")
		if out, err := exec.Command("git", "archive", "-o", tar, "HEAD").CombinedOutput(); err != nil {
			return fmt.Errorf("git archive HEAD: %v: %s", err, out)
		}
		if err := os.MkdirAll(quiesceSrc, 0o755); err != nil {
			return err
		}
		if out, err := exec.Command("tar", "-xf", tar, "-C", quiesceSrc).CombinedOutput(); err != nil {
			return fmt.Errorf("tar: %v: %s", err, out)
		}
	}
	e.src = quiesceSrc
	for name, pkg := range map[string]string{
		"quiesce": "./cmd/quiesce", "bare": "./bench/bare", "pollloop": "./bench/pollloop", "floor": "./bench/floor",
	} {
		out := filepath.Join(e.dir, name)
		cmd := exec.Command("go", "build", "-o", out, pkg)
		if name == "quiesce" {
			cmd.Dir = quiesceSrc
		}
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("go build %s: %w", pkg, err)
		}
		e.bins[name] = out
	}
	return nil
}
