package server

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

	"github.com/quiesce-dev/quiesce/fsm"
	"github.com/quiesce-dev/quiesce/gateway"
)

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
// it with NewClient. It is safe for concurrent use.
type Client struct {
	base  *url.URL
	token string
	hc    *http.Client
}

// NewClient returns a Client for the server at baseURL (e.g.
// http://127.0.0.1:8470) that authenticates with token. hc may be nil
// (http.DefaultClient); bound each call with its context.
func NewClient(baseURL, token string, hc *http.Client) (*Client, error) {
	u, err := url.Parse(strings.TrimRight(baseURL, "/"))
	if err != nil {
		return nil, fmt.Errorf("server: client url: %w", err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("server: client url %q: want http://host:port", baseURL)
	}
	if hc == nil {
		hc = http.DefaultClient
	}
	return &Client{base: u, token: token, hc: hc}, nil
}

// Drain asks for a drain. The gateway refuses new turns once it returns.
func (c *Client) Drain(ctx context.Context, suppressNotification bool, requestID string) (DrainResponse, error) {
	action := ActionDrain
	var out DrainResponse
	err := c.do(ctx, http.MethodPost, "/api/gateway/drain", nil,
		DrainBody{Action: &action, SuppressNotification: suppressNotification, RequestID: requestID}, &out)
	return out, err
}

// Cancel cancels the drain (the active one, or only the one named by a
// non-empty requestID; another gives an *APIError with status 409).
func (c *Client) Cancel(ctx context.Context, requestID string) (CancelResponse, error) {
	action := ActionCancel
	var out CancelResponse
	err := c.do(ctx, http.MethodPost, "/api/gateway/drain", nil, DrainBody{Action: &action, RequestID: requestID}, &out)
	return out, err
}

// Status returns the gateway's status.
func (c *Client) Status(ctx context.Context) (gateway.Status, error) {
	var out StatusResponse
	err := c.do(ctx, http.MethodGet, "/api/gateway/status", nil, nil, &out)
	return out.Status, err
}

// WaitIdle long-polls the status until no turn is in flight or the server
// side timeout passes, and reports which happened. ctx should outlive
// timeout by a little.
func (c *Client) WaitIdle(ctx context.Context, timeout time.Duration) (st gateway.Status, idle bool, err error) {
	q := url.Values{"wait": {"idle"}, "timeout": {timeout.String()}}
	var out StatusResponse
	if err := c.do(ctx, http.MethodGet, "/api/gateway/status", q, nil, &out); err != nil {
		return gateway.Status{}, false, err
	}
	return out.Status, out.Idle != nil && *out.Idle, nil
}

// Shutdown starts the shutdown sequence (force: interrupt remaining turns
// now) and returns without waiting for it.
func (c *Client) Shutdown(ctx context.Context, force bool) (ShutdownResponse, error) {
	var out ShutdownResponse
	err := c.do(ctx, http.MethodPost, "/api/gateway/shutdown", nil, ShutdownBody{Force: force}, &out)
	return out, err
}

// Send runs one turn for session and returns the reply.
func (c *Client) Send(ctx context.Context, session, text string) (string, error) {
	var out MessageResponse
	err := c.do(ctx, http.MethodPost, "/v1/sessions/"+url.PathEscape(session)+"/messages", nil, MessageBody{Text: text}, &out)
	return out.Reply, err
}

func (c *Client) do(ctx context.Context, method, path string, q url.Values, in, out any) error {
	u := *c.base
	u.Path += path
	u.RawQuery = q.Encode()
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("server: client: encode %s: %w", path, err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), body)
	if err != nil {
		return fmt.Errorf("server: client: %w", err)
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	resp, err := c.hc.Do(req)
	if err != nil {
		return fmt.Errorf("server: client: %s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("server: client: %s %s: read answer: %w", method, path, err)
	}
	if resp.StatusCode >= 300 {
		e := &APIError{StatusCode: resp.StatusCode}
		var eb ErrorBody
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
		return fmt.Errorf("server: client: %s %s: decode answer: %w", method, path, err)
	}
	return nil
}

// IsAPIError reports whether err is an *APIError with the given status.
func IsAPIError(err error, status int) bool {
	e, ok := errors.AsType[*APIError](err)
	return ok && e.StatusCode == status
}
