package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/user"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/quiesce-dev/quiesce/api"
	"github.com/quiesce-dev/quiesce/fsm"
	"github.com/quiesce-dev/quiesce/gateway"
	"github.com/quiesce-dev/quiesce/internal/homefile"
	"github.com/quiesce-dev/quiesce/marker"
	"github.com/quiesce-dev/quiesce/server"
)

// localControl is a control over a gateway home on this machine: drain
// and cancel write or remove the marker (as the server does), status reads
// the state file and the home lock, shutdown signals the pid holding the
// lock. With no server to long-poll, waits read the state file every
// localPollInterval: it is rewritten at most a few times a second anyway
// (coalesced, plus every transition), so a file watcher would learn
// nothing sooner, and polling also works where inotify does not (network
// file systems, some container volumes).
type localControl struct {
	home     string
	procRoot string
}

// checkHome fails when the home directory does not exist: a typo in
// --home must not look like success.
func (l *localControl) checkHome() error {
	fi, err := os.Stat(l.home)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return &hintError{err: err, msg: fmt.Sprintf("the home %s does not exist: is --home (QUIESCE_HOME) right? To talk to a gateway over HTTP, set --url (QUIESCE_URL)", l.home)}
	case err != nil:
		return fmt.Errorf("home %s: %w", l.home, err)
	case !fi.IsDir():
		return &hintError{msg: fmt.Sprintf("the home %s is not a directory: is --home (QUIESCE_HOME) right?", l.home)}
	}
	return nil
}

// status is LocalStatus, or ok=false when no gateway ever ran here.
func (l *localControl) status() (st gateway.HomeStatus, ok bool, err error) {
	st, err = gateway.LocalStatus(l.home, l.procRoot, marker.DefaultMaxAge)
	if errors.Is(err, fs.ErrNotExist) {
		return st, false, nil
	}
	if err != nil {
		return st, false, fmt.Errorf("read the status in %s: %w", l.home, err)
	}
	return st, true, nil
}

// refuseWhileShuttingDown mirrors the API's 409 shutting_down: once a
// live gateway is shutting down, drain and cancel change nothing (the
// marker would only outlive the process and drain its successor).
func (l *localControl) refuseWhileShuttingDown() error {
	st, ok, err := l.status()
	if err != nil || !ok {
		return err
	}
	if st.Live && (st.State == fsm.ShuttingDown || st.State == fsm.Stopped) {
		return &hintError{err: gateway.ErrShuttingDown, msg: shuttingDownHint}
	}
	return nil
}

// Drain writes the marker, then gives a live gateway up to
// localAckTimeout to show it (state no longer running), so the answer
// tells whether new turns are already refused.
func (l *localControl) Drain(ctx context.Context, req gateway.DrainRequest) (drainResult, error) {
	if err := l.checkHome(); err != nil {
		return drainResult{}, err
	}
	if err := l.refuseWhileShuttingDown(); err != nil {
		return drainResult{}, err
	}
	if req.Principal == "" {
		req.Principal = localPrincipal()
	}
	res, err := gateway.LocalDrain(l.home, l.procRoot, req)
	if err != nil {
		return drainResult{}, l.explain(err)
	}
	st, err := l.await(ctx, func(st gateway.HomeStatus) bool {
		return st.State != fsm.Running && st.Condition != gateway.HomeStarting
	})
	if err != nil {
		return drainResult{}, err
	}
	res.State, res.ActiveAgents = st.State, st.ActiveAgents
	return drainResult{DrainResponse: server.DrainResponseOf(res), localInfo: l.info(st)}, nil
}

// Cancel removes the marker, then gives a live gateway that was draining
// up to localAckTimeout to show it.
func (l *localControl) Cancel(ctx context.Context, requestID string) (cancelResult, error) {
	if err := l.checkHome(); err != nil {
		return cancelResult{}, err
	}
	if err := l.refuseWhileShuttingDown(); err != nil {
		return cancelResult{}, err
	}
	was, err := gateway.LocalCancel(l.home, requestID)
	if err != nil {
		return cancelResult{}, l.explain(err)
	}
	st, err := l.await(ctx, func(st gateway.HomeStatus) bool {
		return !was || (st.State != fsm.Draining && st.Condition != gateway.HomeStarting)
	})
	if err != nil {
		return cancelResult{}, err
	}
	if !was && st.Condition == gateway.HomeRunning && st.Addr != "" {
		// No marker, yet the gateway may still drain: ask it (its state
		// file cannot say so when the disk that refused the marker is full).
		if r, err := askReady(ctx, st.Addr, st.PID); err == nil {
			if err := heldInMemory(r.State, r.OK, st.PID, st.Addr); err != nil {
				return cancelResult{}, err
			}
		}
	}
	return cancelResult{CancelResponse: api.CancelResponse{
		OK: true, Action: api.ActionCancel, WasDraining: was, State: st.State, ActiveAgents: st.ActiveAgents,
	}, localInfo: l.info(st)}, nil
}

