package server_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/quiesce-dev/quiesce/api"
	"github.com/quiesce-dev/quiesce/fsm"
	"github.com/quiesce-dev/quiesce/gateway"
	"github.com/quiesce-dev/quiesce/internal/testing/fakegateway"
	"github.com/quiesce-dev/quiesce/server"
)

// TestEvery503CarriesRetryAfter: docs/API.md, Errors: "Every 503 carries
// Retry-After (whole seconds, --retry-after rounded up, at least 1)". Each
// route that answers a 503 is asked with --retry-after values that tell
// rounding up from down and a missing floor from the default: the refused
// turn (JSON and streamed), the interrupted turn, /readyz (GET and HEAD,
// draining and announcing), the unspooled event, the unreplayed events and
// the unwritten marker.
func TestEvery503CarriesRetryAfter(t *testing.T) {
	unwritable := gateway.DrainResult{State: fsm.Draining, Drain: api.DrainInfo{RequestID: "maint-42"}}
	producers := []struct {
		name         string
		gw           func() *Gateway
		method, path string
		body         string
		stream       bool
		code         string
	}{
		{"turn refused", func() *Gateway { return fakegateway.InState(fsm.Draining) },
			http.MethodPost, "/v1/sessions/a/messages", `{"text":"hi"}`, false, api.CodeDraining},
		{"streamed turn refused", func() *Gateway { return fakegateway.InState(fsm.ShuttingDown) },
			http.MethodPost, "/v1/sessions/a/messages", `{"text":"hi"}`, true, api.CodeDraining},
		{"turn interrupted", func() *Gateway {
			return &Gateway{TurnFn: func(context.Context, string, string) (string, error) { return "", gateway.ErrInterrupted }}
		}, http.MethodPost, "/v1/sessions/a/messages", `{"text":"hi"}`, false, api.CodeInterrupted},
		{"readyz draining", func() *Gateway { return fakegateway.InState(fsm.Draining) },
			http.MethodGet, "/readyz", "", false, api.CodeNotReady},
		{"readyz draining HEAD", func() *Gateway { return fakegateway.InState(fsm.Draining) },
			http.MethodHead, "/readyz", "", false, api.CodeNotReady},
		{"readyz announcing", func() *Gateway {
			return &Gateway{StatusFn: func() api.Status {
				return api.Status{State: fsm.Running, Ready: false,
					Drain: &api.DrainInfo{Status: "announcing", AnnounceUntil: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)}}
			}}
		}, http.MethodGet, "/readyz", "", false, api.CodeNotReady},
		{"event not spooled", func() *Gateway {
			return &Gateway{EventFn: func(context.Context, string, string) (api.EventReceipt, error) {
				return api.EventReceipt{}, fmt.Errorf("%w: disk full", gateway.ErrSpoolUnavailable)
			}}
		}, http.MethodPost, "/api/gateway/events", `{"session":"a","text":"done"}`, false, api.CodeSpoolUnavailable},
		{"replay not written", func() *Gateway {
			return &Gateway{ReplayEventsFn: func(context.Context) (api.ReplayResult, error) {
				return api.ReplayResult{}, fmt.Errorf("%w: disk full", gateway.ErrSpoolUnavailable)
			}}
		}, http.MethodPost, "/api/gateway/events/replay", "", false, api.CodeSpoolUnavailable},
		{"marker unwritable", func() *Gateway {
			return &Gateway{BeginDrainFn: func(context.Context, gateway.DrainRequest) (gateway.DrainResult, error) {
				return unwritable, &gateway.UnwritableError{Result: unwritable, Path: "/h/.drain_request.json", Err: syscall.ENOSPC}
			}}
		}, http.MethodPost, "/api/gateway/drain", "", false, api.CodeMarkerUnwritable},
	}
	for _, p := range producers {
		for _, ra := range []struct {
			config time.Duration
			want   string
		}{
			{0, "5"}, // --retry-after's default
			{7 * time.Second, "7"},
			{1500 * time.Millisecond, "2"}, // rounded up, not down
			{200 * time.Millisecond, "1"},  // at least 1
		} {
			t.Run(fmt.Sprintf("%s/%v", p.name, ra.config), func(t *testing.T) {
				s, err := server.New(server.Config{Gateway: p.gw(), RetryAfter: ra.config, Logger: slog.New(slog.DiscardHandler),
					Tokens: server.NewTokens(map[string]string{"ops": opsToken})})
				require.NoError(t, err)
				var rec *httptest.ResponseRecorder
				if p.stream {
					rec = streamRequest(t, s.Handler(), "a", "hi")
				} else {
					rec = do(t, s.Handler(), p.method, p.path, opsToken, p.body)
				}
				require.Equal(t, http.StatusServiceUnavailable, rec.Code, rec.Body.String())
				assert.Equal(t, p.code, decodeBody(t, rec)["error"])
				assert.Equal(t, ra.want, rec.Header().Get("Retry-After"))
				assert.Equal(t, "application/json", rec.Header().Get("Content-Type"))
			})
		}
	}
}

// TestUnauthorizedNamesTheRealm: a 401, for a missing or an unknown token,
// carries exactly `WWW-Authenticate: Bearer realm="quiesce"` (docs/API.md,
// Conventions), on every route that needs a token.
func TestUnauthorizedNamesTheRealm(t *testing.T) {
	h := MustServer(t, &Gateway{}).Handler()
	for _, rt := range []struct{ method, path string }{
		{http.MethodPost, "/api/gateway/drain"},
		{http.MethodGet, "/api/gateway/status"},
		{http.MethodHead, "/api/gateway/status"},
		{http.MethodGet, api.TurnsPath},
		{http.MethodGet, api.HistoryPath},
		{http.MethodPost, "/api/gateway/shutdown"},
		{http.MethodPost, "/api/gateway/events"},
		{http.MethodPost, "/api/gateway/events/replay"},
		{http.MethodPost, "/v1/sessions/a/messages"},
	} {
		for _, token := range []string{"", "nope-not-a-token-at-all"} {
			t.Run(fmt.Sprintf("%s %s token=%q", rt.method, rt.path, token), func(t *testing.T) {
				rec := do(t, h, rt.method, rt.path, token, "")
				require.Equal(t, http.StatusUnauthorized, rec.Code)
				assert.Equal(t, `Bearer realm="quiesce"`, rec.Header().Get("WWW-Authenticate"))
				assert.Equal(t, "application/json", rec.Header().Get("Content-Type"))
			})
		}
	}
}

// TestStreamedTurnHeaders: an accepted streamed turn answers 200 with the
// headers docs/API.md shows: Content-Type text/event-stream, Cache-Control
// no-store (no cache keeps a turn's reply) and X-Accel-Buffering no (a
// proxy must not hold the deltas back).
func TestStreamedTurnHeaders(t *testing.T) {
	gw := &Gateway{StreamFn: func(_ context.Context, req gateway.TurnRequest) (string, error) {
		req.Started()
		req.Delta("hi")
		return "hi", nil
	}}
	rec := streamRequest(t, MustServer(t, gw).Handler(), "a", "hi")
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	for key, want := range map[string]string{
		"Content-Type":      "text/event-stream",
		"Cache-Control":     "no-store",
		"X-Accel-Buffering": "no",
	} {
		assert.Equalf(t, want, rec.Header().Get(key), "header %s", key)
	}
}
