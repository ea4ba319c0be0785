package notify_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/quiesce-dev/quiesce/notify"
)

// hookServer is a loopback webhook receiver that answers with a scripted
// sequence of status codes (the last one repeats) and records what it got.
type hookServer struct {
	*httptest.Server
	hits    atomic.Int64
	mu      sync.Mutex
	bodies  []notify.Message
	headers []http.Header
}

// newHookServer starts a hookServer on 127.0.0.1; the test closes it.
func newHookServer(tb testing.TB, statuses ...int) *hookServer {
	tb.Helper()
	s := &hookServer{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		i := int(s.hits.Add(1)) - 1
		var m notify.Message
		if err := json.NewDecoder(r.Body).Decode(&m); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		s.mu.Lock()
		s.bodies = append(s.bodies, m)
		s.headers = append(s.headers, r.Header.Clone())
		s.mu.Unlock()
		w.WriteHeader(statuses[min(i, len(statuses)-1)])
	}))
	tb.Cleanup(s.Close)
	return s
}

// newSlowServer starts a loopback server whose handler blocks until the
// request is cancelled or the test ends.
func newSlowServer(tb testing.TB) (*httptest.Server, *atomic.Int64) {
	tb.Helper()
	release := make(chan struct{})
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	tb.Cleanup(srv.Close)
	tb.Cleanup(func() { close(release) }) // runs first: unblocks handlers
	return srv, &hits
}

// newDownURL returns the URL of a loopback server that is already closed.
func newDownURL(tb testing.TB) string {
	tb.Helper()
	srv := httptest.NewServer(http.NotFoundHandler())
	srv.Close()
	return srv.URL
}

// fastOptions retries quickly, for unit tests of the retry logic.
var fastOptions = notify.WebhookOptions{TryTimeout: 200 * time.Millisecond, BaseBackoff: time.Millisecond, MaxTries: 5}

func TestWebhookStatuses(t *testing.T) {
	tests := []struct {
		name     string
		statuses []int
		tries    int64
		wantErr  bool
	}{
		{"ok", []int{200}, 1, false},
		{"accepted", []int{202}, 1, false},
		{"flaky", []int{500, 500, 200}, 3, false},
		{"failing", []int{500}, 5, true},
		{"unavailable then ok", []int{503, 204}, 2, false},
		{"request timeout retried", []int{408, 200}, 2, false},
		{"too many requests retried", []int{429, 200}, 2, false},
		{"bad request not retried", []int{400}, 1, true},
		{"not found not retried", []int{404}, 1, true},
		{"unauthorized not retried", []int{401, 200}, 1, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newHookServer(t, tt.statuses...)
			m := ping("sd1", "s1")
			err := notify.NewWebhook(srv.URL+"/hook", fastOptions).Send(context.Background(), m)
			require.Equalf(t, tt.wantErr, (err != nil), "got error %v, want error %v", err, tt.wantErr)
			assert.Falsef(t, err != nil && !strings.HasPrefix(err.Error(), "notify: "), "error %q lacks the package prefix", err)
			got := srv.hits.Load()
			assert.Equalf(t, tt.tries, got, "got %d tries, want %d", got, tt.tries)
			srv.mu.Lock()
			defer srv.mu.Unlock()
			for i, body := range srv.bodies {
				assert.Equalf(t, m.ID(), body.ID(), "try %d: body ID", i+1)
				assert.Equalf(t, m.Text, body.Text, "try %d: body text", i+1)
				assert.Truef(t, body.At.Equal(m.At), "try %d: body at %v, want %v", i+1, body.At, m.At)
				h := srv.headers[i]
				got := h.Get("Content-Type")
				assert.Equalf(t, "application/json", got, "try %d: Content-Type %q", i+1, got)
				got = h.Get("Idempotency-Key")
				assert.Equalf(t, m.ID(), got, "try %d: Idempotency-Key %q, want %q", i+1, got, m.ID())
			}
		})
	}
}

