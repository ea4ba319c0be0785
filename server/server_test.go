package server_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"strings"
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

// Gateway is the fake gateway the tests serve (internal/testing/fakegateway).
type Gateway = fakegateway.Gateway

const (
	opsToken   = "ops-token-0123456789"
	otherToken = "other-token-0123456789"
)

// MustServer returns a Server around gw with the token opsToken for "ops".
func MustServer(tb testing.TB, gw server.Gateway) *server.Server {
	tb.Helper()
	s, err := server.New(server.Config{
		Addr:    "127.0.0.1:0",
		Gateway: gw,
		Tokens:  server.NewTokens(map[string]string{"ops": opsToken, "other": otherToken}),
		Logger:  slog.New(slog.DiscardHandler),
	})
	require.NoError(tb, err)
	return s
}

// do sends one request to h and returns the recorded response. token ""
// sends no Authorization header.
func do(tb testing.TB, h http.Handler, method, path, token, body string) *httptest.ResponseRecorder {
	tb.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req := httptest.NewRequest(method, path, rd)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	wireHeaders(rec)
	return rec
}

// wireHeaders makes rec.Header() what a client received: the headers as
// they were when the handler first wrote, not a header set after that,
// which net/http never sends (the recorder's map keeps changing after the
// write; its Result is the snapshot).
func wireHeaders(rec *httptest.ResponseRecorder) {
	sent := rec.Result().Header
	h := rec.Header()
	clear(h)
	maps.Copy(h, sent)
}

// decodeBody decodes rec's JSON body into a map.
func decodeBody(tb testing.TB, rec *httptest.ResponseRecorder) map[string]any {
	tb.Helper()
	var m map[string]any
	require.NoError(tb, json.Unmarshal(rec.Body.Bytes(), &m), "body %q", rec.Body.String())
	return m
}

// requireError checks an error answer: status, JSON code and a message.
func requireError(tb testing.TB, rec *httptest.ResponseRecorder, status int, code string) map[string]any {
	tb.Helper()
	require.Equalf(tb, status, rec.Code, "status; body %s", rec.Body.String())
	assert.Equal(tb, "application/json", rec.Header().Get("Content-Type"))
	m := decodeBody(tb, rec)
	assert.Equal(tb, code, m["error"])
	assert.NotEmpty(tb, m["message"])
	return m
}

func TestHealthz(t *testing.T) {
	h := MustServer(t, &Gateway{}).Handler()
	rec := do(t, h, http.MethodGet, "/healthz", "", "")
	require.Equal(t, http.StatusOK, rec.Code)
	assert.Equal(t, true, decodeBody(t, rec)["ok"])

	t.Run("HEAD", func(t *testing.T) {
		for _, path := range []string{"/healthz", "/readyz", "/metrics"} {
			rec := do(t, h, http.MethodHead, path, "", "")
			assert.Equalf(t, http.StatusOK, rec.Code, "HEAD %s", path)
		}
		rec := do(t, h, http.MethodHead, "/api/gateway/status", opsToken, "")
		assert.Equal(t, http.StatusOK, rec.Code)
	})
}

// TestHealthzInEveryState: /healthz answers 200 {"ok":true} while the
// process serves, in every state, shutting down and stopped included
// (docs/API.md: liveness probes, so a drain never gets a gateway
// restarted), with or without a drain being announced, HEAD too.
func TestHealthzInEveryState(t *testing.T) {
	for _, st := range fsm.States {
		for _, announcing := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/announcing=%v", st, announcing), func(t *testing.T) {
				gw := &Gateway{StatusFn: func() api.Status {
					s := api.Status{State: st, Ready: st == fsm.Running && !announcing}
					if announcing {
						s.Drain = &api.DrainInfo{Status: "announcing", AnnounceUntil: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)}
					}
					return s
				}}
				gw.SetState(st)
				h := MustServer(t, gw).Handler()
				rec := do(t, h, http.MethodGet, "/healthz", "", "")
				require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
				assert.JSONEq(t, `{"ok":true}`, rec.Body.String())
				assert.Empty(t, rec.Header().Get("Retry-After"))
				assert.Equal(t, http.StatusOK, do(t, h, http.MethodHead, "/healthz", "", "").Code)
			})
		}
	}
}

