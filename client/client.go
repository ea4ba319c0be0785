package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/quiesce-dev/quiesce/api"
	"github.com/quiesce-dev/quiesce/fsm"
)

// ErrUnreachable is wrapped by Client methods when the request got no
// answer from the server at all: the connection was refused or reset, the
// name did not resolve, or ctx ended first. The error also wraps the
// transport's cause, so errors.Is(err, syscall.ECONNREFUSED) tells a
// server that is not listening (a gateway that has exited) from one that
// is slow.
var ErrUnreachable = errors.New("gateway unreachable")

// APIError is returned by Client methods when the server answers with an
// error status. Code and Message come from the JSON error body.
type APIError struct {
	StatusCode int
	Code       string
	Message    string
	State      fsm.State
	RetryAfter time.Duration // from the Retry-After header of a 503
}

// Error implements error.
func (e *APIError) Error() string {
	msg := fmt.Sprintf("HTTP %d %s", e.StatusCode, e.Code)
	if e.Message != "" {
		msg += ": " + e.Message
	}
	return msg
}

// Client calls the quiesce HTTP API. The zero value is not usable; create
// it with New. It is safe for concurrent use.
//
// Its errors carry no package prefix, so a CLI can show them as they are:
// an *APIError for an error answer, ErrUnreachable (with the method, the
// URL and the transport's cause) when no answer came.
type Client struct {
	base  *url.URL
	token string
	hc    *http.Client
}

