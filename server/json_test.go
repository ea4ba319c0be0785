package server_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/quiesce-dev/quiesce/api"
	"github.com/quiesce-dev/quiesce/fsm"
	"github.com/quiesce-dev/quiesce/internal/testing/fakegateway"
	"github.com/quiesce-dev/quiesce/server"
)

// TestFieldNamesMatchExactly shows that a request body key must be exactly
// a field's json name: encoding/json alone matches names case-
// insensitively, so {"action":"drain","ACTION":"cancel"} would cancel and
// {"Force":true} would force a shutdown. Such a body, and one with a key
// twice, is a 400 naming the key, and reaches no gateway method.
func TestFieldNamesMatchExactly(t *testing.T) {
	const (
		drain    = "/api/gateway/drain"
		shutdown = "/api/gateway/shutdown"
		message  = "/v1/sessions/a/messages"
		event    = "/api/gateway/events"
	)
	tests := []struct {
		name, path, body, field string
	}{
		{"Drain/ACTION", drain, `{"ACTION":"cancel"}`, "ACTION"},
		{"Drain/ActionThenACTION", drain, `{"action":"drain","ACTION":"cancel"}`, "ACTION"},
		{"Drain/Action", drain, `{"Action":"cancel"}`, "Action"},
		{"Drain/suppress_Notification", drain, `{"suppress_Notification":true}`, "suppress_Notification"},
		{"Drain/Request_Id", drain, `{"action":"cancel","Request_Id":"r-1"}`, "Request_Id"},
		{"Drain/DuplicateAction", drain, `{"action":"drain","action":"cancel"}`, "action"},
		{"Drain/DuplicateSameValue", drain, `{"action":"drain","action":"drain"}`, "action"},
		{"Drain/EscapedUpperCase", drain, `{"\u0041ction":"cancel"}`, "Action"},
		{"Shutdown/Force", shutdown, `{"Force":true}`, "Force"},
		{"Shutdown/FORCE", shutdown, `{"FORCE":true}`, "FORCE"},
		{"Shutdown/DuplicateForce", shutdown, `{"force":false,"force":true}`, "force"},
		{"Message/TEXT", message, `{"TEXT":"hi"}`, "TEXT"},
		{"Message/TextAndText", message, `{"text":"hi","Text":"ho"}`, "Text"},
		{"Message/DuplicateText", message, `{"text":"hi","text":"ho"}`, "text"},
		{"Event/Session", event, `{"Session":"a","text":"b"}`, "Session"},
		{"Event/TEXT", event, `{"session":"a","TEXT":"b"}`, "TEXT"},
		{"Event/DuplicateSession", event, `{"session":"a","text":"b","session":"c"}`, "session"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			gw := &Gateway{}
			rec := do(t, MustServer(t, gw).Handler(), http.MethodPost, tt.path, opsToken, tt.body)
			m := requireError(t, rec, http.StatusBadRequest, api.CodeBadRequest)
			assert.Contains(t, m["message"], `"`+tt.field+`"`, "the message names the field")
			assert.Empty(t, gw.Calls(), "nothing reaches the gateway")
		})
	}
	t.Run("CaseHint", func(t *testing.T) {
		rec := do(t, MustServer(t, &Gateway{}).Handler(), http.MethodPost, shutdown, opsToken, `{"Force":true}`)
		msg := decodeBody(t, rec)["message"].(string)
		assert.Contains(t, msg, `did you mean "force"`)
	})
	t.Run("ExactNamesAccepted", func(t *testing.T) {
		for _, ok := range []struct{ path, body string }{
			{drain, `{"action":"drain","suppress_notification":true,"request_id":"r-1"}`},
			{drain, ` { "action" : null } `},
			{drain, `{"\u0061ction":"drain"}`}, // the same name, escaped
			{shutdown, `{"force":false}`},
			{message, `{"text":"hi"}`},
			{event, `{"session":"a","text":"b"}`},
		} {
			rec := do(t, MustServer(t, &Gateway{}).Handler(), http.MethodPost, ok.path, opsToken, ok.body)
			assert.Lessf(t, rec.Code, 300, "%s %s: %s", ok.path, ok.body, rec.Body.String())
		}
	})
	t.Run("TypeErrorNamesField", func(t *testing.T) {
		for body, field := range map[string]string{
			`{"action":"drain","request_id":5}`: "request_id",
			`{"force":"yes"}`:                   "force",
		} {
			path := drain
			if strings.Contains(body, "force") {
				path = shutdown
			}
			rec := do(t, MustServer(t, &Gateway{}).Handler(), http.MethodPost, path, opsToken, body)
			m := requireError(t, rec, http.StatusBadRequest, api.CodeBadRequest)
			assert.Contains(t, m["message"], `"`+field+`"`)
			assert.NotContains(t, m["message"], "Go", "no Go type names")
		}
	})
	t.Run("WhitespaceOnlyIsEmpty", func(t *testing.T) {
		gw := &Gateway{}
		rec := do(t, MustServer(t, gw).Handler(), http.MethodPost, drain, opsToken, " \n\t ")
		require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
		assert.Equal(t, "drain", decodeBody(t, rec)["action"])
		rec = do(t, MustServer(t, gw).Handler(), http.MethodPost, message, opsToken, " \n ")
		requireError(t, rec, http.StatusBadRequest, api.CodeBadRequest)
	})
	t.Run("TooLargeAfterObject", func(t *testing.T) {
		body := `{}` + strings.Repeat(" ", server.MaxBodyBytes)
		rec := do(t, MustServer(t, &Gateway{}).Handler(), http.MethodPost, drain, opsToken, body)
		requireError(t, rec, http.StatusRequestEntityTooLarge, api.CodeTooLarge)
	})
	t.Run("TooLargeIs413WhateverItHolds", func(t *testing.T) {
		// docs/API.md: a body over 64 KiB is a 413, also when it is not
		// JSON or goes wrong before its end.
		pad := strings.Repeat(" ", server.MaxBodyBytes)
		for _, body := range []string{`[` + pad, `{"text":5` + pad, `{"text":"` + pad + `"}`, `x` + pad} {
			gw := &Gateway{}
			rec := do(t, MustServer(t, gw).Handler(), http.MethodPost, message, opsToken, body)
			requireError(t, rec, http.StatusRequestEntityTooLarge, api.CodeTooLarge)
			assert.Empty(t, gw.Calls())
		}
		rec := do(t, MustServer(t, &Gateway{}).Handler(), http.MethodPost, message, opsToken,
			`{"text":"`+pad[:server.MaxBodyBytes-len(`{"text":""}`)]+`"}`)
		assert.Equal(t, http.StatusOK, rec.Code, "a body of exactly 64 KiB is taken")
	})
}

