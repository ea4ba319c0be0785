package notify

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Webhook defaults and limits.
const (
	// DefaultTryTimeout bounds one HTTP attempt.
	DefaultTryTimeout = 1 * time.Second
	// DefaultBaseBackoff is the wait before the second attempt; each later
	// wait doubles, up to MaxBackoff, with jitter.
	DefaultBaseBackoff = 100 * time.Millisecond
	// DefaultMaxTries is how many attempts Send makes before giving up.
	DefaultMaxTries = 5
	// MaxBackoff caps the exponential backoff between two attempts (a
	// Retry-After the receiver sends is honoured beyond it, up to
	// MaxRetryAfter).
	MaxBackoff = 1 * time.Second
	// DefaultConcurrency is how many messages a Webhook sends at once, to a
	// Notifier (see ConcurrentSink) and in Redeliver.
	DefaultConcurrency = 8
	// MaxRetryAfter is the longest Retry-After Send waits for; a receiver
	// asking for more makes Send give up on the message at once (a
	// Notifier then keeps it for Redeliver).
	MaxRetryAfter = 1 * time.Minute
	// DefaultPendingMax is how many messages the pending file holds at
	// most (WebhookOptions.PendingMax); past it the oldest session pings
	// are dropped first, never the latest broadcast.
	DefaultPendingMax = 100_000
	// DefaultRedeliverBackoff is the first wait between two redelivery
	// rounds that failed (RunRedelivery); each later wait doubles, up to
	// DefaultRedeliverBackoffMax, with jitter.
	DefaultRedeliverBackoff = 1 * time.Second
	// DefaultRedeliverBackoffMax caps the wait between two redelivery
	// rounds, so a receiver that comes back gets what is pending within
	// about this long.
	DefaultRedeliverBackoffMax = 30 * time.Second
)

// webhookLabel names a Webhook for an Observer.
const webhookLabel = "webhook"

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
	// DefaultBaseBackoff); the waits are capped at MaxBackoff.
	BaseBackoff time.Duration
	// MaxTries is the number of attempts (default DefaultMaxTries).
	MaxTries int
	// Concurrency is how many messages are sent at once (default
	// DefaultConcurrency, at most 64).
	Concurrency int
	// PendingPath, if set, is the file (conventionally
	// $QUIESCE_HOME/webhook.pending.jsonl) where Keep records the messages
	// that could not be delivered, and that RunRedelivery sends while the
	// gateway runs (and at the next start). Empty means nothing is kept.
	PendingPath string
	// PendingMax is how many messages the pending file holds at most
	// (default DefaultPendingMax). Past it the oldest session pings are
	// dropped first, then older broadcasts, never the latest broadcast;
	// each drop is logged at WARN and told to the Observer as
	// ResultDropped.
	PendingMax int
	// RedeliverBackoff is the first wait after a redelivery round that
	// failed (default DefaultRedeliverBackoff); the waits double up to
	// RedeliverBackoffMax.
	RedeliverBackoff time.Duration
	// RedeliverBackoffMax caps the wait between two redelivery rounds
	// (default DefaultRedeliverBackoffMax; never below RedeliverBackoff).
	RedeliverBackoffMax time.Duration
	// Logger gets the drops (WARN) and the redelivery rounds; nil means
	// slog.Default().
	Logger *slog.Logger
	// Observer, if set, is told (sink "webhook") ResultRetried before each
	// wait between two tries, the outcome of each message Redeliver
	// sends, and ResultDropped for each message the pending limit drops. The outcome of a message a Notifier sends is reported by the
	// Notifier's own Observer, so both can feed one counter without
	// counting anything twice.
	Observer Observer
	// Sleep, if set, replaces the wait between two tries (a test seam): it
	// must wait d or until ctx is done, and return ctx.Err() in that case.
	Sleep func(ctx context.Context, d time.Duration) error
	// Now, if set, replaces time.Now as the clock an HTTP-date Retry-After
	// is measured against (a test seam). Context deadlines are always
	// measured against the real clock.
	Now func() time.Time
}