// heldInMemory is the error for a local cancel that found no marker
// while the live gateway (pid, listening at addr) still drains or
// announces one: that drain lives only in the gateway's memory (its
// marker could not be written, or an announce window is open), where a
// file on the home cannot reach it. nil when state and ready show none.
func heldInMemory(state fsm.State, ready bool, pid int, addr string) error {
	var what string
	switch {
	case state == fsm.Draining:
		what = "is draining with no drain marker in the home: its drain is held in memory (the marker could not be written)"
	case state == fsm.Running && !ready:
		what = "is announcing a drain (not ready; its gate closes at the window's end): the window is held in memory"
	default:
		return nil
	}
	return fmt.Errorf("nothing cancelled: the gateway (pid %d, listening on %s) %s; cancel it through its API: quiesce cancel --url <its URL>", pid, addr, what)
}

// info is the localInfo for status st.
func (l *localControl) info(st gateway.HomeStatus) localInfo {
	live := st.Live
	return localInfo{Home: l.home, Live: &live}
}

// await reads the status until done holds, the gateway is not live, or
// localAckTimeout passes (then the last status read: the gateway's
// watcher may still pick the marker up at its next poll).
func (l *localControl) await(ctx context.Context, done func(gateway.HomeStatus) bool) (gateway.HomeStatus, error) {
	ctx, cancel := context.WithTimeout(ctx, localAckTimeout)
	defer cancel()
	tick := time.NewTicker(localPollInterval / 5)
	defer tick.Stop()
	for {
		st, ok, err := l.status()
		if err != nil || !ok || !st.Live || done(st) {
			return st, err
		}
		select {
		case <-ctx.Done():
			return st, nil
		case <-tick.C:
		}
	}
}

// Status is Describe's status.
func (l *localControl) Status(ctx context.Context) (api.Status, error) {
	v, err := l.Describe(ctx)
	return v.Status, err
}

// Describe reads the home lock and the state file (gateway.LocalStatus),
// and asks a live gateway over loopback for its state (its state file may
// be stale: a write fails on a full disk while the gateway carries on);
// when it does not answer, the file's state is shown with a note that it
// may be stale.
func (l *localControl) Describe(ctx context.Context) (statusView, error) {
	if err := l.checkHome(); err != nil {
		return statusView{}, err
	}
	hs, ok, err := l.status()
	if err != nil {
		return statusView{}, err
	}
	if !ok {
		return statusView{}, &hintError{err: fs.ErrNotExist, msg: fmt.Sprintf(
			"no gateway has run in %s (it has no %s): is --home (QUIESCE_HOME) right?", l.home, gateway.StateFileName)}
	}
	v := statusView{Status: hs.Status, local: &localStatus{Home: l.home, Condition: hs.Condition}}
	if hs.Drain != nil && hs.Drain.Status == marker.Contentless.String() {
		v.local.MarkerProblem = contentlessWhy(marker.Path(l.home))
	}
	switch hs.Condition {
	case gateway.HomeNotRunning:
		v.local.LastState, v.local.LastSeen = hs.State, hs.UpdatedAt
		v.State, v.UptimeSeconds = stateNotRunning, 0
		v.local.Source = "state_file"
	case gateway.HomeRunning:
		v.local.Source = "gateway"
		r, err := askReady(ctx, hs.Addr, hs.PID)
		if err != nil {
			v.local.Source = "state_file"
			v.local.Stale = fmt.Sprintf("the gateway did not answer over loopback (%v): this is its state file as last written at %s, which may be stale",
				err, hs.UpdatedAt.UTC().Format(time.RFC3339))
			break
		}
		v.State, v.StateSince, v.ActiveAgents, v.OldestTurnSeconds = r.State, r.StateSince, r.ActiveAgents, r.OldestTurnSeconds
		v.Seq, v.UptimeSeconds, v.Ready = r.Seq, r.UptimeSeconds, r.OK
	}
	return v, nil
}

// stateNotRunning is the state local status reports for a home no
// gateway holds (stopped cleanly or died): last_state says which.
const stateNotRunning fsm.State = "not_running"

// localAskTimeout bounds local status's question to a live gateway.
const localAskTimeout = 2 * time.Second

// localHTTP asks a live gateway over loopback; no proxy may intercept.
var localHTTP = &http.Client{Transport: &http.Transport{Proxy: nil}, Timeout: localAskTimeout}

