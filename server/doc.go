// Package server is the HTTP face of a quiesce gateway: the control API
// (drain, cancel, status, shutdown; the turns in flight and the lifecycle
// history to read), the turn and internal-event routes, the
// health, readiness and Prometheus endpoints, and bearer-token
// authentication. Its JSON bodies are the wire types of package api; the Go
// client of the API is package client.
//
// The package wraps net/http and github.com/gorilla/mux so that cmd/quiesce
// never touches either. It fills two gaps mux leaves open: a method mismatch
// answers 405 with a JSON body and an Allow header (mux sends a bare 405),
// and every GET route also answers HEAD (mux does not imply it). A path with
// a dot segment ("." or "..", also percent-encoded) or "//" is a JSON 404,
// never mux's redirect to the cleaned path.
//
// The server talks to the runtime only through the small Gateway interface
// declared here; it never touches the lifecycle state machine itself.
// Every error is JSON {"error": "<code>", "message": "..."} with a fixed
// code per status (see Error); an internal error is logged and never echoed.
// A request that fails validation changes nothing: the body is decoded and
// checked completely before the gateway is called. Request bodies are
// strict JSON: one object, keys exactly the documented field names (no
// case folding, no key twice), values of the documented types.
//
// Timeouts: a request must arrive within ReadHeaderTimeout (headers) and
// Config.ReadTimeout (headers and body), so a slow client cannot pin a
// connection; there is deliberately no write timeout, because a turn's
// response takes as long as the turn (see New).
package server
