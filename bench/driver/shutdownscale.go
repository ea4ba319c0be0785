package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"
)

// ---- 9. shutdown at scale (issue 18, item 5) ----

// scaleTurns is the number of turns in flight when the scale figure's
// shutdown starts.
var scaleTurns = flag.Int("scale-turns", 5000, "shutdown at scale: turns in flight (each its own session and keep-alive connection) when SIGTERM arrives")

// The scale figure's timeouts: the gateway's bound is their sum plus 1 s
// (DESIGN "Shutdown sequence"). bench/bare gets scaleDrain as its
// http.Server.Shutdown deadline: the same wait for the same turns.
const (
	scaleDrain  = 2 * time.Second
	scaleNotify = 2 * time.Second
	scaleClose  = time.Second
)

// scaleBound is what DESIGN promises: drain + notify + 1 s.
const scaleBound = scaleDrain + scaleNotify + scaleClose

// scaleSession names the i-th client's session.
func scaleSession(i int) string { return fmt.Sprintf("scale-%d", i) }

// scaleOutcome is what one server's shutdown with n turns in flight
// gave: its exit and what its clients saw.
type scaleOutcome struct {
	n           int
	exit        time.Duration // from just before kill(2) to cmd.Wait returning
	exitErr     error         // the process's exit status (nil: 0)
	lastAnswer  time.Duration // from the signal to the last client's answer or error
	interrupted int           // 503 {"error":"interrupted"}
	other       map[string]int
	connErr     int // the request failed: reset, EOF, refused
	nothing     int // no answer and no error until well after the exit
	outbox      int // distinct sessions with a session_interrupted line in outbox.jsonl
	webhook     int // distinct sessions whose ping reached the driver's webhook receiver before the exit
	kept        int // distinct sessions whose ping the webhook kept in webhook.pending.jsonl for the next start
	webhookAll  int // distinct sessions delivered or kept
}

func (o *scaleOutcome) otherCount() int {
	n := 0
	for _, k := range o.other {
		n += k
	}
	return n
}

func (o *scaleOutcome) otherText() string {
	if len(o.other) == 0 {
		return "0"
	}
	var parts []string
	for k, v := range o.other {
		parts = append(parts, fmt.Sprintf("%d × %s", v, k))
	}
	sort.Strings(parts)
	return fmt.Sprintf("%d (%s)", o.otherCount(), strings.Join(parts, ", "))
}

// clientsText is the clients' tally as the report prints it.
func (o *scaleOutcome) clientsText() string {
	return fmt.Sprintf("interrupted %d, other answers %s, connection errors %d, nothing %d (of %d)",
		o.interrupted, o.otherText(), o.connErr, o.nothing, o.n)
}

// pingReceiver is a loopback webhook receiver: it records the sessions
// whose session_interrupted ping it was sent.
type pingReceiver struct {
	url string
	srv *http.Server
	// mu guards sessions: the webhook sends up to 8 messages at once.
	mu       sync.Mutex
	sessions map[string]bool
}

func startPingReceiver() (*pingReceiver, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	pr := &pingReceiver{url: "http://" + ln.Addr().String() + "/ping", sessions: map[string]bool{}}
	pr.srv = &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var m struct {
			Kind   string `json:"kind"`
			Target string `json:"target"`
		}
		if err := json.NewDecoder(r.Body).Decode(&m); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if m.Kind == "session_interrupted" {
			pr.mu.Lock()
			pr.sessions[m.Target] = true
			pr.mu.Unlock()
		}
		w.WriteHeader(http.StatusNoContent)
	})}
	// One goroutine serves the receiver until close.
	go pr.srv.Serve(ln)
	return pr, nil
}

// received returns a copy of the sessions pinged so far.
func (pr *pingReceiver) received() map[string]bool {
	pr.mu.Lock()
	defer pr.mu.Unlock()
	return maps.Clone(pr.sessions)
}

// countScaleSessions is how many of the first n scale sessions are in seen.
func countScaleSessions(seen map[string]bool, n int) int {
	k := 0
	for i := range n {
		if seen[scaleSession(i)] {
			k++
		}
	}
	return k
}

func (pr *pingReceiver) close() { pr.srv.Close() }

