package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/quiesce-dev/quiesce/api"
	"github.com/quiesce-dev/quiesce/client"
	"github.com/quiesce-dev/quiesce/fsm"
	"github.com/quiesce-dev/quiesce/gateway"
	"github.com/quiesce-dev/quiesce/server"
)

const (
	// requestTimeout bounds each HTTP call of a client command (a
	// long-poll gets its own wait on top).
	requestTimeout = 10 * time.Second
	// progressInterval is how long one wait of drain --wait lasts before
	// the progress line is refreshed; the wait ends sooner, at once, when
	// the gateway becomes idle.
	progressInterval = time.Second
	// localPollInterval is how often the local home's state file is read
	// while waiting: the home has no server to long-poll.
	localPollInterval = 250 * time.Millisecond
	// exitPollInterval is how often shutdown --wait checks whether the
	// gateway has exited (its port refuses, its home lock is free).
	exitPollInterval = 100 * time.Millisecond
	// localAckTimeout bounds how long a local drain or cancel waits for a
	// live gateway to show it in its state file (its watcher reacts to
	// the marker at once through fsnotify, or at its next poll).
	localAckTimeout = 3 * time.Second
	// signalSettleTimeout bounds how long local shutdown --force waits
	// for its SIGTERM to show in the state file before the SIGINT (sent
	// together, they may arrive in either order).
	signalSettleTimeout = 5 * time.Second
)

// control is what a client command acts on. Each command is one straight
// function over it; whether that means HTTP or the local home is decided
// once, by target.control.
type control interface {
	// Drain requests a drain.
	Drain(ctx context.Context, req gateway.DrainRequest) (drainResult, error)
	// Cancel cancels the drain (only the one named by a non-empty
	// requestID).
	Cancel(ctx context.Context, requestID string) (cancelResult, error)
	// Status returns the gateway's status.
	Status(ctx context.Context) (api.Status, error)
	// Turns returns the turns in flight (HTTP only: the home does not
	// record them).
	Turns(ctx context.Context) ([]api.TurnInfo, error)
	// Describe returns the status as the status command shows it: for a
	// local home, with how it was learned.
	Describe(ctx context.Context) (statusView, error)
	// WaitIdle returns as soon as no turn is in flight, or after within
	// with idle false; st is the status at that moment.
	WaitIdle(ctx context.Context, within time.Duration) (st api.Status, idle bool, err error)
	// Shutdown starts the shutdown sequence (force: interrupt now).
	Shutdown(ctx context.Context, force bool) (shutdownResult, error)
	// WaitExited returns nil once the gateway process has exited; ctx
	// bounds the wait.
	WaitExited(ctx context.Context) error
	// ReplayEvents moves the rejected internal events back into the
	// spool.
	ReplayEvents(ctx context.Context) (replayResult, error)
}

// drainResult is the API's drain answer; a local drain adds the home and
// whether a live gateway holds it.
type drainResult struct {
	api.DrainResponse
	localInfo
}

// cancelResult is the API's cancel answer, plus the same for a local one.
type cancelResult struct {
	api.CancelResponse
	localInfo
}

// localInfo is what a local drain or cancel adds to the API's answer, for
// the text output: --json prints the API's fields only, whichever way the
// command went.
type localInfo struct {
	Home string `json:"-"`
	// Live is nil over HTTP; locally it tells whether a gateway holds the
	// home's lock (its state is current), and State is "" when no gateway
	// ever ran there.
	Live *bool `json:"-"`
}

// statusView is what the status command shows: the API's status, and for
// a local home what LocalStatus found and where the state came from.
type statusView struct {
	api.Status
	local *localStatus
}

// MarshalJSON prints the API's fields, then the local ones, flat.
func (v statusView) MarshalJSON() ([]byte, error) {
	if v.local == nil {
		return json.Marshal(v.Status)
	}
	return json.Marshal(struct {
		api.Status
		*localStatus
	}{v.Status, v.local})
}

