package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"syscall"
	"time"

	"github.com/quiesce-dev/quiesce/api"
	"github.com/quiesce-dev/quiesce/client"
	"github.com/quiesce-dev/quiesce/gateway"
)

// httpControl is a control over the HTTP API. Its errors are already
// explained for the user (see explain).
type httpControl struct {
	c *client.Client
	// tokenSource names where the token came from, for a 401.
	tokenSource string
}

// call bounds one request with requestTimeout.
func call[T any](ctx context.Context, h *httpControl, f func(context.Context) (T, error)) (T, error) {
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	v, err := f(ctx)
	return v, h.explain(err)
}

// Drain asks for a drain; an announce (req.Announce) makes the gateway
// answer only when its window has ended, so the call's bound grows by it.
func (h *httpControl) Drain(ctx context.Context, req gateway.DrainRequest) (drainResult, error) {
	body := api.DrainBody{SuppressNotification: req.SuppressNotification, RequestID: req.RequestID, Reason: req.Reason}
	if req.Announce > 0 {
		secs := req.Announce.Seconds()
		body.AnnounceSeconds = &secs
	}
	ctx, cancel := context.WithTimeout(ctx, req.Announce+requestTimeout)
	defer cancel()
	res, err := h.c.DrainWith(ctx, body)
	return drainResult{DrainResponse: res}, h.explain(err)
}

func (h *httpControl) Cancel(ctx context.Context, requestID string) (cancelResult, error) {
	res, err := call(ctx, h, func(ctx context.Context) (api.CancelResponse, error) {
		return h.c.Cancel(ctx, requestID)
	})
	return cancelResult{CancelResponse: res}, err
}

func (h *httpControl) Status(ctx context.Context) (api.Status, error) {
	return call(ctx, h, h.c.Status)
}

// Describe is Status, as the API answers it.
func (h *httpControl) Describe(ctx context.Context) (statusView, error) {
	st, err := h.Status(ctx)
	return statusView{Status: st}, err
}

// WaitIdle long-polls status?wait=idle: the server answers the moment the
// last turn ends.
func (h *httpControl) WaitIdle(ctx context.Context, within time.Duration) (api.Status, bool, error) {
	ctx, cancel := context.WithTimeout(ctx, within+requestTimeout)
	defer cancel()
	st, idle, err := h.c.WaitIdle(ctx, within)
	return st, idle, h.explain(err)
}

func (h *httpControl) Shutdown(ctx context.Context, force bool) (shutdownResult, error) {
	res, err := call(ctx, h, func(ctx context.Context) (api.ShutdownResponse, error) {
		return h.c.Shutdown(ctx, force)
	})
	return shutdownResult{ShutdownResponse: res}, err
}

// WaitExited waits for the turns to end (a long-poll), then checks
// /healthz every exitPollInterval until the connection is refused: the
// server closes its listener last, as the process exits. Any other
// failure (a reset while it closes, a slow answer) is retried.
func (h *httpControl) WaitExited(ctx context.Context) error {
	if dl, ok := ctx.Deadline(); ok {
		if _, _, err := h.WaitIdle(ctx, max(time.Until(dl), time.Millisecond)); errors.Is(err, syscall.ECONNREFUSED) {
			return nil
		}
	}
	tick := time.NewTicker(exitPollInterval)
	defer tick.Stop()
	for {
		hctx, cancel := context.WithTimeout(ctx, requestTimeout)
		err := h.c.Health(hctx)
		cancel()
		if errors.Is(err, syscall.ECONNREFUSED) {
			return nil
		}
		select {
		case <-ctx.Done():
			return &hintError{err: ctx.Err(), msg: fmt.Sprintf("the gateway at %s still answers", h.c.URL())}
		case <-tick.C:
		}
	}
}

// explain turns a client error into a message that says what to do.
func (h *httpControl) explain(err error) error {
	if err == nil {
		return nil
	}
	url := h.c.URL()
	if errors.Is(err, syscall.ECONNREFUSED) {
		return &hintError{err: err, msg: fmt.Sprintf(
			"cannot reach the gateway at %s: connection refused. Is the gateway running? Is --url (QUIESCE_URL) right?", url)}
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return &hintError{err: err, msg: fmt.Sprintf(
			"the gateway at %s did not answer within %v. Is --url (QUIESCE_URL) right, and the gateway not overloaded?", url, requestTimeout)}
	}
	if errors.Is(err, client.ErrUnreachable) {
		cause := strings.TrimPrefix(err.Error(), client.ErrUnreachable.Error()+": ")
		return &hintError{err: err, msg: fmt.Sprintf("cannot reach the gateway at %s (%s). Is --url (QUIESCE_URL) right?", url, cause)}
	}
	e, ok := errors.AsType[*client.APIError](err)
	if !ok {
		return err
	}
	var msg string
	switch {
	case e.StatusCode == http.StatusUnauthorized:
		msg = fmt.Sprintf("the gateway at %s refused the token from %s (401 unauthorized). "+
			"Check that it is one of the tokens in the gateway's tokens file ($QUIESCE_HOME/tokens where it runs, "+
			"\"principal token\" lines; after editing that file, SIGHUP the gateway to reload it)", url, h.tokenSource)
		if h.tokenSource == tokenEnv {
			msg += "; QUIESCE_TOKEN wins over --tokens-file: unset it to use the file"
		}
	case e.Code == api.CodeConflict:
		msg = e.Message + ". Run 'quiesce status' to see the active drain; 'quiesce cancel' without --request-id cancels whichever is active"
	case e.Code == api.CodeMarkerUnusable, e.Code == api.CodeMarkerUnwritable:
		msg = e.Message
	case e.Code == api.CodeShuttingDown:
		msg = shuttingDownHint
	case e.StatusCode == http.StatusNotFound:
		msg = fmt.Sprintf("%s answered 404: is --url (QUIESCE_URL) the gateway's base URL, like http://127.0.0.1:8470, with no path?", url)
	default:
		msg = fmt.Sprintf("the gateway at %s answered %v", url, e)
	}
	return &hintError{err: err, msg: msg}
}