// pingedIn returns the sessions with a session_interrupted line in the
// JSON-lines file name of home (outbox.jsonl, webhook.pending.jsonl); a
// file that does not exist holds none.
func pingedIn(home, name string) (map[string]bool, error) {
	seen := map[string]bool{}
	b, err := os.ReadFile(filepath.Join(home, name))
	if errors.Is(err, fs.ErrNotExist) {
		return seen, nil
	}
	if err != nil {
		return nil, err
	}
	for l := range strings.Lines(string(b)) {
		var m struct {
			Kind   string `json:"kind"`
			Target string `json:"target"`
		}
		if json.Unmarshal([]byte(l), &m) == nil && m.Kind == "session_interrupted" {
			seen[m.Target] = true
		}
	}
	return seen, nil
}

// scaleAnswer is what one parked client saw.
type scaleAnswer struct {
	code    int
	errCode string // the JSON body's "error"
	err     error
	at      time.Time
}

func scaleTurn(ctx context.Context, cl *http.Client, p *proc, session string) scaleAnswer {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.url+"/v1/sessions/"+session+"/messages",
		strings.NewReader(`{"text":"parked"}`))
	if err != nil {
		return scaleAnswer{err: err, at: time.Now()}
	}
	req.Header.Set("Authorization", "Bearer "+p.token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := cl.Do(req)
	if err != nil {
		return scaleAnswer{err: err, at: time.Now()}
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	a := scaleAnswer{code: resp.StatusCode, err: err, at: time.Now()}
	var body struct {
		Error string `json:"error"`
	}
	if json.Unmarshal(b, &body) == nil {
		a.errCode = body.Error
	}
	return a
}

// errNoAnswer is a parked client's error when it had neither an answer
// nor a connection error some time after the server exited.
var errNoAnswer = errors.New("no answer")

// shutdownWithParked parks n turns in p (each client its own session and
// keep-alive connection), sends SIGTERM once all n are in flight, and
// returns the exit and what the clients saw. p is killed if it outlives
// the bound plus 30 s.
func shutdownWithParked(ctx context.Context, p *proc, n int) (*scaleOutcome, error) {
	defer p.kill()
	tr := &http.Transport{MaxIdleConns: n + 16, MaxIdleConnsPerHost: n + 16, IdleConnTimeout: time.Minute, DisableCompression: true}
	defer tr.CloseIdleConnections()
	cl := &http.Client{Transport: tr}
	// cctx ends the clients' requests: cancelled a while after the
	// server exited, so a client that never heard anything is counted
	// as such instead of waiting forever.
	cctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	answers := make([]scaleAnswer, n)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 256) // bounds the connect rate, as the memory figure does
	for i := range n {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			cancel(ctx.Err())
			wg.Wait()
			return nil, ctx.Err()
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			go func() { time.Sleep(5 * time.Millisecond); <-sem }()
			answers[i] = scaleTurn(cctx, cl, p, scaleSession(i))
		}()
	}
	ctl := newClient(2)
	parkBy := time.Now().Add(90 * time.Second)
	for {
		k, err := inflight(ctl, p)
		if err == nil && k >= n {
			break
		}
		if time.Now().After(parkBy) || ctx.Err() != nil {
			cancel(errNoAnswer)
			wg.Wait()
			return nil, fmt.Errorf("%s: only %d of %d turns in flight (%v; log %s)", p.name, k, n, err, p.log)
		}
		time.Sleep(50 * time.Millisecond)
	}
	ctl.CloseIdleConnections()

	t0 := time.Now()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		cancel(errNoAnswer)
		wg.Wait()
		return nil, err
	}
	out := &scaleOutcome{n: n, other: map[string]int{}}
	exitBy := time.NewTimer(scaleBound + 30*time.Second)
	defer exitBy.Stop()
	select {
	case <-p.done:
		out.exit, out.exitErr = p.exitAt.Sub(t0), p.err
	case <-exitBy.C:
		p.kill()
		out.exit, out.exitErr = p.exitAt.Sub(t0), fmt.Errorf("still running %v after SIGTERM: killed", scaleBound+30*time.Second)
	case <-ctx.Done():
		cancel(ctx.Err())
		wg.Wait()
		return nil, ctx.Err()
	}
	// Every connection closed with the process: a client still waiting
	// 5 s later heard nothing.
	clientsDone := make(chan struct{})
	go func() { wg.Wait(); close(clientsDone) }() // closes clientsDone once every client returned
	select {
	case <-clientsDone:
	case <-time.After(5 * time.Second):
		cancel(errNoAnswer)
		<-clientsDone
	case <-ctx.Done():
		cancel(ctx.Err())
		<-clientsDone
		return nil, ctx.Err()
	}
	for _, a := range answers {
		if d := a.at.Sub(t0); d > out.lastAnswer {
			out.lastAnswer = d
		}
		switch {
		case a.err != nil && errors.Is(context.Cause(cctx), errNoAnswer) && errors.Is(a.err, context.Canceled):
			out.nothing++
		case a.err != nil:
			out.connErr++
		case a.code == http.StatusServiceUnavailable && a.errCode == "interrupted":
			out.interrupted++
		default:
			out.other[fmt.Sprintf("%d %s", a.code, a.errCode)]++
		}
	}
	return out, nil
}

