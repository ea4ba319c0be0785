package main

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

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
	Status(ctx context.Context) (gateway.Status, error)
	// WaitIdle returns as soon as no turn is in flight, or after within
	// with idle false; st is the status at that moment.
	WaitIdle(ctx context.Context, within time.Duration) (st gateway.Status, idle bool, err error)
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
	server.DrainResponse
	localInfo
}

// cancelResult is the API's cancel answer, plus the same for a local one.
type cancelResult struct {
	server.CancelResponse
	localInfo
}

// localInfo is what a local drain or cancel adds to the API's answer.
type localInfo struct {
	Home string `json:"home,omitempty"`
	// Live is nil over HTTP; locally it tells whether a gateway holds the
	// home's lock (its state is current), and State is "" when no gateway
	// ever ran there.
	Live *bool `json:"live,omitempty"`
}

// shutdownResult is the API's shutdown answer; a local shutdown, which
// signals the process instead, adds the pid and the signals it sent.
type shutdownResult struct {
	server.ShutdownResponse
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
	fs.StringVar(&t.home, "home", "./.quiesce", "gateway home (used when --url is not set, and for the default --token-file)")
	fs.StringVar(&t.url, "url", "", "gateway API base URL, e.g. http://127.0.0.1:8470 (default: act on --home directly)")
	fs.StringVar(&t.tokenFile, "token-file", "", "file with the bearer token (a bare token or \"principal token\" lines; default $home/tokens); QUIESCE_TOKEN wins")
	fs.StringVar(&t.procRoot, "proc-root", gateway.DefaultProcRoot, "proc file system root for the instance epoch")
	fs.BoolVar(&t.json, "json", false, "print the API's JSON instead of text")
	fs.withEnv("home", "url", "token-file", "proc-root")
}

// control resolves the target: the HTTP API when --url is set (the token
// from QUIESCE_TOKEN, else the token file), else the local home.
func (t *target) control(m *Main) (control, error) {
	if t.url == "" {
		return &localControl{home: t.home, procRoot: t.procRoot}, nil
	}
	token, source := m.Getenv("QUIESCE_TOKEN"), "QUIESCE_TOKEN"
	if token == "" {
		path := t.tokenFile
		if path == "" {
			path = filepath.Join(t.home, "tokens")
		}
		source = "the token file " + path
		var err error
		if token, err = server.ReadClientToken(path); err != nil {
			return nil, fmt.Errorf("no token to call %s with: set QUIESCE_TOKEN, or point --token-file (QUIESCE_TOKEN_FILE) at a file holding it: %w",
				t.url, err)
		}
	}
	c, err := server.NewClient(t.url, token, nil)
	if err != nil {
		return nil, usagef("--url (QUIESCE_URL): %s", plain(err))
	}
	return &httpControl{c: c, tokenSource: source}, nil
}
