// Command quiesce runs a quiesce gateway and drives it.
//
//	quiesce run         start a gateway: HTTP API, marker watcher, signals
//	quiesce drain       stop starting new turns (reversible); --wait until idle
//	quiesce cancel      cancel the drain
//	quiesce status      show the state, turns in flight and drain request
//	quiesce shutdown    start the shutdown sequence (--force: interrupt now;
//	                    --wait: until the process has exited)
//	quiesce diagram     print the lifecycle as Mermaid or DOT
//	quiesce version     the version and commit (also --version)
//	quiesce completion  a bash or zsh completion script
//	quiesce help        a command's usage
//
// Client commands talk HTTP when --url (QUIESCE_URL) is set, with the token
// from QUIESCE_TOKEN or --tokens-file, and otherwise act on the local home
// directly, writing the same drain marker the server writes; each takes
// --json.
//
// Exit codes: 0 ok, 1 error, 2 usage, 3 drain --wait or shutdown --wait
// timed out, 75 run could not write its home for a reason a restart may
// cure (disk full, quota, I/O error, read-only file system), 78 run cannot
// start as configured (tokens file, home held by another gateway, unusable
// file in the home, address unusable). status exits by state: 0 running,
// 3 draining, 4 shutting down, 5 not running, 6 unreachable, 7 starting.
//
// main only delegates to Main (ParseFlags, Run); the logic a test would
// want lives in packages server and gateway.
package main