// Webhook is a Sink that POSTs each message as JSON to a URL. It is safe for
// concurrent use, and as a ConcurrentSink a Notifier sends it up to
// Concurrency messages at once.
//
// A 2xx response means delivered. 408, 429, 5xx, network errors and attempts
// that exceed the try timeout are retried with capped exponential backoff
// and jitter while tries remain and ctx allows; on 429 and 503 a Retry-After
// header (delta-seconds or HTTP-date) replaces the backoff, and when it
// would pass ctx's deadline (or MaxRetryAfter) Send gives up at once instead
// of sleeping into it. Any other status is a permanent failure and is not
// retried. Each request carries Content-Type application/json and an
// Idempotency-Key header holding Message.ID, the same on every try and on
// every redelivery, since a message may arrive more than once.
//
// With WebhookOptions.PendingPath set, a Webhook is also a Keeper: what a
// Notifier could not deliver is appended to that file, and RunRedelivery
// sends it while the gateway runs, retrying with capped backoff.
//
// The URL's path and query often hold a secret (chat webhooks), so errors and
// String show only its scheme and host.
type Webhook struct {
	url    string
	name   string // redacted url for errors and logs
	valid  bool   // url is absolute http or https with a host
	client *http.Client
	opt    WebhookOptions

	// pendMu serialises Keep's appends to the pending file and
	// Redeliver's reads and rewrites of it; it guards pendKnown.
	pendMu sync.Mutex
	// pendKnown reports that pending holds the file's count (it was read
	// once by this Webhook).
	pendKnown bool
	// pending mirrors how many messages the pending file holds, for
	// Pending without the lock (written under pendMu).
	pending atomic.Int64
	// onPending is the OnPendingChange function; atomic because it may be
	// set while a Notifier's goroutine calls Keep.
	onPending atomic.Pointer[func()]
	// wake (capacity 1) tells RunRedelivery that Keep added something.
	wake chan struct{}
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
	if opt.Concurrency <= 0 {
		opt.Concurrency = DefaultConcurrency
	}
	opt.Concurrency = min(opt.Concurrency, maxLanes)
	if opt.Sleep == nil {
		opt.Sleep = sleep
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.PendingMax <= 0 {
		opt.PendingMax = DefaultPendingMax
	}
	if opt.RedeliverBackoff <= 0 {
		opt.RedeliverBackoff = DefaultRedeliverBackoff
	}
	if opt.RedeliverBackoffMax <= 0 {
		opt.RedeliverBackoffMax = DefaultRedeliverBackoffMax
	}
	opt.RedeliverBackoffMax = max(opt.RedeliverBackoffMax, opt.RedeliverBackoff)
	if opt.Logger == nil {
		opt.Logger = slog.Default()
	}
	client := opt.Client
	if client == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.DisableKeepAlives = true
		client = &http.Client{Transport: t, CheckRedirect: checkRedirect}
	}
	w := &Webhook{url: rawURL, name: "(invalid URL)", client: client, opt: opt, wake: make(chan struct{}, 1)}
	if u, err := url.Parse(rawURL); err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != "" {
		w.valid = true
		w.name = u.Scheme + "://" + u.Host
	}
	return w
}

// String returns "webhook " and the URL's scheme and host.
func (w *Webhook) String() string { return "webhook " + w.name }

// Concurrency returns how many messages the Webhook sends at once.
func (w *Webhook) Concurrency() int { return w.opt.Concurrency }

// Send posts m until it is delivered, it fails permanently, the tries run
// out or ctx is done, whichever comes first. It gives up early when ctx's
// deadline (or MaxRetryAfter) falls before the next attempt. The returned
// error wraps the last attempt's error and, when ctx ended the retries,
// ctx.Err() or context.DeadlineExceeded.
func (w *Webhook) Send(ctx context.Context, m Message) error {
	_, err := w.deliver(ctx, m)
	return err
}