// scaleGateway runs the figure's quiesce side: a gateway whose n turns are
// forced at the drain deadline, each session pinged through the outbox
// and a loopback webhook.
func scaleGateway(ctx context.Context, e *benchEnv, n int) (*scaleOutcome, error) {
	pr, err := startPingReceiver()
	if err != nil {
		return nil, err
	}
	defer pr.close()
	gw, err := e.gateway("--agent-work", "1h", "--drain-timeout", scaleDrain.String(),
		"--notify-timeout", scaleNotify.String(), "--notify-webhook", pr.url)
	if err != nil {
		return nil, err
	}
	out, err := shutdownWithParked(ctx, gw, n)
	if err != nil {
		return nil, err
	}
	outbox, err := pingedIn(gw.home, "outbox.jsonl")
	if err != nil {
		return nil, fmt.Errorf("outbox: %w", err)
	}
	kept, err := pingedIn(gw.home, "webhook.pending.jsonl")
	if err != nil {
		return nil, fmt.Errorf("webhook pending record: %w", err)
	}
	delivered := pr.received()
	out.outbox, out.webhook, out.kept = countScaleSessions(outbox, n), countScaleSessions(delivered, n), countScaleSessions(kept, n)
	maps.Copy(kept, delivered)
	out.webhookAll = countScaleSessions(kept, n)
	return out, nil
}

// scaleBare runs the baseline: bench/bare, whose http.Server.Shutdown gets
// scaleDrain as its deadline, with the same n turns in flight.
func scaleBare(ctx context.Context, e *benchEnv, n int) (*scaleOutcome, error) {
	bare, err := e.server("bare", func(home, addr string) []string {
		return []string{"--addr", addr, "--tokens-file", filepath.Join(home, "tokens"), "--work", "1h",
			"--shutdown-timeout", scaleDrain.String()}
	})
	if err != nil {
		return nil, err
	}
	return shutdownWithParked(ctx, bare, n)
}

// raiseNofile makes sure this process may hold need open files (the
// clients' connections) and says what it did. Go already raises the soft
// limit to the hard one at start; the servers, Go programs too, do the
// same for themselves.
func raiseNofile(need uint64) (string, error) {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return "", fmt.Errorf("getrlimit: %w", err)
	}
	if rl.Cur >= need {
		return fmt.Sprintf("RLIMIT_NOFILE: the driver needs about %d open files; its soft limit is %d (hard %d), "+
			"no change needed.", need, rl.Cur, rl.Max), nil
	}
	if rl.Max < need {
		return "", fmt.Errorf("RLIMIT_NOFILE: %d turns need about %d open files, the hard limit is %d: "+
			"raise it (ulimit -Hn, or LimitNOFILE= in a unit) or lower -scale-turns", need-256, need, rl.Max)
	}
	was := rl.Cur
	rl.Cur = need
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return "", fmt.Errorf("setrlimit: %w", err)
	}
	return fmt.Sprintf("RLIMIT_NOFILE: the driver raised its soft limit from %d to %d (hard %d) for the clients' "+
		"connections; the servers inherit it.", was, need, rl.Max), nil
}

// measureShutdownScale runs both sides at n turns, quiesce first.
func measureShutdownScale(ctx context.Context, e *benchEnv, n int) (q, b *scaleOutcome, err error) {
	if q, err = scaleGateway(ctx, e, n); err != nil {
		return nil, nil, fmt.Errorf("quiesce: %w", err)
	}
	e.killAll()
	if b, err = scaleBare(ctx, e, n); err != nil {
		return nil, nil, fmt.Errorf("bare: %w", err)
	}
	e.killAll()
	return q, b, nil
}

func secs(d time.Duration) string { return fmt.Sprintf("%.2f s", d.Seconds()) }

