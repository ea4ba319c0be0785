// Command fleet is the load-balancer drill (make fleet, or go run
// ./bench/fleet): it builds quiesce, starts HAProxy with the checked-in
// deploy/haproxy/haproxy.cfg in front of 3 gateways (each its own home,
// an http agent that works 50-500 ms per turn), drives 32 keep-alive
// clients sending turns (some streamed) and internal events through it,
// and rolls the fleet 3 times with the documented procedure: per gateway
// "quiesce drain --announce D --wait", "quiesce shutdown --wait",
// "quiesce cancel --home" (the marker survives on one machine), start a
// new gateway on the same home and port, wait for /readyz and for the
// balancer to mark it up. The same drill then runs without --announce as
// the baseline. It prints what clients saw (turns sent, answered, refused,
// failed; events acknowledged and run; turns started twice) and the time
// each restart took, as the Markdown of docs/RELIABILITY.md's "Behind a
// load balancer", and exits 1 when the announce run misses its goal (0
// refused, 0 failed, 0 events lost, 0 turns started twice) or the
// baseline fails, loses or repeats anything.
//
// Everything runs on loopback, is bounded in time (-timeout), and every
// child (gateways, HAProxy, commands) is killed when the drill ends, on
// failure and on ctrl-C too. -short runs the small drill make test runs
// (TestFleetDrillShort).
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

func main() {
	opt := defaultOptions()
	short := flag.Bool("short", false, "the short drill of make test: 1 rollout, 12 clients (other flags still apply)")
	modes := flag.String("modes", strings.Join(opt.modes, ","), "runs, in order: announce (drain --announce D), baseline (drain without it)")
	flag.IntVar(&opt.gateways, "gateways", opt.gateways, "gateways behind the balancer")
	flag.IntVar(&opt.clients, "clients", opt.clients, "keep-alive clients sending turns and events")
	flag.IntVar(&opt.rollouts, "rollouts", opt.rollouts, "rolling restarts of the whole fleet per run")
	flag.DurationVar(&opt.announce, "announce", opt.announce, "the announce D of the announce run (at least the balancer's inter x fall)")
	flag.DurationVar(&opt.workMin, "work-min", opt.workMin, "shortest agent turn")
	flag.DurationVar(&opt.workMax, "work-max", opt.workMax, "longest agent turn")
	flag.Float64Var(&opt.streamShare, "stream-share", opt.streamShare, "share of turns sent with Accept: text/event-stream")
	flag.Float64Var(&opt.eventShare, "event-share", opt.eventShare, "share of requests that are internal events")
	flag.DurationVar(&opt.timeout, "timeout", opt.timeout, "bound on the whole drill")
	flag.StringVar(&opt.bin, "bin", "", "quiesce binary to drill (default: build ./cmd/quiesce)")
	flag.StringVar(&opt.haproxy, "haproxy", "", "haproxy binary (default: haproxy on PATH, or /usr/sbin/haproxy)")
	flag.StringVar(&opt.config, "config", "deploy/haproxy/haproxy.cfg", "the checked-in HAProxy configuration the drill runs")
	flag.BoolVar(&opt.keep, "keep", false, "keep each run's temp dir (homes, logs, haproxy.cfg)")
	flag.Parse()
	if *short {
		s := shortOptions()
		opt.clients, opt.rollouts, opt.warmup, opt.timeout = s.clients, s.rollouts, s.warmup, s.timeout
	}
	opt.modes = strings.Split(*modes, ",")
	if err := opt.validate(); err != nil {
		fmt.Fprintln(os.Stderr, "fleet:", err)
		os.Exit(2)
	}
	log.SetFlags(log.Ltime | log.Lmicroseconds)
	log.SetPrefix("fleet: ")

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	results, version, err := run(ctx, opt)
	if err != nil {
		stop()
		log.Fatal(err)
	}
	fmt.Print(markdown(opt, results, version))
	for _, r := range results {
		if len(r.problems()) > 0 {
			stop()
			os.Exit(1)
		}
	}
}

// validate rejects settings the drill cannot run with.
func (o options) validate() error {
	switch {
	case o.gateways < 2:
		return fmt.Errorf("-gateways %d: a rolling restart needs at least 2", o.gateways)
	case o.clients < 1 || o.rollouts < 1:
		return fmt.Errorf("-clients and -rollouts must be at least 1")
	case o.workMin <= 0 || o.workMax < o.workMin:
		return fmt.Errorf("-work-min %v, -work-max %v: want 0 < min <= max", o.workMin, o.workMax)
	case o.announce <= 0:
		return fmt.Errorf("-announce %v: want a positive duration", o.announce)
	}
	for _, m := range o.modes {
		if m != modeAnnounce && m != modeBaseline {
			return fmt.Errorf("-modes: unknown run %q (want announce, baseline)", m)
		}
	}
	return nil
}