func TestWebhookFailures(t *testing.T) {
	slow, slowHits := newSlowServer(t)
	const secret = "/services/T000/B000/SECRETTOKEN"
	tests := []struct {
		name   string
		url    string
		opt    notify.WebhookOptions
		wantIs error
		hits   *atomic.Int64
		tries  int64
	}{
		{"down", newDownURL(t) + secret, fastOptions, nil, nil, 0},
		{"slow", slow.URL + secret, notify.WebhookOptions{TryTimeout: 50 * time.Millisecond, BaseBackoff: time.Millisecond, MaxTries: 3},
			context.DeadlineExceeded, slowHits, 3},
		{"invalid URL", "http://[::1" + secret, fastOptions, nil, nil, 0},
		{"relative URL", secret, fastOptions, nil, nil, 0},
		{"other scheme", "ftp://127.0.0.1" + secret, fastOptions, nil, nil, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Bounded, so that a try not bounded by TryTimeout (a hung
			// receiver eating the caller's whole budget) fails by assertion.
			ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
			defer cancel()
			err := notify.NewWebhook(tt.url, tt.opt).Send(ctx, ping("sd1", "s1"))
			require.Error(t, err, "got nil error")
			require.NoError(t, ctx.Err(), "Send used up the caller's context: each try must end at TryTimeout")
			if tt.wantIs != nil {
				assert.ErrorIs(t, err, tt.wantIs)
			}
			assert.NotContainsf(t, err.Error(), "SECRET", "error %q leaks the URL path", err)
			if tt.hits != nil {
				got := tt.hits.Load()
				assert.Equalf(t, tt.tries, got, "got %d tries, want %d", got, tt.tries)
			}
		})
	}
}

func TestWebhookHonoursContext(t *testing.T) {
	srv := newHookServer(t, 500)
	slow, _ := newSlowServer(t)
	tests := []struct {
		name   string
		url    string
		opt    notify.WebhookOptions
		ctx    func() (context.Context, context.CancelFunc)
		wantIs error
	}{
		// The deadline falls before the next try: give up at once.
		{"deadline before backoff", srv.URL, notify.WebhookOptions{BaseBackoff: time.Second},
			func() (context.Context, context.CancelFunc) {
				return context.WithTimeout(context.Background(), 300*time.Millisecond)
			},
			context.DeadlineExceeded},
		// Cancelled while waiting between tries.
		{"cancelled in backoff", srv.URL, notify.WebhookOptions{BaseBackoff: time.Second},
			func() (context.Context, context.CancelFunc) {
				ctx, cancel := context.WithCancel(context.Background())
				time.AfterFunc(100*time.Millisecond, cancel)
				return ctx, cancel
			},
			context.Canceled},
		// Cancelled during a try.
		{"cancelled in try", slow.URL, notify.WebhookOptions{TryTimeout: time.Minute},
			func() (context.Context, context.CancelFunc) {
				ctx, cancel := context.WithCancel(context.Background())
				time.AfterFunc(100*time.Millisecond, cancel)
				return ctx, cancel
			},
			context.Canceled},
		{"cancelled before", srv.URL, notify.WebhookOptions{},
			func() (context.Context, context.CancelFunc) {
				ctx, cancel := context.WithCancel(context.Background())
				cancel()
				return ctx, cancel
			},
			context.Canceled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := tt.ctx()
			defer cancel()
			done := make(chan struct{})
			var err error
			go func() {
				defer close(done)
				err = notify.NewWebhook(tt.url, tt.opt).Send(ctx, ping("sd1", "s1"))
			}()
			within(t, 2*time.Second, done, "Send")
			assert.ErrorIsf(t, err, tt.wantIs, "got %v, want errors.Is %v", err, tt.wantIs)
		})
	}
}

// decodeMessage decodes r's body as a Message.
func decodeMessage(r *http.Request) (notify.Message, error) {
	var m notify.Message
	err := json.NewDecoder(r.Body).Decode(&m)
	return m, err
}

func TestWebhookRedirects(t *testing.T) {
	var delivered, fetched atomic.Int64
	mux := http.NewServeMux()
	mux.HandleFunc("/ok", func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet {
			// A page, as many URLs serve: a redirect followed as a GET
			// must not count as delivered.
			fetched.Add(1)
			return
		}
		if m, err := decodeMessage(r); r.Method != http.MethodPost || err != nil || m.Target != "s1" {
			http.Error(w, "want the message POSTed", http.StatusBadRequest)
			return
		}
		delivered.Add(1)
	})
	for _, code := range []int{301, 302, 303, 307, 308} {
		mux.Handle(fmt.Sprintf("/%d", code), http.RedirectHandler("/ok", code))
	}
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	tests := []struct {
		code    int
		wantErr bool
	}{
		{301, true}, {302, true}, {303, true}, {307, false}, {308, false},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.code), func(t *testing.T) {
			before := delivered.Load()
			err := notify.NewWebhook(fmt.Sprintf("%s/%d", srv.URL, tt.code), fastOptions).Send(context.Background(), ping("sd1", "s1"))
			require.Equalf(t, tt.wantErr, (err != nil), "got error %v, want error %v", err, tt.wantErr)
			got, want := delivered.Load()-before, map[bool]int64{true: 0, false: 1}[tt.wantErr]
			assert.Equalf(t, want, got, "delivered %d times, want %d", got, want)
			assert.Zero(t, fetched.Load(), "a redirect was followed as a GET")
		})
	}
}