func TestReadyz(t *testing.T) {
	for _, st := range fsm.States {
		t.Run(string(st), func(t *testing.T) {
			gw := fakegateway.InState(st)
			rec := do(t, MustServer(t, gw).Handler(), http.MethodGet, "/readyz", "", "")
			if st == fsm.Running {
				require.Equal(t, http.StatusOK, rec.Code)
				return
			}
			m := requireError(t, rec, http.StatusServiceUnavailable, api.CodeNotReady)
			assert.Equal(t, string(st), m["state"])
		})
	}
}

// TestReadyzCarriesTheState: /readyz's body (200 or 503, no token) is
// what local status asks a live gateway for: state, turns in flight, pid,
// seq and uptime, never the drain request's principal.
func TestReadyzCarriesTheState(t *testing.T) {
	for _, st := range []fsm.State{fsm.Running, fsm.Draining} {
		gw := &Gateway{StatusFn: func() api.Status {
			return api.Status{State: st, Ready: st == fsm.Running, ActiveAgents: 2, PID: 4242, Seq: 17, UptimeSeconds: 29, OldestTurnSeconds: 1.5,
				StateSince: time.Date(2026, 12, 7, 3, 59, 18, 886416499, time.UTC),
				Drain:      &api.DrainInfo{Principal: "secret-principal", Status: "active"}}
		}}
		rec := do(t, MustServer(t, gw).Handler(), http.MethodGet, "/readyz", "", "")
		assert.NotContains(t, rec.Body.String(), "secret-principal")
		m := decodeBody(t, rec)
		assert.Equal(t, st == fsm.Running, m["ok"])
		assert.Equal(t, string(st), m["state"])
		assert.Equal(t, float64(2), m["active_agents"])
		assert.Equal(t, float64(4242), m["pid"])
		assert.Equal(t, float64(17), m["seq"])
		assert.Equal(t, float64(29), m["uptime_seconds"])
		assert.Equal(t, 1.5, m["oldest_turn_seconds"])
		assert.Equal(t, "2026-12-07T03:59:18.886416499Z", m["state_since"])
	}
}

func TestMetrics(t *testing.T) {
	gw := &Gateway{StatusFn: func() api.Status { return api.Status{State: fsm.Draining, ActiveAgents: 3} }}
	s := MustServer(t, gw)
	h := s.Handler()
	do(t, h, http.MethodGet, "/healthz", "", "")
	do(t, h, http.MethodGet, "/nope", "", "")
	rec := do(t, h, http.MethodGet, "/metrics", "", "")
	require.Equal(t, http.StatusOK, rec.Code)
	body := rec.Body.String()
	for _, want := range []string{
		`quiesce_state{state="running"} 0`,
		`quiesce_state{state="draining"} 1`,
		`quiesce_state{state="shutting_down"} 0`,
		`quiesce_state{state="stopped"} 0`,
		`quiesce_turns_in_flight 3`,
		`quiesce_turns_total{result="ok"} 0`,
		`quiesce_turns_total{result="refused"} 0`,
		`quiesce_drain_reaction_seconds_count 0`,
		`quiesce_http_requests_total{code="200",route="/healthz"} 1`,
		`quiesce_http_requests_total{code="404",route="unmatched"} 1`,
		`quiesce_spooled_events 0`,
		`go_goroutines `,
		`process_start_time_seconds `,
	} {
		assert.Contains(t, body, want)
	}
}

func TestMetricsGatewayInterface(t *testing.T) {
	m := server.NewMetrics()
	m.TurnEnded("ok")
	m.TurnEnded("ok")
	m.DrainReaction(20 * time.Millisecond)
	s, err := server.New(server.Config{Gateway: &Gateway{}, Metrics: m})
	require.NoError(t, err)
	body := do(t, s.Handler(), http.MethodGet, "/metrics", "", "").Body.String()
	assert.Contains(t, body, `quiesce_turns_total{result="ok"} 2`)
	assert.Contains(t, body, `quiesce_drain_reaction_seconds_count 1`)
}

