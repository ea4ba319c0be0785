package notify

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"time"
)

// Webhook defaults, used when the matching WebhookOptions field is zero.
const (
	// DefaultTryTimeout bounds one HTTP attempt.
	DefaultTryTimeout = 1 * time.Second
	// DefaultBaseBackoff is the wait before the second attempt; each later
	// wait doubles, up to MaxBackoff, with jitter.
	DefaultBaseBackoff = 100 * time.Millisecond
	// DefaultMaxTries is how many attempts Send makes before giving up.
	DefaultMaxTries = 5
	// MaxBackoff caps the wait between two attempts.
	MaxBackoff = 2 * time.Second
)

// maxDrain is how much of a response body Send reads before closing it.
const maxDrain = 64 << 10

// WebhookOptions tunes a Webhook. The zero value gives the defaults.
type WebhookOptions struct {
	// Client sends the requests. Nil means a client of the Webhook's own that
	// does not keep idle connections, so a Webhook leaves no goroutines
	// behind once Send returns, and that follows only 307 and 308 redirects
	// (the others would turn the POST into a GET without the message).
	Client *http.Client
	// TryTimeout bounds each attempt (default DefaultTryTimeout).
	TryTimeout time.Duration
	// BaseBackoff is the first wait between attempts (default
	// DefaultBaseBackoff).
	BaseBackoff time.Duration
	// MaxTries is the number of attempts (default DefaultMaxTries).
	MaxTries int
}

// Webhook is a Sink that POSTs each message as JSON to a URL. It is safe for
// concurrent use.
//
// A 2xx response means delivered. 408, 429, 5xx, network errors and attempts
// that exceed the try timeout are retried with exponential backoff and
// jitter while tries remain and ctx allows; any other status is a permanent
// failure and is not retried. Each request carries Content-Type
// application/json and an Idempotency-Key header holding Message.ID, since a
// retried message may arrive twice.
//
// The URL's path and query often hold a secret (chat webhooks), so errors and
// String show only its scheme and host.
type Webhook struct {
	url    string
	name   string // redacted url for errors and logs
	valid  bool   // url is absolute http or https with a host
	client *http.Client
	opt    WebhookOptions
}

// NewWebhook returns a Webhook posting to rawURL. A URL that is not an
// absolute http or https URL makes every Send fail permanently.
func NewWebhook(rawURL string, opt WebhookOptions) *Webhook {
	if opt.TryTimeout <= 0 {
		opt.TryTimeout = DefaultTryTimeout
	}
	if opt.BaseBackoff <= 0 {
		opt.BaseBackoff = DefaultBaseBackoff
	}
	if opt.MaxTries <= 0 {
		opt.MaxTries = DefaultMaxTries
	}
	client := opt.Client
	if client == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.DisableKeepAlives = true
		client = &http.Client{Transport: t, CheckRedirect: checkRedirect}
	}
	w := &Webhook{url: rawURL, name: "(invalid URL)", client: client, opt: opt}
	if u, err := url.Parse(rawURL); err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != "" {
		w.valid = true
		w.name = u.Scheme + "://" + u.Host
	}
	return w
}

// String returns "webhook " and the URL's scheme and host.
func (w *Webhook) String() string { return "webhook " + w.name }

// Send posts m until it is delivered, it fails permanently, the tries run
// out or ctx is done, whichever comes first. It gives up early when ctx's
// deadline falls before the next attempt. The returned error wraps the last
// attempt's error and, when ctx ended the retries, ctx.Err().
func (w *Webhook) Send(ctx context.Context, m Message) error {
	body, err := encode(m)
	if err != nil {
		return err
	}
	id := m.ID()
	var last error
	for try := 1; ; try++ {
		if err := ctx.Err(); err != nil {
			return w.gaveUp(id, try-1, err, last)
		}
		permanent, err := w.try(ctx, id, body)
		if err == nil {
			return nil
		}
		last = err
		if ctx.Err() != nil {
			continue // reported at the top of the loop
		}
		if permanent {
			return fmt.Errorf("notify: %s: %s: permanent failure: %w", w, id, err)
		}
		if try >= w.opt.MaxTries {
			return fmt.Errorf("notify: %s: %s: gave up after %d tries: %w", w, id, try, err)
		}
		wait := w.backoff(try)
		if dl, ok := ctx.Deadline(); ok && time.Until(dl) < wait {
			return w.gaveUp(id, try, context.DeadlineExceeded, last)
		}
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return w.gaveUp(id, try, ctx.Err(), last)
		}
	}
}

// gaveUp returns the error for retries ended by ctx (or its deadline) after
// tries attempts, the last of which failed with last (nil if none was made).
func (w *Webhook) gaveUp(id string, tries int, ctxErr, last error) error {
	if last == nil {
		return fmt.Errorf("notify: %s: %s: not sent: %w", w, id, ctxErr)
	}
	return fmt.Errorf("notify: %s: %s: gave up after %d tries: %w (last: %w)", w, id, tries, ctxErr, last)
}

// try makes one attempt and reports whether its failure is permanent.
func (w *Webhook) try(ctx context.Context, id string, body []byte) (permanent bool, err error) {
	if !w.valid {
		return true, errors.New("invalid URL: want an absolute http or https URL")
	}
	tctx, cancel := context.WithTimeout(ctx, w.opt.TryTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(tctx, http.MethodPost, w.url, bytes.NewReader(body))
	if err != nil {
		return true, errors.New("invalid URL") // the parse error would repeat the URL
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Idempotency-Key", id)
	req.Header.Set("User-Agent", "quiesce-notify")
	resp, err := w.client.Do(req)
	if err != nil {
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err // drop the URL, which may hold a secret
		}
		if ctx.Err() == nil && errors.Is(tctx.Err(), context.DeadlineExceeded) {
			err = fmt.Errorf("try timed out after %v: %w", w.opt.TryTimeout, err)
		}
		return false, err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxDrain))
	_ = resp.Body.Close()
	switch code := resp.StatusCode; {
	case code >= 200 && code <= 299:
		return false, nil
	case code == http.StatusRequestTimeout, code == http.StatusTooManyRequests, code >= 500:
		return false, fmt.Errorf("status %d", code)
	default:
		return true, fmt.Errorf("status %d", code)
	}
}

// backoff returns the wait after the given failed try: BaseBackoff doubled
// per try, capped at MaxBackoff, with equal jitter (between half and all of
// it).
func (w *Webhook) backoff(try int) time.Duration {
	d := w.opt.BaseBackoff
	for i := 1; i < try && d < MaxBackoff; i++ {
		d *= 2
	}
	d = min(d, MaxBackoff)
	half := d / 2
	return half + rand.N(d-half+1)
}

// maxRedirects is how many 307/308 redirects the default client follows.
const maxRedirects = 5

// checkRedirect follows a redirect only when it keeps the method and body
// (307, 308); any other redirect is returned as the response, and fails.
func checkRedirect(req *http.Request, via []*http.Request) error {
	if req.Response == nil {
		return http.ErrUseLastResponse
	}
	switch req.Response.StatusCode {
	case http.StatusTemporaryRedirect, http.StatusPermanentRedirect:
		if len(via) > maxRedirects {
			return http.ErrUseLastResponse
		}
		return nil
	}
	return http.ErrUseLastResponse
}