// scriptServer answers the first request with status and a Retry-After of
// retryAfter (if not empty), and every later one with 200. It returns its
// URL and request count.
func scriptServer(t *testing.T, status int, retryAfter string) (string, *atomic.Int64) {
	t.Helper()
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if hits.Add(1) == 1 {
			if retryAfter != "" {
				w.Header().Set("Retry-After", retryAfter)
			}
			w.WriteHeader(status)
		}
	}))
	t.Cleanup(srv.Close)
	return srv.URL, &hits
}

// TestWebhookHonoursRetryAfter: on 429 and 503 the receiver's Retry-After,
// delta-seconds or HTTP-date, replaces the backoff; one that would pass the
// ctx deadline (or MaxRetryAfter) makes Send give up at once, without
// sleeping into it; on other statuses, or when unparsable, the capped
// backoff is used.
func TestWebhookHonoursRetryAfter(t *testing.T) {
	now := time.Now().Truncate(time.Second) // HTTP-dates have whole seconds
	tests := []struct {
		name       string
		status     int
		retryAfter string
		timeout    time.Duration // of ctx; 0: none
		want       []time.Duration
		backoff    bool // want one backoff wait instead of want
		wantErrIs  error
		wantHits   int64
	}{
		{"503 delta-seconds", 503, "2", 0, []time.Duration{2 * time.Second}, false, nil, 2},
		{"429 delta-seconds", 429, "1", 0, []time.Duration{time.Second}, false, nil, 2},
		{"503 HTTP-date", 503, now.Add(2 * time.Second).UTC().Format(http.TimeFormat), 0, []time.Duration{2 * time.Second}, false, nil, 2},
		{"HTTP-date in the past", 503, now.Add(-time.Hour).UTC().Format(http.TimeFormat), 0, []time.Duration{0}, false, nil, 2},
		{"zero", 503, "0", 0, []time.Duration{0}, false, nil, 2},
		{"past the deadline", 503, "45", 30 * time.Second, nil, false, context.DeadlineExceeded, 1},
		{"HTTP-date past the deadline", 429, now.Add(40 * time.Second).UTC().Format(http.TimeFormat), 30 * time.Second, nil, false, context.DeadlineExceeded, 1},
		{"beyond MaxRetryAfter", 503, "3600", 0, nil, false, nil, 1},
		{"huge", 503, "99999999999999999999999", 0, nil, false, nil, 1},
		{"ignored on 500", 500, "30", 0, nil, true, nil, 2},
		{"unparsable", 503, "soon", 0, nil, true, nil, 2},
		{"absent", 503, "", 0, nil, true, nil, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			url, hits := scriptServer(t, tt.status, tt.retryAfter)
			var naps sleeps
			w := notify.NewWebhook(url, notify.WebhookOptions{Sleep: naps.sleep, Now: func() time.Time { return now }})
			ctx := context.Background()
			if tt.timeout > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tt.timeout)
				defer cancel()
			}
			err := w.Send(ctx, ping("sd1", "s1"))
			wantErr := tt.wantHits == 1
			require.Equalf(t, wantErr, (err != nil), "Send: got error %v, want error %v", err, wantErr)
			if tt.wantErrIs != nil {
				assert.ErrorIs(t, err, tt.wantErrIs, "Send")
			}
			if tt.timeout > 0 {
				assert.NoError(t, ctx.Err(), "Send returned only once ctx was done; it should give up at once")
			}
			assert.Equal(t, tt.wantHits, hits.Load(), "requests")
			got := naps.got()
			if tt.backoff {
				assert.Falsef(t, len(got) != 1 || got[0] <= 0 || got[0] > notify.MaxBackoff, "waits %v, want one backoff in (0, %v]", got, notify.MaxBackoff)
				return
			}
			assert.Truef(t, slices.Equal(got, tt.want), "waits asked for: got %v, want %v", got, tt.want)
		})
	}
}

// TestWebhookBackoffIsCapped: however many tries fail and whatever the base,
// no wait between tries exceeds MaxBackoff, and the waits do grow to it.
func TestWebhookBackoffIsCapped(t *testing.T) {
	srv := newHookServer(t, 500)
	for _, base := range []time.Duration{time.Millisecond, 300 * time.Millisecond, 5 * time.Second} {
		t.Run(base.String(), func(t *testing.T) {
			const tries = 12
			var naps sleeps
			w := notify.NewWebhook(srv.URL, notify.WebhookOptions{BaseBackoff: base, MaxTries: tries, Sleep: naps.sleep})
			require.Error(t, w.Send(context.Background(), ping("sd1", "s1")), "Send to a failing server: got nil error")
			got := naps.got()
			require.Lenf(t, got, tries-1, "got %d waits, want %d: %v", len(got), tries-1, got)
			for i, d := range got {
				assert.Falsef(t, d <= 0 || d > notify.MaxBackoff, "wait %d: %v, want in (0, %v]", i+1, d, notify.MaxBackoff)
			}
			last := got[len(got)-1]
			assert.GreaterOrEqualf(t, last, time.Duration(notify.MaxBackoff/2), "last wait %v: the backoff never grew to the cap %v (jitter keeps at least half)", last, notify.MaxBackoff)
		})
	}
}