func TestAuth(t *testing.T) {
	routes := []struct{ method, path, body string }{
		{http.MethodPost, "/api/gateway/drain", ""},
		{http.MethodGet, "/api/gateway/status", ""},
		{http.MethodPost, "/api/gateway/shutdown", ""},
		{http.MethodPost, "/api/gateway/events", `{"session":"a","text":"b"}`},
		{http.MethodPost, "/v1/sessions/a/messages", `{"text":"b"}`},
	}
	headers := []struct {
		name, value string
		ok          bool
	}{
		{"missing", "", false},
		{"wrong", "Bearer not-a-token-at-all", false},
		{"prefix of a token", "Bearer " + opsToken[:10], false},
		{"basic scheme", "Basic " + opsToken, false},
		{"no scheme", opsToken, false},
		{"right", "Bearer " + opsToken, true},
		{"right, lower-case scheme", "bearer " + opsToken, true},
	}
	for _, rt := range routes {
		for _, hd := range headers {
			t.Run(fmt.Sprintf("%s %s/%s", rt.method, rt.path, hd.name), func(t *testing.T) {
				gw := &Gateway{}
				h := MustServer(t, gw).Handler()
				var body io.Reader
				if rt.body != "" {
					body = strings.NewReader(rt.body)
				}
				req := httptest.NewRequest(rt.method, rt.path, body)
				if hd.value != "" {
					req.Header.Set("Authorization", hd.value)
				}
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, req)
				wireHeaders(rec)
				if hd.ok {
					assert.Less(t, rec.Code, 300, rec.Body.String())
					return
				}
				requireError(t, rec, http.StatusUnauthorized, api.CodeUnauthorized)
				assert.Contains(t, rec.Header().Get("WWW-Authenticate"), "Bearer")
				assert.Empty(t, gw.Calls(), "nothing reaches the gateway without a token")
			})
		}
	}
}

func TestAuthPrincipal(t *testing.T) {
	var got string
	gw := &Gateway{BeginDrainFn: func(_ context.Context, req gateway.DrainRequest) (gateway.DrainResult, error) {
		got = req.Principal
		return gateway.DrainResult{Drain: api.DrainInfo{Principal: req.Principal}, State: fsm.Draining}, nil
	}}
	rec := do(t, MustServer(t, gw).Handler(), http.MethodPost, "/api/gateway/drain", otherToken, "")
	require.Equal(t, http.StatusOK, rec.Code)
	assert.Equal(t, "other", got)
	assert.Equal(t, "other", decodeBody(t, rec)["principal"])
}

func TestDrain(t *testing.T) {
	t.Run("EmptyBodyDefaultsToDrain", func(t *testing.T) {
		gw := &Gateway{}
		rec := do(t, MustServer(t, gw).Handler(), http.MethodPost, "/api/gateway/drain", opsToken, "")
		require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
		m := decodeBody(t, rec)
		for k, want := range map[string]any{
			"ok": true, "action": "drain", "draining": true, "suppress_notification": false,
			"principal": "ops", "request_id": "generated", "state": "draining", "active_agents": float64(0),
		} {
			assert.Equalf(t, want, m[k], "field %s", k)
		}
		assert.Contains(t, m, "requested_at")
		assert.Equal(t, []string{"BeginDrain"}, gw.Calls())
	})
	t.Run("Passthrough", func(t *testing.T) {
		var got gateway.DrainRequest
		gw := &Gateway{BeginDrainFn: func(_ context.Context, req gateway.DrainRequest) (gateway.DrainResult, error) {
			got = req
			return gateway.DrainResult{Drain: api.DrainInfo{RequestID: req.RequestID, SuppressNotification: *req.SuppressNotification}}, nil
		}}
		rec := do(t, MustServer(t, gw).Handler(), http.MethodPost, "/api/gateway/drain", opsToken,
			`{"action":"drain","suppress_notification":true,"request_id":"r-1"}`)
		require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
		suppress := true
		assert.Equal(t, gateway.DrainRequest{Principal: "ops", SuppressNotification: &suppress, RequestID: "r-1"}, got)
		m := decodeBody(t, rec)
		assert.Equal(t, true, m["suppress_notification"])
		assert.Equal(t, "r-1", m["request_id"])
	})
	t.Run("ReconcilesBeforeAnswering", func(t *testing.T) {
		gw := &Gateway{}
		h := MustServer(t, gw).Handler()
		rec := do(t, h, http.MethodPost, "/v1/sessions/a/messages", opsToken, `{"text":"before"}`)
		require.Equal(t, http.StatusOK, rec.Code)
		rec = do(t, h, http.MethodPost, "/api/gateway/drain", opsToken, `{}`)
		require.Equal(t, http.StatusOK, rec.Code)
		rec = do(t, h, http.MethodPost, "/v1/sessions/a/messages", opsToken, `{"text":"after"}`)
		requireError(t, rec, http.StatusServiceUnavailable, api.CodeDraining)
		// The drain's answer was written after BeginDrain returned, and the
		// next turn was asked of the gateway after that.
		assert.Equal(t, []string{"Turn", "BeginDrain", "Turn"}, gw.Calls())
	})
	t.Run("Cancel", func(t *testing.T) {
		gw := &Gateway{}
		h := MustServer(t, gw).Handler()
		do(t, h, http.MethodPost, "/api/gateway/drain", opsToken, "")
		for i, want := range []bool{true, false} { // idempotent
			rec := do(t, h, http.MethodPost, "/api/gateway/drain", opsToken, `{"action":"cancel"}`)
			require.Equal(t, http.StatusOK, rec.Code, "cancel #%d", i)
			m := decodeBody(t, rec)
			assert.Equal(t, true, m["ok"])
			assert.Equal(t, "cancel", m["action"])
			assert.Equal(t, want, m["was_draining"], "cancel #%d", i)
			assert.Equal(t, "running", m["state"])
		}
	})
	t.Run("CancelMismatch", func(t *testing.T) {
		var got string
		gw := &Gateway{CancelDrainFn: func(_ context.Context, id string) (gateway.CancelResult, error) {
			got = id
			return gateway.CancelResult{}, fmt.Errorf("cancel: %w", gateway.ErrRequestMismatch)
		}}
		rec := do(t, MustServer(t, gw).Handler(), http.MethodPost, "/api/gateway/drain", opsToken,
			`{"action":"cancel","request_id":"not-it"}`)
		requireError(t, rec, http.StatusConflict, api.CodeConflict)
		assert.Equal(t, "not-it", got)
	})
	t.Run("GatewayFailure", func(t *testing.T) {
		gw := &Gateway{BeginDrainFn: func(context.Context, gateway.DrainRequest) (gateway.DrainResult, error) {
			return gateway.DrainResult{}, errors.New("disk full at /secret/path")
		}}
		rec := do(t, MustServer(t, gw).Handler(), http.MethodPost, "/api/gateway/drain", opsToken, "")
		requireError(t, rec, http.StatusInternalServerError, api.CodeInternal)
		assert.NotContains(t, rec.Body.String(), "secret", "internal errors are never echoed")
	})
}