// askReady asks the gateway listening at addr (as its state file records
// it; an unspecified host means loopback) for its state on /readyz, which
// needs no token, and checks that the answer is pid's.
func askReady(ctx context.Context, addr string, pid int) (api.ReadyResponse, error) {
	var r api.ReadyResponse
	if addr == "" {
		return r, errors.New("its state file records no listen address")
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return r, fmt.Errorf("listen address %q: %w", addr, err)
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
		if ip != nil && ip.To4() == nil {
			host = "::1"
		}
	}
	ctx, cancel := context.WithTimeout(ctx, localAskTimeout)
	defer cancel()
	u := "http://" + net.JoinHostPort(host, port) + "/readyz"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return r, err
	}
	resp, err := localHTTP.Do(req)
	if err != nil {
		return r, err
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<16)).Decode(&r); err != nil {
		return r, fmt.Errorf("GET %s: %d, not a quiesce /readyz answer: %w", u, resp.StatusCode, err)
	}
	if r.PID != pid || r.State == "" {
		return r, fmt.Errorf("GET %s answered for pid %d, not the gateway holding the home (pid %d)", u, r.PID, pid)
	}
	return r, nil
}

// contentlessWhy says why the marker at path is contentless.
func contentlessWhy(path string) string {
	fi, err := os.Lstat(path)
	switch {
	case err != nil:
		return fmt.Sprintf("%s cannot be examined: %v", path, err)
	case !fi.Mode().IsRegular():
		return fmt.Sprintf("%s is %s, not a regular file", path, homefile.Describe(path, fi))
	case fi.Size() == 0:
		return fmt.Sprintf("%s is empty", path)
	default:
		return fmt.Sprintf("%s (%d bytes) holds no drain request quiesce can read (not a JSON object with its fields)", path, fi.Size())
	}
}

// WaitIdle reads the state file every localPollInterval until no turn is
// in flight, or within passes. A home no live gateway holds is idle.
func (l *localControl) WaitIdle(ctx context.Context, within time.Duration) (api.Status, bool, error) {
	deadline := time.NewTimer(within)
	defer deadline.Stop()
	tick := time.NewTicker(localPollInterval)
	defer tick.Stop()
	for {
		st, err := l.Status(ctx)
		if err != nil {
			return st, false, err
		}
		if !st.Live || st.ActiveAgents == 0 {
			return st, true, nil
		}
		select {
		case <-ctx.Done():
			return st, false, ctx.Err()
		case <-deadline.C:
			return st, false, nil
		case <-tick.C:
		}
	}
}

// Shutdown sends SIGTERM to the gateway holding the home's lock; with
// force, once the state file shows the sequence started, SIGINT (a
// SIGINT while shutting down forces; a repeated SIGTERM changes nothing).
func (l *localControl) Shutdown(ctx context.Context, force bool) (shutdownResult, error) {
	if err := l.checkHome(); err != nil {
		return shutdownResult{}, err
	}
	st, ok, err := l.status()
	if err != nil {
		return shutdownResult{}, err
	}
	if !ok {
		return shutdownResult{}, &hintError{err: errNotRunning, msg: fmt.Sprintf(
			"no gateway has run in %s (it has no %s): nothing to shut down; is --home (QUIESCE_HOME) right?", l.home, gateway.StateFileName)}
	}
	pid, err := l.livePID(st)
	if err != nil {
		return shutdownResult{}, err
	}
	res := shutdownResult{PID: pid, ShutdownResponse: api.ShutdownResponse{
		OK: true, Force: force, AlreadyShuttingDown: st.State == fsm.ShuttingDown,
	}}
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		return shutdownResult{}, fmt.Errorf("signal pid %d: %w", pid, err)
	}
	res.Signals = append(res.Signals, "SIGTERM")
	if force {
		// Two signals sent back to back may arrive as one: wait until the
		// first has started the sequence (the state file says so).
		sctx, cancel := context.WithTimeout(ctx, signalSettleTimeout)
		defer cancel()
		if err := l.awaitState(sctx, fsm.ShuttingDown, fsm.Stopped); err != nil {
			return shutdownResult{}, fmt.Errorf("sent SIGTERM to pid %d, but the gateway did not report shutting_down within %v, so no SIGINT was sent: %w",
				pid, signalSettleTimeout, err)
		}
		if err := syscall.Kill(pid, syscall.SIGINT); err != nil && !errors.Is(err, syscall.ESRCH) {
			return shutdownResult{}, fmt.Errorf("signal pid %d: %w", pid, err)
		}
		res.Signals = append(res.Signals, "SIGINT")
	}
	if st, ok, err := l.status(); err == nil && ok {
		res.State = st.State
	}
	return res, nil
}