// TestWebhookSameIdempotencyKeyOnEveryTry: every retry of a message carries
// the same Idempotency-Key, its ID, and the same body.
func TestWebhookSameIdempotencyKeyOnEveryTry(t *testing.T) {
	srv := newHookServer(t, 500, 503, 429, 408, 502, 200)
	var naps sleeps
	m := ping("sd1", "team/alice")
	w := notify.NewWebhook(srv.URL, notify.WebhookOptions{MaxTries: 10, Sleep: naps.sleep})
	require.NoErrorf(t, w.Send(context.Background(), m), "Send")
	srv.mu.Lock()
	defer srv.mu.Unlock()
	require.Lenf(t, srv.headers, 6, "got %d tries, want 6", len(srv.headers))
	for i, h := range srv.headers {
		got := h.Get("Idempotency-Key")
		assert.Equalf(t, m.ID(), got, "try %d: Idempotency-Key %q, want %q", i+1, got, m.ID())
		assert.Equalf(t, m.ID(), srv.bodies[i].ID(), "try %d: body is %s, want %s", i+1, srv.bodies[i].ID(), m.ID())
	}
}

// TestWebhookSendsUpToEightAtOnce: through a Notifier the webhook has eight
// requests in flight at once, never nine, so a slow receiver gets 30
// sessions' pings in four rounds rather than thirty; all are delivered
// once. It holds whether the pings come one Send at a time or in one
// SendAll, as a shutdown's interrupt pings do.
func TestWebhookSendsUpToEightAtOnce(t *testing.T) {
	tests := []struct {
		name string
		send func(n *notify.Notifier, msgs []notify.Message) error
	}{
		{"one Send each", func(n *notify.Notifier, msgs []notify.Message) error {
			for _, m := range msgs {
				if err := n.Send(context.Background(), m); err != nil {
					return err
				}
			}
			return nil
		}},
		{"one SendAll", func(n *notify.Notifier, msgs []notify.Message) error {
			return n.SendAll(context.Background(), msgs)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			testWebhookSendsUpToEightAtOnce(t, tt.send)
		})
	}
}

func testWebhookSendsUpToEightAtOnce(t *testing.T, send func(*notify.Notifier, []notify.Message) error) {
	const sessions, want = 30, 8 // the documented bound, not whatever the constant says
	var cur, peak atomic.Int64
	release := make(chan struct{})
	var once sync.Once
	var mu sync.Mutex
	keys := make(map[string]int)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Read the body first: only then does the server notice a client
		// that gives up, and end r.Context().
		m, err := decodeMessage(r)
		if err != nil || r.Header.Get("Idempotency-Key") != m.ID() {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		defer cur.Add(-1)
		c := cur.Add(1)
		for p := peak.Load(); c > p && !peak.CompareAndSwap(p, c); p = peak.Load() {
		}
		if c >= want {
			// Hold the first eight a moment longer: a ninth lane, if
			// there were one, would send its request meanwhile.
			once.Do(func() { time.AfterFunc(100*time.Millisecond, func() { close(release) }) })
		}
		select {
		case <-release: // the first requests wait until eight are in flight
		case <-r.Context().Done():
			return
		}
		mu.Lock()
		keys[m.ID()]++
		mu.Unlock()
	}))
	t.Cleanup(srv.Close)
	hook := notify.NewWebhook(srv.URL, notify.WebhookOptions{TryTimeout: time.Minute})
	n, _, _ := newNotifier(t, hook)
	var sent []notify.Message
	for i := range sessions {
		sent = append(sent, ping("sd1", fmt.Sprintf("s%02d", i)))
	}
	require.NoError(t, send(n, sent), "Send")
	err := flush(t, n, 10*time.Second)
	require.NoErrorf(t, err, "Flush: %v (peak concurrency %d: the first requests wait for %d at once)", err, peak.Load(), want)
	got := peak.Load()
	assert.Equalf(t, int64(want), got, "peak concurrent requests: got %d, want %d", got, want)
	mu.Lock()
	defer mu.Unlock()
	assert.Lenf(t, keys, sessions, "delivered %d distinct messages, want %d", len(keys), sessions)
	for _, m := range sent {
		assert.Equalf(t, 1, keys[m.ID()], "%s delivered %d times, want 1", m.ID(), keys[m.ID()])
	}
}