// TestJSONAnswersAreOneObjectAndANewline: docs/API.md, Conventions:
// "Responses are JSON (Content-Type: application/json, one object and a
// newline)", answers and errors alike, with X-Content-Type-Options:
// nosniff.
func TestJSONAnswersAreOneObjectAndANewline(t *testing.T) {
	h := MustServer(t, fakegateway.InState(fsm.Draining)).Handler()
	for _, rq := range []struct {
		method, path, token, body string
		status                    int
	}{
		{http.MethodGet, "/healthz", "", "", http.StatusOK},
		{http.MethodGet, "/readyz", "", "", http.StatusServiceUnavailable},
		{http.MethodGet, "/api/gateway/status", opsToken, "", http.StatusOK},
		{http.MethodGet, api.TurnsPath, opsToken, "", http.StatusOK},
		{http.MethodPost, "/api/gateway/events", opsToken, `{"session":"a","text":"b"}`, http.StatusAccepted},
		{http.MethodPost, "/v1/sessions/a/messages", opsToken, `{"text":"b"}`, http.StatusServiceUnavailable},
		{http.MethodPost, "/api/gateway/drain", opsToken, `{"action":"nope"}`, http.StatusBadRequest},
		{http.MethodGet, "/api/gateway/status", "", "", http.StatusUnauthorized},
		{http.MethodGet, "/nope", "", "", http.StatusNotFound},
		{http.MethodGet, "/api/gateway/drain", "", "", http.StatusMethodNotAllowed},
	} {
		t.Run(rq.method+" "+rq.path, func(t *testing.T) {
			rec := do(t, h, rq.method, rq.path, rq.token, rq.body)
			require.Equal(t, rq.status, rec.Code, rec.Body.String())
			assert.Equal(t, "application/json", rec.Header().Get("Content-Type"))
			assert.Equal(t, "nosniff", rec.Header().Get("X-Content-Type-Options"))
			body := rec.Body.String()
			require.True(t, strings.HasSuffix(body, "}\n"), "one object and a newline: %q", body)
			assert.Equal(t, 1, strings.Count(body, "\n"), "one line: %q", body)
			var m map[string]any
			assert.NoError(t, json.Unmarshal([]byte(body), &m))
		})
	}
}