// awaitState reads the state file until it shows one of states.
func (l *localControl) awaitState(ctx context.Context, states ...fsm.State) error {
	tick := time.NewTicker(localPollInterval / 10)
	defer tick.Stop()
	for {
		if st, ok, err := l.status(); err == nil && ok {
			for _, s := range states {
				if st.State == s {
					return nil
				}
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// livePID returns the pid of the gateway that holds the home's lock. It
// refuses to signal when no gateway holds it: the pid in a state file a
// dead gateway left may belong to another process by now.
func (l *localControl) livePID(st gateway.HomeStatus) (int, error) {
	live, lockPID, err := gateway.HomeLive(l.home)
	if err != nil {
		return 0, fmt.Errorf("probe the home lock: %w", err)
	}
	if !live {
		return 0, &hintError{err: errNotRunning, msg: fmt.Sprintf("the gateway is not running: no process holds %s's lock (last recorded state %s, pid %d); nothing to shut down",
			l.home, orDash(string(st.State)), st.PID)}
	}
	if pid, err := strconv.Atoi(lockPID); err == nil && pid > 0 {
		return pid, nil
	}
	if st.PID > 0 {
		return st.PID, nil
	}
	return 0, fmt.Errorf("neither %s nor %s names the gateway's pid", gateway.LockFileName, gateway.StateFileName)
}

// WaitExited waits until the home's lock is free and the process that
// held it is gone: released by its exit (or left as a zombie for its
// parent to reap), checked every exitPollInterval.
func (l *localControl) WaitExited(ctx context.Context) error {
	tick := time.NewTicker(exitPollInterval)
	defer tick.Stop()
	pid := 0
	for {
		live, lockPID, err := gateway.HomeLive(l.home)
		if err != nil {
			return fmt.Errorf("probe the home lock: %w", err)
		}
		if n, err := strconv.Atoi(lockPID); err == nil && n > 0 {
			pid = n
		}
		if !live && (pid <= 0 || processGone(pid)) {
			return nil
		}
		select {
		case <-ctx.Done():
			what := "holds the home's lock"
			if !live {
				what = "released the home's lock but has not exited"
			}
			return &hintError{err: ctx.Err(), msg: fmt.Sprintf("the gateway (pid %d) still %s", pid, what)}
		case <-tick.C:
		}
	}
}

// processGone reports whether pid has exited: no such process, or a
// zombie waiting for its parent (Linux /proc tells).
func processGone(pid int) bool {
	if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
		return true
	}
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return errors.Is(err, fs.ErrNotExist)
	}
	// The state is the first field after the parenthesised command name.
	if i := strings.LastIndexByte(string(data), ')'); i >= 0 {
		if f := strings.Fields(string(data[i+1:])); len(f) > 0 {
			return f[0] == "Z" || f[0] == "X"
		}
	}
	return false
}

// explain turns a LocalDrain or LocalCancel error into what to do.
func (l *localControl) explain(err error) error {
	switch {
	case errors.Is(err, gateway.ErrRequestMismatch):
		active := "the active drain has no request_id"
		if st := marker.Read(l.home, time.Now(), "", marker.DefaultMaxAge); st.Request.RequestID != "" {
			active = fmt.Sprintf("the active request_id is %q", st.Request.RequestID)
		}
		return &hintError{err: err, msg: fmt.Sprintf("request_id is not the active drain's (%s); nothing was changed. "+
			"Run 'quiesce status' to see the active drain; 'quiesce cancel' without --request-id cancels whichever is active", active)}
	case errors.Is(err, gateway.ErrMarkerUnwritable):
		cause := err.Error()
		if errno, ok := errors.AsType[syscall.Errno](err); ok {
			cause = errno.Error()
		}
		return &hintError{err: err, msg: fmt.Sprintf("the drain marker %s could not be written: %s. Nothing was drained: "+
			"free space or make the home writable and retry; if a gateway runs on this home, drain through its API "+
			"(--url): it closes its gate even when the marker cannot be written", marker.Path(l.home), cause)}
	case errors.Is(err, gateway.ErrInvalid):
		return usagef("%s", strings.TrimPrefix(err.Error(), gateway.ErrInvalid.Error()+": "))
	case errors.Is(err, gateway.ErrMarkerUnusable):
		return &hintError{err: err, msg: "the drain marker cannot be used: " + markerDetail(err) +
			". Nothing was changed: quiesce only replaces or removes a regular file it can read. Look at what is there, move it aside, and retry"}
	default:
		return err // Main strips the package prefixes when it prints it
	}
}

// localPrincipal names the operator of a local drain.
func localPrincipal() string {
	if u, err := user.Current(); err == nil && u.Username != "" {
		return "local:" + u.Username
	}
	return "local"
}
