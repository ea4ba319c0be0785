// Package client is the Go client of quiesce's HTTP API, for the quiesce
// CLI, embedders and tests: drain, cancel, status (and waiting for idle),
// turns in flight, history, shutdown, event replay, health and one turn.
//
// It speaks the wire types of package api and never imports server, so a
// program that only controls a gateway does not link the HTTP server. A
// Client holds no state of its own beyond its configuration (no locks,
// no goroutines); it is safe for concurrent use as far as its
// *http.Client is.
package client
