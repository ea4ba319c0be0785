package server_test

import (
	"context"
	"log/slog"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/quiesce-dev/quiesce/api"
	"github.com/quiesce-dev/quiesce/fsm"
	"github.com/quiesce-dev/quiesce/gateway"
	"github.com/quiesce-dev/quiesce/server"
)

func ptr[T any](v T) *T { return &v }

// The drain body tells an absent (or null) suppress_notification or
// reason from a given one, so a refresh keeps what it does not give,
// with escapes and spaces too.
func TestDrainBodyTellsAbsentFromGiven(t *testing.T) {
	cases := []struct {
		body string
		want gateway.DrainRequest
	}{
		{``, gateway.DrainRequest{}},
		{`{}`, gateway.DrainRequest{}},
		{`{"request_id":"maint-42"}`, gateway.DrainRequest{RequestID: "maint-42"}},
		{`{"suppress_notification":false}`, gateway.DrainRequest{SuppressNotification: ptr(false)}},
		{`{"suppress_notification":true}`, gateway.DrainRequest{SuppressNotification: ptr(true)}},
		{`{"suppress_notification":null}`, gateway.DrainRequest{}},
		{` { "suppress_notification" : false , "reason" : "disk swap" } `,
			gateway.DrainRequest{SuppressNotification: ptr(false), Reason: ptr("disk swap")}},
		{`{"reason":""}`, gateway.DrainRequest{Reason: ptr("")}},
		{`{"reason":"caf\u00e9"}`, gateway.DrainRequest{Reason: ptr("café")}},
		{`{"reason":null,"suppress_notification":true}`, gateway.DrainRequest{SuppressNotification: ptr(true)}},
	}
	for _, tc := range cases {
		t.Run(tc.body, func(t *testing.T) {
			var got *gateway.DrainRequest
			gw := &Gateway{BeginDrainFn: func(_ context.Context, req gateway.DrainRequest) (gateway.DrainResult, error) {
				got = &req
				return gateway.DrainResult{State: fsm.Draining}, nil
			}}
			rec := do(t, MustServer(t, gw).Handler(), http.MethodPost, "/api/gateway/drain", opsToken, tc.body)
			require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
			require.NotNil(t, got)
			tc.want.Principal = "ops"
			assert.Equal(t, tc.want, *got)
		})
	}
}

// The new fields keep the decoder strict: a non-boolean flag, a
// non-string reason, a duplicate, a field in another case and trailing
// data are 400s naming what is wrong, and the gateway is never called.
func TestDrainBodyStaysStrict(t *testing.T) {
	cases := map[string]string{
		`{"suppress_notification":"true"}`: `"suppress_notification" must be a JSON boolean`,
		`{"suppress_notification":1}`:      `"suppress_notification" must be a JSON boolean`,
		`{"reason":5}`:                     `"reason" must be a JSON string`,
		`{"reason":["a"]}`:                 `"reason" must be a JSON string`,
		`{"suppress_notification":true,"suppress_notification":false}`: `duplicate field "suppress_notification"`,
		`{"reason":"a","reason":"b"}`:                                  `duplicate field "reason"`,
		`{"Reason":"a"}`:                                               `did you mean "reason"`,
		`{"reason":"a"} {}`:                                            `data after the JSON object`,
		`{"reason":"a"}x`:                                              `data after the JSON object`,
		`{"reason":"a"}]`:                                              `data after the JSON object`,
		`{"reason":"a",}`:                                              `invalid JSON body: invalid character`,
		"\xEF\xBB\xBF{\"reason\":\"a\"}":                               `byte-order mark`,
		`{"announce_seconds":1e400}`:                                   `field "announce_seconds" is out of range`,
		`{"announce_seconds":"5"}`:                                     `field "announce_seconds" must be a JSON number, not string`,
	}
	for body, want := range cases {
		t.Run(body, func(t *testing.T) {
			gw := &Gateway{}
			rec := do(t, MustServer(t, gw).Handler(), http.MethodPost, "/api/gateway/drain", opsToken, body)
			m := requireError(t, rec, http.StatusBadRequest, api.CodeBadRequest)
			assert.Contains(t, m["message"], want)
			assert.Empty(t, gw.Calls())
		})
	}
}

// realServer is a server around a real gateway on a temp home.
func realServer(t *testing.T) (http.Handler, *gateway.Gateway) {
	t.Helper()
	return realServerWith(t, gateway.Config{Home: t.TempDir()})
}

