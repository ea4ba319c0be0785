// Package page is the status page a quiesce gateway serves at / (no token
// needed) with its script and style: the state and since when, the turns
// in flight, the spool and webhook figures, the version, and the
// lifecycle diagram drawn from fsm.Rules with the current state marked.
// With a token, its script adds the drain request, the controls, the
// turns in flight and the history, all through the HTTP API.
//
// The package only renders: package server routes Paths to a Page (GET
// and HEAD) and fills the gaps around it (JSON 404 and 405). A Page holds
// no locks or goroutines; the diagram is built once (sync.OnceValues).
package page
