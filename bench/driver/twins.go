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
| the turn route's hand-written matcher (` + "`isMessagePath`" + `) and ` + "`Router.Match`" + ` with a pooled ` + "`RouteMatch`" + ` (server) → a mux template route served by ` + "`Router.ServeHTTP`" + `, the id from ` + "`mux.Vars`" + ` | a turn over loopback, 8 clients (server ` + "`BenchmarkTurnHTTP/loopback-c8`" + `, 10 rounds of 2 s), time per turn | real gateway 1.45× ~ (p=0.28, ±134 %); fake gateway 1.25× ~ (p=0.25, ±130 %) | 90 → 99 per turn (bytes 7.3 → 8.4 KiB) |
| the same | the server alone, no network (server ` + "`BenchmarkTurnHTTP/direct/quiesce-server`" + `): mux clones the request twice to put the route and its vars in its context | 2.42× (p=0.002; 1.55 → 3.74 µs, about 4 % of a loopback turn) | 5 → 13 (bytes 112 → 1264) |
| the strict JSON codec (server: ` + "`decodeFast`" + `, ` + "`plainMessage`" + `, pooled body buffers, a field-by-field streaming decoder; ` + "`appendMessage`" + `) → ` + "`encoding/json`" + `: a ` + "`json.Decoder`" + ` token pre-pass (exact names, no duplicate, nothing after the object), then ` + "`json.Unmarshal`" + `; the reply by ` + "`json.Encoder`" + ` | a turn over loopback, 8 clients (as above, after the mux change) | real gateway 1.04× ~ (p=0.97; 1.50× ~ p=0.28 against both twins); fake gateway 1.18× ~ (p=0.97) | 99 → 124.5 per turn (bytes 8.4 → 10.4 KiB) |
| the same | the server alone, no network (as above, after the mux change) | 2.12× (p=0.004; 3.74 → 7.94 µs, about 8 % of a loopback turn) | 13 → 38 (bytes 1264 → 3241) |

- The idle ratio moves between 0.9× and 1.5× from run to run on this machine (its other users' load), so an
  idle effect below that is not measurable here; the reconcile benchmark bounds the os.Lstat's cost per poll.
- The server rows (routing, JSON) were measured in one run: three test binaries (before both, after the mux change, after the JSON change), interleaved; loopback 10 rounds of 2 s, direct 6 rounds of 1 s. The loopback figures moved by ±50-130 % between rounds on this shared machine, so no loopback ratio is significant; the direct figures bound the cost: together about 6.4 µs and 33 allocations more per turn, about 12 % of a loopback turn of ~50 µs here (the client runs on the same 2 CPUs), and nothing next to an agent that takes milliseconds or seconds.


### The library, used as designed

After the twins went, two changes brought the turn path below bare net/http's allocations without a
twin: request bodies are decoded by the JSON v2 library (` + "`github.com/go-json-experiment/json`" + `: exact names,
duplicate names and data after the object refused by default, unknown names by ` + "`RejectUnknownMembers`" + `)
instead of an ` + "`encoding/json`" + ` token pre-pass and a second decode; and the router's ` + "`Match`" + ` chooses
the route while its variables reach the handler as net/http path values (` + "`r.SetPathValue`" + `, read with
` + "`r.PathValue`" + `) instead of ` + "`Router.ServeHTTP`" + `'s two request clones for ` + "`mux.Vars`" + ` and
` + "`CurrentRoute`" + `, which nothing read. Every route is still matched by gorilla/mux, with its gaps filled.
Measured once, test binaries of the commit before (f526eea) and after, 6 interleaved rounds of 1 s, benchstat;
memory: the driver's memory figure alone, 2 runs each.

| change | figure | after/before | allocations before → after |
|---|---|---|---|
| both | the server alone, no network (server ` + "`BenchmarkTurnHTTP/direct/quiesce-server`" + `) | 0.36× (p=0.002; 13.2 → 4.7 µs; bare 4.2 µs) | 38 → 12 (bytes 3.17 → 1.11 KiB; bare 15, 1.20 KiB) |
| both | the same with the real gateway (` + "`.../quiesce-real-gateway`" + `) | 0.51× (p=0.009; 12.2 → 6.2 µs) | 41 → 15 (bytes 3.27 → 1.22 KiB) |
| JSON v2 | RSS per parked turn above bare, N = 2000 / 10000 | +2.68 / +2.45 KiB (docs run of 5514e3f) → +1.47, +2.19 / +1.28, +1.61 KiB | — |
| then Match | the same | → +1.34, +1.16 / +1.50, +0.89 KiB | — |
`