// realServerWith is a server around a real gateway with cfg (its Logger
// discards, its marker watcher is off, its events land in the server's
// Metrics as cmd/quiesce wires them), started; the gateway stops at the
// end of the test.
func realServerWith(t *testing.T, cfg gateway.Config) (http.Handler, *gateway.Gateway) {
	t.Helper()
	m := server.NewMetrics()
	cfg.Logger, cfg.WatchInterval, cfg.Metrics = slog.New(slog.DiscardHandler), -1, m
	gw, err := gateway.New(cfg)
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, _ = gw.Shutdown(ctx, true)
		_ = gw.Close()
	})
	require.NoError(t, gw.Start(context.Background()))
	s, err := server.New(server.Config{Addr: "127.0.0.1:0", Gateway: gw, Metrics: m, Logger: cfg.Logger,
		Tokens: server.NewTokens(map[string]string{"ops": opsToken, "other": otherToken})})
	require.NoError(t, err)
	return s.Handler(), gw
}

// A refresh through the API (what the status page sends: the active
// request id, with or without the flag) keeps the request; the answer and
// status carry reason, refreshed and persisted.
func TestDrainRefreshThroughTheAPI(t *testing.T) {
	h, gw := realServer(t)
	rec := do(t, h, http.MethodPost, "/api/gateway/drain", opsToken,
		`{"suppress_notification":true,"request_id":"maint-42","reason":"disk swap"}`)
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	m := decodeBody(t, rec)
	assert.Equal(t, "disk swap", m["reason"])
	assert.Equal(t, false, m["refreshed"])
	assert.Equal(t, true, m["persisted"])

	rec = do(t, h, http.MethodPost, "/api/gateway/drain", otherToken, `{"action":"drain","request_id":"maint-42"}`)
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	m = decodeBody(t, rec)
	assert.Equal(t, true, m["refreshed"])
	assert.Equal(t, true, m["was_draining"])
	assert.Equal(t, true, m["suppress_notification"], "the flag stays")
	assert.Equal(t, "disk swap", m["reason"], "the reason stays")
	assert.Equal(t, "ops", m["principal"], "who asked first stays")
	assert.Equal(t, "maint-42", m["request_id"])

	rec = do(t, h, http.MethodGet, "/api/gateway/status", opsToken, "")
	require.Equal(t, http.StatusOK, rec.Code)
	d := decodeBody(t, rec)["drain"].(map[string]any)
	assert.Equal(t, "disk swap", d["reason"])
	assert.Equal(t, true, d["persisted"])
	assert.Equal(t, true, d["suppress_notification"])
	assert.Equal(t, fsm.Draining, gw.State())
}

// A reason that is too long or not printable is a 400 that says so;
// nothing is drained.
func TestDrainReasonRefusedIs400(t *testing.T) {
	for name, reason := range map[string]string{
		"too long":   strings.Repeat("x", 201),
		"line break": `disk\nswap`,
		"escape":     `\u001b[2J`,
	} {
		t.Run(name, func(t *testing.T) {
			h, gw := realServer(t)
			rec := do(t, h, http.MethodPost, "/api/gateway/drain", opsToken, `{"reason":"`+reason+`"}`)
			m := requireError(t, rec, http.StatusBadRequest, api.CodeBadRequest)
			assert.Contains(t, m["message"], "reason")
			assert.Equal(t, fsm.Running, gw.State(), "nothing drained")
		})
	}
}

// A marker the gateway could not write is a 503 marker_unwritable naming
// the path and the cause, with the state (draining: the gate closed),
// persisted false and the request id to refresh or cancel it.
func TestDrainMarkerUnwritableIs503(t *testing.T) {
	res := gateway.DrainResult{State: fsm.Draining,
		Drain: api.DrainInfo{RequestID: "maint-42", Status: "active", Persisted: false}}
	gw := &Gateway{BeginDrainFn: func(context.Context, gateway.DrainRequest) (gateway.DrainResult, error) {
		return res, &gateway.UnwritableError{Result: res, Path: "/home/q/.drain_request.json", Err: syscall.ENOSPC}
	}}
	rec := do(t, MustServer(t, gw).Handler(), http.MethodPost, "/api/gateway/drain", opsToken, `{"request_id":"maint-42"}`)
	m := requireError(t, rec, http.StatusServiceUnavailable, api.CodeMarkerUnwritable)
	assert.Equal(t, "draining", m["state"])
	assert.Equal(t, false, m["persisted"])
	assert.Equal(t, "maint-42", m["request_id"])
	msg := m["message"].(string)
	assert.Contains(t, msg, "/home/q/.drain_request.json")
	assert.Contains(t, msg, "no space left on device")
	assert.Contains(t, msg, "restart")
	assert.NotEmpty(t, rec.Header().Get("Retry-After"))
}
