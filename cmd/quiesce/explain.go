package main

import (
	"strings"

	"github.com/quiesce-dev/quiesce/marker"
)

// hintError is an error whose message is written for the user: what
// happened and what to do. err, if set, is the cause (for errors.Is).
type hintError struct {
	msg string
	err error
}

// Error implements error.
func (e *hintError) Error() string { return e.msg }

// Unwrap returns the cause.
func (e *hintError) Unwrap() error { return e.err }

// shuttingDownHint explains a drain or cancel refused because the
// gateway is shutting down (the API's 409 shutting_down).
const shuttingDownHint = "the gateway is shutting down, and shutdown wins: drain and cancel change nothing now " +
	"(the marker was left as it was). Wait for it to exit ('quiesce shutdown --wait'), then start it again; " +
	"a drain requested after that start applies to the new gateway"

// packagePrefixes are the prefixes this module's packages put on their
// errors; plain removes them from what the user reads.
var packagePrefixes = []string{"gateway: ", "marker: ", "server: ", "client: ", "notify: ", "homefile: ", "fsm: "}

// plain returns err's message without the package prefixes the layers
// below stacked on it ("gateway: drain: marker: lock: ..." reads "drain:
// lock: ..."): the user wants what went wrong, not the call path.
func plain(err error) string {
	if err == nil {
		return ""
	}
	return stripPrefixes(err.Error())
}

func stripPrefixes(s string) string {
	for changed := true; changed; {
		changed = false
		for _, p := range packagePrefixes {
			if strings.HasPrefix(s, p) {
				s, changed = s[len(p):], true
			}
			if i := strings.Index(s, ": "+p); i >= 0 {
				s, changed = s[:i+2]+s[i+2+len(p):], true
			}
		}
	}
	return s
}

// markerDetail returns what an unusable-marker error says about the path
// ("/home/q/.drain_request.json is a FIFO"), without the sentinels above
// it.
func markerDetail(err error) string {
	s := err.Error()
	if i := strings.LastIndex(s, marker.ErrUnusable.Error()+": "); i >= 0 {
		return stripPrefixes(s[i+len(marker.ErrUnusable.Error())+2:])
	}
	return plain(err)
}