// TestStrictJSON checks that every malformed body is a 400 (or 413) and
// reaches no gateway method.
func TestStrictJSON(t *testing.T) {
	big := `{"request_id":"` + strings.Repeat("x", server.MaxBodyBytes) + `"}`
	tests := []struct {
		name, path, body string
		status           int
		code             string
	}{
		{"UnknownField", "/api/gateway/drain", `{"action":"drain","force":true}`, 400, api.CodeBadRequest},
		{"SuppressAsString", "/api/gateway/drain", `{"suppress_notification":"false"}`, 400, api.CodeBadRequest},
		{"SuppressAsNumber", "/api/gateway/drain", `{"suppress_notification":0}`, 400, api.CodeBadRequest},
		{"ActionAsNumber", "/api/gateway/drain", `{"action":1}`, 400, api.CodeBadRequest},
		{"TrailingObject", "/api/gateway/drain", `{"action":"drain"}{"action":"cancel"}`, 400, api.CodeBadRequest},
		{"TrailingGarbage", "/api/gateway/drain", `{"action":"drain"} x`, 400, api.CodeBadRequest},
		{"ArrayBody", "/api/gateway/drain", `[{"action":"drain"}]`, 400, api.CodeBadRequest},
		{"NullBody", "/api/gateway/drain", `null`, 400, api.CodeBadRequest},
		{"NotJSON", "/api/gateway/drain", `action=drain`, 400, api.CodeBadRequest},
		{"Truncated", "/api/gateway/drain", `{"action":"drain"`, 400, api.CodeBadRequest},
		{"WrongAction", "/api/gateway/drain", `{"action":"begin"}`, 400, api.CodeBadRequest},
		{"EmptyAction", "/api/gateway/drain", `{"action":""}`, 400, api.CodeBadRequest},
		{"TooLarge", "/api/gateway/drain", big, 413, api.CodeTooLarge},
		{"ShutdownForceAsString", "/api/gateway/shutdown", `{"force":"true"}`, 400, api.CodeBadRequest},
		{"ShutdownUnknownField", "/api/gateway/shutdown", `{"now":true}`, 400, api.CodeBadRequest},
		{"MessageEmptyBody", "/v1/sessions/a/messages", ``, 400, api.CodeBadRequest},
		{"MessageNoText", "/v1/sessions/a/messages", `{}`, 400, api.CodeBadRequest},
		{"MessageTextAsNumber", "/v1/sessions/a/messages", `{"text":5}`, 400, api.CodeBadRequest},
		{"MessageTooLarge", "/v1/sessions/a/messages", `{"text":"` + strings.Repeat("y", server.MaxBodyBytes) + `"}`, 413, api.CodeTooLarge},
		{"EventNoSession", "/api/gateway/events", `{"text":"done"}`, 400, api.CodeBadRequest},
		{"EventUnknownField", "/api/gateway/events", `{"session":"a","text":"b","x":1}`, 400, api.CodeBadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			gw := &Gateway{}
			rec := do(t, MustServer(t, gw).Handler(), http.MethodPost, tt.path, opsToken, tt.body)
			requireError(t, rec, tt.status, tt.code)
			assert.Empty(t, gw.Calls(), "nothing half-done: no gateway call on a bad request")
		})
	}
	t.Run("ExactlyAtLimit", func(t *testing.T) {
		pad := server.MaxBodyBytes - len(`{"request_id":""}`)
		body := `{"request_id":"` + strings.Repeat("x", pad) + `"}`
		require.Len(t, body, server.MaxBodyBytes)
		rec := do(t, MustServer(t, &Gateway{}).Handler(), http.MethodPost, "/api/gateway/drain", opsToken, body)
		assert.Equal(t, http.StatusOK, rec.Code)
	})
	t.Run("MessageMentionsField", func(t *testing.T) {
		rec := do(t, MustServer(t, &Gateway{}).Handler(), http.MethodPost, "/api/gateway/drain", opsToken, `{"suppress_notification":"false"}`)
		assert.Contains(t, decodeBody(t, rec)["message"], "suppress_notification")
	})
}