// localStatus is what local status adds to the API's status.
type localStatus struct {
	Home string `json:"home"`
	// Condition is gateway.HomeRunning ("live"), HomeStarting or
	// HomeNotRunning.
	Condition string `json:"condition"`
	// Source is where state, turns and uptime come from: "gateway" (asked
	// over loopback) or "state_file".
	Source string `json:"source,omitempty"`
	// Stale says why a live gateway's state comes from its state file.
	Stale string `json:"stale,omitempty"`
	// LastState and LastSeen are a not-running gateway's last recorded
	// state and when it wrote it.
	LastState fsm.State `json:"last_state,omitempty"`
	LastSeen  time.Time `json:"last_seen,omitzero"`
	// MarkerProblem says why the drain marker is contentless.
	MarkerProblem string `json:"marker_problem,omitempty"`
}

// errNotRunning is wrapped when a command finds no gateway to act on: no
// process holds the home's lock, or nothing listens at --url.
var errNotRunning = errors.New("the gateway is not running")

// shutdownResult is the API's shutdown answer; a local shutdown, which
// signals the process instead, adds the pid and the signals it sent.
type shutdownResult struct {
	api.ShutdownResponse
	PID     int      `json:"pid,omitempty"`
	Signals []string `json:"signals,omitempty"`
}

// target is where a client command acts: the HTTP API at url, or the
// gateway home on this machine.
type target struct {
	home      string
	url       string
	tokenFile string
	procRoot  string
	json      bool
}

func (t *target) register(fs *flagSet) {
	fs.StringVar(&t.home, "home", defaultHome, "gateway home (used when --url is not set, and for the default --tokens-file)")
	fs.StringVar(&t.url, "url", "", "gateway API base URL, e.g. http://127.0.0.1:8470 (default: act on --home directly)")
	fs.StringVar(&t.tokenFile, "tokens-file", "", "file with the bearer token: the gateway's tokens file (\"principal token\" lines: the first token is sent) or a bare token (default $home/tokens); QUIESCE_TOKEN wins")
	fs.alias("token-file", "tokens-file")
	fs.StringVar(&t.procRoot, "proc-root", gateway.DefaultProcRoot, "proc file system root for the instance epoch")
	fs.BoolVar(&t.json, "json", false, "print the API's JSON instead of text")
	fs.withEnv("home", "url", "tokens-file", "proc-root")
}

// defaultHome is --home's default.
const defaultHome = "./.quiesce"

// flags returns the command-line flags that select this target, as a
// suffix for a command to print (" --url http://..." or " --home DIR";
// "" for the defaults), so the printed command acts on the same gateway.
func (t *target) flags() string {
	var b strings.Builder
	switch {
	case t.url != "":
		fmt.Fprintf(&b, " --url %s", shellQuote(t.url))
		if t.tokenFile != "" {
			fmt.Fprintf(&b, " --tokens-file %s", shellQuote(t.tokenFile))
		} else if t.home != defaultHome {
			fmt.Fprintf(&b, " --home %s", shellQuote(t.home))
		}
	case t.home != defaultHome:
		fmt.Fprintf(&b, " --home %s", shellQuote(t.home))
	}
	return b.String()
}

// shellQuote quotes s for a POSIX shell when it needs it.
func shellQuote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./:=@%+,", r))
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// control resolves the target: the HTTP API when --url is set (the token
// from QUIESCE_TOKEN, else the token file), else the local home.
func (t *target) control(m *Main) (control, error) {
	if t.url == "" {
		return &localControl{home: t.home, procRoot: t.procRoot}, nil
	}
	token, source := m.Getenv(tokenEnv), tokenEnv
	if token == "" {
		path := t.tokenFile
		if path == "" {
			path = filepath.Join(t.home, "tokens")
		}
		source = "the token file " + path
		var err error
		if token, err = server.ReadClientToken(path); err != nil {
			return nil, fmt.Errorf("no token to call %s with: set QUIESCE_TOKEN, or point --tokens-file (QUIESCE_TOKENS_FILE) at a file holding it: %w",
				t.url, err)
		}
	}
	c, err := client.New(t.url, token, nil)
	if err != nil {
		return nil, usagef("--url (QUIESCE_URL): %s", plain(err))
	}
	return &httpControl{c: c, tokenSource: source}, nil
}
