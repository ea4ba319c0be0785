package agent

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Limits of the http agent.
const (
	// maxUpstreamReply bounds a JSON reply or a whole streamed reply.
	maxUpstreamReply = 4 << 20
	// upstreamDialTimeout bounds connecting to the upstream.
	upstreamDialTimeout = 5 * time.Second
	// upstreamIdleConns is how many idle keep-alive connections the one
	// pooled client keeps to the upstream.
	upstreamIdleConns = 64
)

// HTTPOptions configures NewHTTP.
type HTTPOptions struct {
	// Timeout bounds a whole turn (0: none; a forced shutdown still
	// cancels it).
	Timeout time.Duration
	// Client replaces the pooled client NewHTTP builds (tests).
	Client *http.Client
}

// UpstreamError is the error of an http agent turn whose upstream did not
// give a reply: Status is its HTTP status (0 when it never answered: a
// refused connection, a timeout). errors.Is(err, gateway.ErrAgent) holds
// for the error the gateway's Turn returns.
type UpstreamError struct {
	URL    string
	TurnID string // the X-Request-Id the upstream got
	Status int    // 0 if no answer
	Reason string // what went wrong, in words
	// Timeout is the turn's timeout (HTTPOptions.Timeout) when the
	// upstream did not answer within it; 0 otherwise.
	Timeout time.Duration
}

// Error implements error.
func (e *UpstreamError) Error() string {
	if e.Status != 0 {
		return fmt.Sprintf("upstream agent %s answered %d %s to turn %s: %s", e.URL, e.Status, http.StatusText(e.Status), e.TurnID, e.Reason)
	}
	return fmt.Sprintf("upstream agent %s, turn %s: %s", e.URL, e.TurnID, e.Reason)
}

// upstreamRequest is the body of each turn's POST.
type upstreamRequest struct {
	Session string `json:"session"`
	Text    string `json:"text"`
	TurnID  string `json:"turn_id"`
	EventID string `json:"event_id"`
}

// httpAgent is the agent NewHTTP returns.
type httpAgent struct {
	url     string
	client  *http.Client
	timeout time.Duration
}

// NewHTTP returns an agent that runs each turn as POST rawURL with
// {"session","text","turn_id","event_id"} (event_id empty for user
// turns) and an X-Request-Id header equal to turn_id. A 200 with
// application/json {"reply": "..."} is the reply; a 200 with
// text/event-stream streams each event's data (its data: lines joined by
// newlines) as a delta until the stream ends, and the reply is their
// concatenation. Any other answer, a refused connection or a timeout fails
// the turn with an *UpstreamError. Cancelling the turn (a forced shutdown,
// a client that went away) cancels the upstream request: the upstream sees
// its connection closed. All turns share one pooled client.
func NewHTTP(rawURL string, opt HTTPOptions) (Agent, error) {
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("%w: agent URL %q: want http:// or https://", ErrInvalid, rawURL)
	}
	c := opt.Client
	if c == nil {
		c = &http.Client{Transport: &http.Transport{
			Proxy:                 http.ProxyFromEnvironment,
			DialContext:           (&net.Dialer{Timeout: upstreamDialTimeout, KeepAlive: 30 * time.Second}).DialContext,
			MaxIdleConns:          upstreamIdleConns,
			MaxIdleConnsPerHost:   upstreamIdleConns,
			IdleConnTimeout:       90 * time.Second,
			TLSHandshakeTimeout:   upstreamDialTimeout,
			ExpectContinueTimeout: time.Second,
			ForceAttemptHTTP2:     true,
		}}
	}
	return &httpAgent{url: u.String(), client: c, timeout: opt.Timeout}, nil
}

// Run implements Agent.
func (a *httpAgent) Run(ctx context.Context, t Turn) (_ string, err error) {
	defer func() {
		if ue, ok := errors.AsType[*UpstreamError](err); ok {
			ue.TurnID = t.TurnID // so both sides' logs name the turn
		}
	}()
	if a.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, a.timeout)
		defer cancel()
	}
	body, _ := json.Marshal(upstreamRequest{Session: t.Session, Text: t.Text, TurnID: t.TurnID, EventID: t.EventID})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, a.url, bytes.NewReader(body))
	if err != nil {
		return "", a.fail(0, err.Error())
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("X-Request-Id", t.TurnID)
	resp, err := a.client.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return "", a.ctxError(ctx)
		}
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return "", a.fail(0, "no answer: "+err.Error())
	}
	defer func() {
		// Read a little of what is left, so the connection can be reused.
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		_ = resp.Body.Close()
	}()
	mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if resp.StatusCode != http.StatusOK {
		snippet, _ := io.ReadAll(io.LimitReader(resp.Body, 200))
		return "", a.fail(resp.StatusCode, strings.TrimSpace(string(snippet)))
	}
	var reply string
	switch mt {
	case "application/json":
		reply, err = a.readJSON(resp)
	case "text/event-stream":
		reply, err = a.readStream(t, resp)
	default:
		return "", a.fail(resp.StatusCode, fmt.Sprintf("unexpected content type %q (want application/json or text/event-stream)", mt))
	}
	if ctx.Err() != nil {
		return "", a.ctxError(ctx)
	}
	return reply, err
}

// readJSON reads a {"reply": "..."} answer.
func (a *httpAgent) readJSON(resp *http.Response) (string, error) {
	var out struct {
		Reply *string `json:"reply"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxUpstreamReply)).Decode(&out); err != nil {
		return "", a.fail(resp.StatusCode, "bad JSON reply: "+err.Error())
	}
	if out.Reply == nil {
		return "", a.fail(resp.StatusCode, `JSON reply without a "reply" string`)
	}
	return *out.Reply, nil
}

// readStream reads server-sent events until the stream ends, reporting
// each event's data as a delta.
func (a *httpAgent) readStream(t Turn, resp *http.Response) (string, error) {
	var reply strings.Builder
	var data []string
	pending := 0 // bytes in data, bounded like the reply
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 4096), maxUpstreamReply)
	dispatch := func() {
		if data != nil {
			d := strings.Join(data, "\n")
			reply.WriteString(d)
			t.Delta(d)
			data, pending = nil, 0
		}
	}
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			dispatch()
		case strings.HasPrefix(line, ":"): // a comment
		case line == "data" || strings.HasPrefix(line, "data:"):
			v := strings.TrimPrefix(strings.TrimPrefix(line, "data"), ":")
			data = append(data, strings.TrimPrefix(v, " "))
			pending += len(v)
		}
		if reply.Len()+pending > maxUpstreamReply {
			return "", a.fail(resp.StatusCode, "streamed reply too large")
		}
	}
	if err := sc.Err(); err != nil {
		return "", a.fail(resp.StatusCode, "stream broken: "+err.Error())
	}
	dispatch() // a last event without its blank line
	return reply.String(), nil
}

// ctxError is the error of a turn whose context ended: the cause (an
// interrupt, a gone client) or a timeout of --agent-timeout.
func (a *httpAgent) ctxError(ctx context.Context) error {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) && context.Cause(ctx) == context.DeadlineExceeded {
		ue := a.fail(0, fmt.Sprintf("timed out after %v", a.timeout))
		ue.Timeout = a.timeout
		return ue
	}
	return context.Cause(ctx)
}

func (a *httpAgent) fail(status int, reason string) *UpstreamError {
	return &UpstreamError{URL: a.url, Status: status, Reason: reason}
}