func TestStatus(t *testing.T) {
	t.Run("Plain", func(t *testing.T) {
		gw := &Gateway{StatusFn: func() api.Status {
			return api.Status{State: fsm.Draining, ActiveAgents: 2, Epoch: "b:1", PID: 7, UptimeSeconds: 3,
				Drain: &api.DrainInfo{Action: "drain", Principal: "ops", RequestID: "r", Status: "active"}}
		}}
		rec := do(t, MustServer(t, gw).Handler(), http.MethodGet, "/api/gateway/status", opsToken, "")
		require.Equal(t, http.StatusOK, rec.Code)
		m := decodeBody(t, rec)
		assert.Equal(t, "draining", m["state"])
		assert.Equal(t, float64(2), m["active_agents"])
		assert.Equal(t, "b:1", m["epoch"])
		assert.Equal(t, "active", m["drain"].(map[string]any)["status"])
		assert.NotContains(t, m, "idle")
	})
	t.Run("NoDrainIsNull", func(t *testing.T) {
		rec := do(t, MustServer(t, &Gateway{}).Handler(), http.MethodGet, "/api/gateway/status", opsToken, "")
		m := decodeBody(t, rec)
		assert.Contains(t, m, "drain")
		assert.Nil(t, m["drain"])
	})
	t.Run("WaitIdle", func(t *testing.T) {
		gw := &Gateway{}
		rec := do(t, MustServer(t, gw).Handler(), http.MethodGet, "/api/gateway/status?wait=idle&timeout=5s", opsToken, "")
		require.Equal(t, http.StatusOK, rec.Code)
		assert.Equal(t, true, decodeBody(t, rec)["idle"])
		assert.Equal(t, []string{"WaitIdle", "Status"}, gw.Calls())
	})
	t.Run("WaitIdleTimeout", func(t *testing.T) {
		var deadline time.Time
		gw := &Gateway{WaitIdleFn: func(ctx context.Context) error {
			deadline, _ = ctx.Deadline()
			<-ctx.Done()
			return ctx.Err()
		}}
		before := time.Now()
		rec := do(t, MustServer(t, gw).Handler(), http.MethodGet, "/api/gateway/status?wait=idle&timeout=10ms", opsToken, "")
		require.Equal(t, http.StatusOK, rec.Code)
		assert.Equal(t, false, decodeBody(t, rec)["idle"])
		assert.True(t, deadline.After(before), "WaitIdle got a bounded context")
	})
	t.Run("TimeoutCapped", func(t *testing.T) {
		var deadline time.Time
		gw := &Gateway{WaitIdleFn: func(ctx context.Context) error { deadline, _ = ctx.Deadline(); return nil }}
		before := time.Now()
		do(t, MustServer(t, gw).Handler(), http.MethodGet, "/api/gateway/status?wait=idle&timeout=100h", opsToken, "")
		assert.False(t, deadline.After(before.Add(server.MaxWaitTimeout+time.Minute)), "deadline %v", deadline)
	})
	t.Run("SecondsTimeout", func(t *testing.T) {
		rec := do(t, MustServer(t, &Gateway{}).Handler(), http.MethodGet, "/api/gateway/status?wait=idle&timeout=3", opsToken, "")
		assert.Equal(t, http.StatusOK, rec.Code)
	})
	for _, q := range []string{"wait=busy", "timeout=5s", "wait=idle&timeout=soon", "wait=idle&timeout=-1s", "wait=idle&timeout=0"} {
		t.Run("Bad/"+q, func(t *testing.T) {
			gw := &Gateway{}
			rec := do(t, MustServer(t, gw).Handler(), http.MethodGet, "/api/gateway/status?"+q, opsToken, "")
			requireError(t, rec, http.StatusBadRequest, api.CodeBadRequest)
			assert.NotContains(t, gw.Calls(), "WaitIdle")
		})
	}
}