// deliver is Send, also reporting whether a failure is permanent.
func (w *Webhook) deliver(ctx context.Context, m Message) (permanent bool, err error) {
	body, err := encode(m)
	if err != nil {
		return true, err
	}
	id := m.ID()
	var last error
	for try := 1; ; try++ {
		if err := ctx.Err(); err != nil {
			return false, w.gaveUp(id, try-1, err, last)
		}
		res := w.try(ctx, id, body)
		if res.err == nil {
			return false, nil
		}
		last = res.err
		if ctx.Err() != nil {
			continue // reported at the top of the loop
		}
		if res.permanent {
			return true, fmt.Errorf("notify: %s: %s: permanent failure: %w", w, id, res.err)
		}
		if try >= w.opt.MaxTries {
			return false, fmt.Errorf("notify: %s: %s: gave up after %d tries: %w", w, id, try, res.err)
		}
		wait := w.backoff(try)
		if res.retryAfter >= 0 {
			wait = res.retryAfter
			if wait > MaxRetryAfter {
				return false, fmt.Errorf("notify: %s: %s: gave up after %d tries: Retry-After %v exceeds %v: %w",
					w, id, try, wait, MaxRetryAfter, res.err)
			}
		}
		if dl, ok := ctx.Deadline(); ok && time.Until(dl) <= wait {
			return false, w.gaveUp(id, try, context.DeadlineExceeded, last)
		}
		w.opt.Observer.observe(webhookLabel, ResultRetried)
		if err := w.opt.Sleep(ctx, wait); err != nil {
			return false, w.gaveUp(id, try, err, last)
		}
	}
}

// sleep waits d or until ctx is done.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
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

// tryResult is the outcome of one attempt.
type tryResult struct {
	err        error         // nil: delivered
	permanent  bool          // do not retry
	retryAfter time.Duration // the receiver's Retry-After, or -1
}

// try makes one attempt.
func (w *Webhook) try(ctx context.Context, id string, body []byte) tryResult {
	res := tryResult{retryAfter: -1}
	if !w.valid {
		res.permanent, res.err = true, errors.New("invalid URL: want an absolute http or https URL")
		return res
	}
	tctx, cancel := context.WithTimeout(ctx, w.opt.TryTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(tctx, http.MethodPost, w.url, bytes.NewReader(body))
	if err != nil {
		res.permanent, res.err = true, errors.New("invalid URL") // the parse error would repeat the URL
		return res
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
		res.err = err
		return res
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxDrain))
	_ = resp.Body.Close()
	switch code := resp.StatusCode; {
	case code >= 200 && code <= 299:
	case code == http.StatusTooManyRequests, code == http.StatusServiceUnavailable:
		res.err = fmt.Errorf("status %d", code)
		if d, ok := parseRetryAfter(resp.Header.Get("Retry-After"), w.opt.Now()); ok {
			res.retryAfter = d
		}
	case code == http.StatusRequestTimeout, code >= 500:
		res.err = fmt.Errorf("status %d", code)
	default:
		res.permanent, res.err = true, fmt.Errorf("status %d", code)
	}
	return res
}

// parseRetryAfter parses a Retry-After header value, delta-seconds or an
// HTTP-date (a date in the past means 0), and reports whether it is valid.
// A delay too large to represent is reported as more than MaxRetryAfter.
func parseRetryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if strings.Trim(v, "0123456789") == "" {
		secs, err := strconv.ParseInt(v, 10, 64)
		if err != nil || secs > int64(MaxRetryAfter/time.Second) {
			return MaxRetryAfter + time.Second, true
		}
		return time.Duration(secs) * time.Second, true
	}
	t, err := http.ParseTime(v)
	if err != nil {
		return 0, false
	}
	return max(t.Sub(now), 0), true
}

// backoff returns the wait after the given failed try: BaseBackoff doubled
// per try, capped at MaxBackoff, with equal jitter (between half and all of
// it), so it never exceeds MaxBackoff.
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