func benchShutdownScale(e *benchEnv, r *report) error {
	n := *scaleTurns
	if n < 1 {
		return fmt.Errorf("-scale-turns %d", n)
	}
	nofile, err := raiseNofile(uint64(n) + 256)
	if err != nil {
		return err
	}
	load0 := loadavg()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	q, b, err := measureShutdownScale(ctx, e, n)
	if err != nil {
		return err
	}
	exitOK := q.exitErr == nil && q.exit <= scaleBound
	qExit := secs(q.exit)
	if q.exitErr != nil {
		qExit += fmt.Sprintf(" (%v)", q.exitErr)
	}
	bExit := secs(b.exit)
	if b.exitErr != nil {
		bExit += fmt.Sprintf(" (%v)", b.exitErr)
	}
	s := &section{
		title: fmt.Sprintf("Shutdown at scale (%d turns in flight)", n),
		intro: fmt.Sprintf("One real gateway (echo agent, `--agent-work 1h`, so every turn parks; `--drain-timeout %v "+
			"--notify-timeout %v --notify-webhook` to a loopback receiver in the driver) with %d turns in flight, each "+
			"client its own session and keep-alive connection; then SIGTERM. The turns are forced at the drain deadline. "+
			"The exit time runs from just before `kill(2)` to `cmd.Wait` returning; what each client saw is counted "+
			"(a 503 `interrupted` answer, another answer, a connection error, or nothing 5 s after the exit), and the "+
			"sessions pinged are counted twice: distinct `session_interrupted` targets in the home's `outbox.jsonl` and "+
			"those the webhook delivered before the exit or kept in `webhook.pending.jsonl` for the next start. The baseline is `bench/bare` with the same %d turns "+
			"(`--work 1h`) and SIGTERM: `http.Server.Shutdown` with a %v context deadline, the same wait.",
			scaleDrain, scaleNotify, n, n, scaleDrain),
		rows: []row{
			{"exit time after SIGTERM", qExit, "bare net/http Shutdown: " + bExit,
				ratio(float64(q.exit), float64(b.exit)),
				fmt.Sprintf("≤ %s (drain %s + notify %s + %s)", secs(scaleBound), secs(scaleDrain), secs(scaleNotify), secs(scaleClose)),
				yesNo(exitOK)},
			{"clients answered `interrupted` (503)", fmt.Sprintf("%d of %d", q.interrupted, n),
				fmt.Sprintf("bare: %d answered at all", b.interrupted+b.otherCount()), "—",
				fmt.Sprintf("all %d", n), yesNo(q.interrupted == n)},
			{"what the clients saw", q.clientsText(), "bare: " + b.clientsText(), "—", "—", "—"},
			{"last client's answer after SIGTERM", secs(q.lastAnswer), "bare: " + secs(b.lastAnswer), "—", "—", "—"},
			{"sessions pinged (outbox)", fmt.Sprintf("%d of %d", q.outbox, n), "bare: none (it has no notifications)", "—",
				fmt.Sprintf("all %d", n), yesNo(q.outbox == n)},
			{"sessions pinged (webhook: delivered before the exit, or kept for the next start)",
				fmt.Sprintf("%d of %d (delivered %d, kept in webhook.pending.jsonl %d)", q.webhookAll, n, q.webhook, q.kept),
				"bare: none", "—", fmt.Sprintf("all %d", n), yesNo(q.webhookAll == n)},
		},
		load: load0 + " → " + loadavg(),
	}
	s.notes = append(s.notes,
		"What the bare server's clients see: `Shutdown` stops accepting and waits for the active connections, but it "+
			"neither cancels the handlers nor answers them; when its deadline passes the process exits and the kernel "+
			"closes the sockets, so every client gets a connection error (EOF or reset) and no answer, and nobody is told "+
			"to resend. quiesce answers every turn it cut off with a 503 `interrupted` and pings its session.",
		nofile)
	if q.webhook < n {
		s.notes = append(s.notes, fmt.Sprintf("The webhook (8 requests at a time, its default) delivered %d of the %d pings within the "+
			"notify timeout (%v), which they used up: the exit time above includes it. What it could not deliver stays in "+
			"the home's webhook.pending.jsonl, is not lost, and is delivered at the next start (DESIGN \"Shutdown "+
			"sequence\"); a longer --notify-timeout delivers more before the exit and raises the bound with it.",
			q.webhook, n, scaleNotify))
	}
	r.add(s)
	return nil
}