func TestShutdown(t *testing.T) {
	for _, tt := range []struct {
		body  string
		force bool
	}{{"", false}, {`{"force":false}`, false}, {`{"force":true}`, true}} {
		t.Run(fmt.Sprintf("body=%q", tt.body), func(t *testing.T) {
			var got *bool
			gw := &Gateway{}
			gw.BeginShutdownFn = func(force bool) gateway.ShutdownStart {
				got = &force
				gw.SetState(fsm.ShuttingDown)
				return gateway.ShutdownStart{ID: "sd-9", Force: force}
			}
			rec := do(t, MustServer(t, gw).Handler(), http.MethodPost, "/api/gateway/shutdown", opsToken, tt.body)
			require.Equal(t, http.StatusAccepted, rec.Code, rec.Body.String())
			require.NotNil(t, got)
			assert.Equal(t, tt.force, *got)
			m := decodeBody(t, rec)
			assert.Equal(t, true, m["ok"])
			assert.Equal(t, "sd-9", m["shutdown_id"])
			assert.Equal(t, "shutting_down", m["state"])
		})
	}
}

// TestShutdownRepeatReportsAlreadyShuttingDown shows that the 202 of a
// shutdown carries the gateway's already_shutting_down and force: false
// for the first call, true for a repeat, and force only once one asked.
func TestShutdownRepeatReportsAlreadyShuttingDown(t *testing.T) {
	gw := &Gateway{}
	h := MustServer(t, gw).Handler()
	for i, step := range []struct {
		body           string
		already, force bool
	}{
		{``, false, false},
		{`{"force":false}`, true, false},
		{``, true, false},
		{`{"force":true}`, true, true},
		{`{"force":false}`, true, true}, // force, once asked for, sticks
	} {
		rec := do(t, h, http.MethodPost, "/api/gateway/shutdown", opsToken, step.body)
		require.Equalf(t, http.StatusAccepted, rec.Code, "call #%d: %s", i, rec.Body.String())
		m := decodeBody(t, rec)
		assert.Equalf(t, step.already, m["already_shutting_down"], "call #%d already_shutting_down", i)
		assert.Equalf(t, step.force, m["force"], "call #%d force", i)
		assert.Equalf(t, "sd1", m["shutdown_id"], "call #%d", i)
		assert.Equalf(t, "shutting_down", m["state"], "call #%d", i)
	}
}