// New returns a Client for the server at baseURL (e.g.
// http://127.0.0.1:8470) that authenticates with token. hc may be nil
// (http.DefaultClient); bound each call with its context.
func New(baseURL, token string, hc *http.Client) (*Client, error) {
	u, err := url.Parse(strings.TrimRight(baseURL, "/"))
	if err != nil {
		return nil, fmt.Errorf("url %q: %w", baseURL, err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("url %q: want http://host:port", baseURL)
	}
	if hc == nil {
		hc = http.DefaultClient
	}
	return &Client{base: u, token: token, hc: hc}, nil
}

// URL returns the server's base URL, as given to New without a
// trailing slash.
func (c *Client) URL() string { return c.base.String() }

// Drain asks for a drain, with suppress_notification always given (a
// refresh of the drain named by requestID sets the flag too; DrainWith
// can leave it as it is). The gateway refuses new turns once it returns.
func (c *Client) Drain(ctx context.Context, suppressNotification bool, requestID string) (api.DrainResponse, error) {
	return c.DrainWith(ctx, api.DrainBody{SuppressNotification: &suppressNotification, RequestID: requestID})
}

// DrainWith asks for a drain with body (its Action is set to "drain"):
// nil fields are left out, so a drain naming the active request id
// refreshes it and keeps what body does not give. A marker the gateway
// could not write gives an *APIError with status 503 and code
// marker_unwritable: the gateway is draining all the same. With
// AnnounceSeconds the answer comes only when the announce window has
// ended (ctx must allow for it); a cancel during the window gives an
// *APIError 409 drain_cancelled.
func (c *Client) DrainWith(ctx context.Context, body api.DrainBody) (api.DrainResponse, error) {
	action := api.ActionDrain
	body.Action = &action
	var out api.DrainResponse
	err := c.do(ctx, http.MethodPost, "/api/gateway/drain", nil, body, &out)
	return out, err
}

// Cancel cancels the drain (the active one, or only the one named by a
// non-empty requestID; another gives an *APIError with status 409).
func (c *Client) Cancel(ctx context.Context, requestID string) (api.CancelResponse, error) {
	action := api.ActionCancel
	var out api.CancelResponse
	err := c.do(ctx, http.MethodPost, "/api/gateway/drain", nil, api.DrainBody{Action: &action, RequestID: requestID}, &out)
	return out, err
}

// Status returns the gateway's status.
func (c *Client) Status(ctx context.Context) (api.Status, error) {
	var out api.StatusResponse
	err := c.do(ctx, http.MethodGet, "/api/gateway/status", nil, nil, &out)
	return out.Status, err
}

// Turns returns the turns in flight, oldest first.
func (c *Client) Turns(ctx context.Context) ([]api.TurnInfo, error) {
	var out api.TurnsResponse
	err := c.do(ctx, http.MethodGet, api.TurnsPath, nil, nil, &out)
	return out.Turns, err
}

// History returns the gateway's last lifecycle events, oldest first.
func (c *Client) History(ctx context.Context) ([]api.HistoryEntry, error) {
	var out api.HistoryResponse
	err := c.do(ctx, http.MethodGet, api.HistoryPath, nil, nil, &out)
	return out.Events, err
}

// WaitIdle long-polls the status (GET /api/gateway/status?wait=idle)
// until no turn is in flight or the server-side timeout passes, and
// reports which happened. The server answers at once when the gateway is
// already idle, and caps timeout at its MaxWaitTimeout (server.MaxWaitTimeout). ctx should outlive
// timeout by a little (the answer has to travel back).
func (c *Client) WaitIdle(ctx context.Context, timeout time.Duration) (st api.Status, idle bool, err error) {
	q := url.Values{"wait": {"idle"}, "timeout": {timeout.String()}}
	var out api.StatusResponse
	if err := c.do(ctx, http.MethodGet, "/api/gateway/status", q, nil, &out); err != nil {
		return api.Status{}, false, err
	}
	return out.Status, out.Idle != nil && *out.Idle, nil
}

// Health calls GET /healthz (no token needed): nil while the process
// serves. After a shutdown it fails with ErrUnreachable, and with
// syscall.ECONNREFUSED once the server has closed its listener.
func (c *Client) Health(ctx context.Context) error {
	var out api.HealthResponse
	return c.do(ctx, http.MethodGet, "/healthz", nil, nil, &out)
}

// Shutdown starts the shutdown sequence (force: interrupt remaining turns
// now) and returns without waiting for it.
func (c *Client) Shutdown(ctx context.Context, force bool) (api.ShutdownResponse, error) {
	var out api.ShutdownResponse
	err := c.do(ctx, http.MethodPost, "/api/gateway/shutdown", nil, api.ShutdownBody{Force: force}, &out)
	return out, err
}

// ReplayEvents moves the rejected internal events back into the spool
// (POST /api/gateway/events/replay).
func (c *Client) ReplayEvents(ctx context.Context) (api.ReplayResponse, error) {
	var out api.ReplayResponse
	err := c.do(ctx, http.MethodPost, "/api/gateway/events/replay", nil, api.ReplayBody{}, &out)
	return out, err
}

// Send runs one turn for session and returns the reply.
func (c *Client) Send(ctx context.Context, session, text string) (string, error) {
	var out api.MessageResponse
	err := c.do(ctx, http.MethodPost, "/v1/sessions/"+url.PathEscape(session)+"/messages", nil, api.MessageBody{Text: text}, &out)
	return out.Reply, err
}

// do sends one request and decodes its JSON answer into out. path is the
// request's path, escaped: a session id in it went through
// url.PathEscape, and the server gets it so, escaped once.
func (c *Client) do(ctx context.Context, method, path string, q url.Values, in, out any) error {
	unescaped, err := url.PathUnescape(path)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	u := *c.base
	u.Path += unescaped
	u.RawPath = c.base.EscapedPath() + path
	u.RawQuery = q.Encode()
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("encode the body of %s %s: %w", method, path, err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), body)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	resp, err := c.hc.Do(req)
	if err != nil {
		return unreachable(method, u.Redacted(), err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return unreachable(method, u.Redacted(), fmt.Errorf("read the answer: %w", err))
	}
	if resp.StatusCode >= 300 {
		e := &APIError{StatusCode: resp.StatusCode}
		var eb api.ErrorBody
		if json.Unmarshal(data, &eb) == nil {
			e.Code, e.Message, e.State = eb.Error, eb.Message, eb.State
		} else {
			e.Message = strings.TrimSpace(string(data))
		}
		if secs, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil {
			e.RetryAfter = time.Duration(secs) * time.Second
		}
		return e
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("%s %s: the answer is not the API's JSON (is the URL a quiesce gateway?): %w", method, u.Redacted(), err)
	}
	return nil
}

// unreachable wraps a transport failure in ErrUnreachable, naming the
// request once: the *url.Error's own text repeats the method and URL.
func unreachable(method, u string, err error) error {
	if ue, ok := errors.AsType[*url.Error](err); ok {
		err = ue.Err
	}
	return fmt.Errorf("%w: %s %s: %w", ErrUnreachable, method, u, err)
}

// IsAPIError reports whether err is an *APIError with the given status.
func IsAPIError(err error, status int) bool {
	e, ok := errors.AsType[*APIError](err)
	return ok && e.StatusCode == status
}
