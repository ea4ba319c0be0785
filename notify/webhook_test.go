package notify_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

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
			if gotErr := err != nil; gotErr != tt.wantErr {
				t.Fatalf("got error %v, want error %v", err, tt.wantErr)
			}
			if err != nil && !strings.HasPrefix(err.Error(), "notify: ") {
				t.Errorf("error %q lacks the package prefix", err)
			}
			if got := srv.hits.Load(); got != tt.tries {
				t.Errorf("got %d tries, want %d", got, tt.tries)
			}
			srv.mu.Lock()
			defer srv.mu.Unlock()
			for i, body := range srv.bodies {
				if body.ID() != m.ID() || body.Text != m.Text || !body.At.Equal(m.At) {
					t.Errorf("try %d: got body %+v, want %+v", i+1, body, m)
				}
				h := srv.headers[i]
				if got := h.Get("Content-Type"); got != "application/json" {
					t.Errorf("try %d: Content-Type %q", i+1, got)
				}
				if got := h.Get("Idempotency-Key"); got != m.ID() {
					t.Errorf("try %d: Idempotency-Key %q, want %q", i+1, got, m.ID())
				}
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
			err := notify.NewWebhook(tt.url, tt.opt).Send(context.Background(), ping("sd1", "s1"))
			if err == nil {
				t.Fatal("got nil error")
			}
			if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
				t.Errorf("got %v, want errors.Is %v", err, tt.wantIs)
			}
			if strings.Contains(err.Error(), "SECRET") {
				t.Errorf("error %q leaks the URL path", err)
			}
			if tt.hits != nil {
				if got := tt.hits.Load(); got != tt.tries {
					t.Errorf("got %d tries, want %d", got, tt.tries)
				}
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
			if !errors.Is(err, tt.wantIs) {
				t.Errorf("got %v, want errors.Is %v", err, tt.wantIs)
			}
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
	var delivered atomic.Int64
	mux := http.NewServeMux()
	mux.HandleFunc("/ok", func(w http.ResponseWriter, r *http.Request) {
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
			if gotErr := err != nil; gotErr != tt.wantErr {
				t.Fatalf("got error %v, want error %v", err, tt.wantErr)
			}
			if got, want := delivered.Load()-before, map[bool]int64{true: 0, false: 1}[tt.wantErr]; got != want {
				t.Errorf("delivered %d times, want %d", got, want)
			}
		})
	}
}
