package main

// twinsRemoved is the report's "Twins removed" section. Its rows are
// history, not figures of this run: each was measured once, when its twin
// was removed (the removed code is not measured again), so the driver
// writes them as they are.
const twinsRemoved = `## Twins removed

Hand-written replacements of a library (DESIGN "Packages") removed because their gain was under 5 % of a
figure users feel. Each was measured once, when it was removed, with both versions in one run on this
shared 2-core machine: test binaries of the commit before and the commit after, 6 interleaved rounds of
` + "`go test -bench -benchmem -benchtime 1s`" + ` (10 rounds of 2 s for the second loopback row), compared by
benchstat (ratio after/before of the medians; "~": not significant, p > 0.05). Idle: the driver's idle
figure alone (` + "`-skip drain,http,exit,tput,mem,flat,gate`" + `), 6 runs each (4 for the first idle row), in alternating order.
The rows are history; they are not measured again.

| twin removed | figure | ratio after/before | allocations before → after |
|---|---|---|---|
| ` + "`turnContext`" + ` (gateway: a lazily derived turn context) → ` + "`context.WithCancelCause`" + ` | a turn over loopback, 8 clients, real gateway (server ` + "`BenchmarkTurnHTTP/loopback-c8/quiesce-real-gateway`" + `), time per turn | 1.09× ~ (p=0.18, ±40 %); again: 0.92× ~ (p=0.32, ±24 %) | 87.5 → 90.5 per turn (bytes 1.05×) |
| the same | the gateway alone under a cancellable request context (gateway ` + "`BenchmarkTurn/turn-request-ctx`" + `) | 1.92× (p=0.03) | 5 → 8 (bytes 208 → 576) |
| ` + "`Lexists`" + ` (internal/homefile: a raw fstatat(2) through ` + "`unsafe`" + `) → ` + "`os.Lstat`" + ` | the marker poll's no-op reconcile, once a second (gateway ` + "`BenchmarkReconcileNoop`" + `) | 1.31× (p=0.004), about 0.15 % of the idle CPU per second | 0 → 3 (bytes 0 → 320) |
| the same | idle CPU, quiesce/poll loop (with the turnContext removal; 4 runs each) | 1.18× ~ (p=0.34; 0.995 before, 1.17 after) | — |
| ` + "`//go:debug updatemaxprocs=0`" + ` (cmd/quiesce) → the runtime's default | idle CPU, quiesce/poll loop, both on default runtime settings | 1.00× ~ (1.245 before, 1.245 after; p=0.79) | — |

- The idle ratio moves between 0.9× and 1.5× from run to run on this machine (its other users' load), so an
  idle effect below that is not measurable here; the reconcile benchmark bounds the os.Lstat's cost per poll.
- Still to go back to the library in a later round: the server's hand-written JSON decoder and encoder.
`