func TestMessage(t *testing.T) {
	t.Run("OK", func(t *testing.T) {
		var gotSession, gotText string
		gw := &Gateway{TurnFn: func(_ context.Context, s, text string) (string, error) {
			gotSession, gotText = s, text
			return "echo: " + text, nil
		}}
		rec := do(t, MustServer(t, gw).Handler(), http.MethodPost, "/v1/sessions/alice/messages", opsToken, `{"text":"hi"}`)
		require.Equal(t, http.StatusOK, rec.Code)
		assert.Equal(t, map[string]any{"session": "alice", "reply": "echo: hi"}, decodeBody(t, rec))
		assert.Equal(t, "alice", gotSession)
		assert.Equal(t, "hi", gotText)
	})
	tests := []struct {
		name       string
		err        error
		status     int
		code       string
		retryAfter bool
	}{
		{"RefusedDraining", &gateway.RefusedError{State: fsm.Draining}, 503, api.CodeDraining, true},
		{"RefusedShuttingDown", &gateway.RefusedError{State: fsm.ShuttingDown}, 503, api.CodeDraining, true},
		{"Busy", gateway.ErrSessionBusy, 409, api.CodeSessionBusy, false},
		{"Invalid", fmt.Errorf("%w: session id too long", gateway.ErrInvalid), 400, api.CodeBadRequest, false},
		{"Interrupted", gateway.ErrInterrupted, 503, api.CodeInterrupted, true},
		{"Agent", fmt.Errorf("%w: exit status 3", gateway.ErrAgent), 502, api.CodeAgentFailed, false},
		{"Internal", errors.New("boom /var/secret"), 500, api.CodeInternal, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			gw := &Gateway{TurnFn: func(context.Context, string, string) (string, error) { return "", tt.err }}
			s, err := server.New(server.Config{Gateway: gw, RetryAfter: 7 * time.Second,
				Tokens: server.NewTokens(map[string]string{"ops": opsToken})})
			require.NoError(t, err)
			rec := do(t, s.Handler(), http.MethodPost, "/v1/sessions/a/messages", opsToken, `{"text":"hi"}`)
			m := requireError(t, rec, tt.status, tt.code)
			if tt.retryAfter {
				assert.Equal(t, "7", rec.Header().Get("Retry-After"))
			} else {
				assert.Empty(t, rec.Header().Get("Retry-After"))
			}
			var refused *gateway.RefusedError
			if errors.As(tt.err, &refused) {
				assert.Equal(t, string(refused.State), m["state"])
				assert.Equal(t, server.RefusalText, m["message"])
			}
			assert.NotContains(t, rec.Body.String(), "secret")
		})
	}
	t.Run("DefaultRetryAfter", func(t *testing.T) {
		gw := fakegateway.InState(fsm.Draining)
		rec := do(t, MustServer(t, gw).Handler(), http.MethodPost, "/v1/sessions/a/messages", opsToken, `{"text":"hi"}`)
		requireError(t, rec, http.StatusServiceUnavailable, api.CodeDraining)
		assert.Equal(t, "5", rec.Header().Get("Retry-After"))
	})
}

func TestEvent(t *testing.T) {
	for _, st := range []fsm.State{fsm.Running, fsm.Draining} {
		t.Run(string(st), func(t *testing.T) {
			gw := fakegateway.InState(st)
			rec := do(t, MustServer(t, gw).Handler(), http.MethodPost, "/api/gateway/events", opsToken, `{"session":"a","text":"job done"}`)
			require.Equal(t, http.StatusAccepted, rec.Code, rec.Body.String())
			m := decodeBody(t, rec)
			assert.Equal(t, "ev1", m["event_id"])
			assert.Equal(t, st != fsm.Running, m["spooled"])
		})
	}
}

func TestNotFound(t *testing.T) {
	h := MustServer(t, &Gateway{}).Handler()
	for _, path := range []string{"/nope", "/api/gateway", "/v1/sessions/a", "/v1/sessions/a/messages/x"} {
		rec := do(t, h, http.MethodGet, path, opsToken, "")
		requireError(t, rec, http.StatusNotFound, api.CodeNotFound)
	}
}

func TestMethodNotAllowed(t *testing.T) {
	h := MustServer(t, &Gateway{}).Handler()
	tests := []struct{ method, path, allow string }{
		{http.MethodGet, "/api/gateway/drain", "POST"},
		{http.MethodPut, "/api/gateway/drain", "POST"},
		{http.MethodGet, "/v1/sessions/alice/messages", "POST"},
		{http.MethodPost, "/healthz", "GET, HEAD"},
		{http.MethodDelete, "/api/gateway/status", "GET, HEAD"},
		{http.MethodPost, "/metrics", "GET, HEAD"},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			rec := do(t, h, tt.method, tt.path, opsToken, "")
			requireError(t, rec, http.StatusMethodNotAllowed, api.CodeMethodNotAllowed)
			assert.Equal(t, tt.allow, rec.Header().Get("Allow"))
		})
	}
}
