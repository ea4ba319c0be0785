package server_test

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/quiesce-dev/quiesce/api"
)

// TestTurnRoute checks the turn route, which mux matches without a path
// template: its session id, its 404s and 405, and its metrics label.
func TestTurnRoute(t *testing.T) {
	h := MustServer(t, &Gateway{}).Handler()
	rec := do(t, h, http.MethodPost, "/v1/sessions/s-1/messages", opsToken, `{"text":"hi"}`)
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	assert.JSONEq(t, `{"session":"s-1","reply":"hi"}`, rec.Body.String())
	assert.Equal(t, "application/json", rec.Header().Get("Content-Type"))
	assert.Equal(t, "nosniff", rec.Header().Get("X-Content-Type-Options"))

	for _, path := range []string{"/v1/sessions//messages", "/v1/sessions/a/b/messages", "/v1/sessions/messages", "/v1/sessions/a/messages/"} {
		requireError(t, do(t, h, http.MethodPost, path, opsToken, `{"text":"hi"}`), http.StatusNotFound, api.CodeNotFound)
	}
	rec = do(t, h, http.MethodGet, "/v1/sessions/a/messages", opsToken, "")
	requireError(t, rec, http.StatusMethodNotAllowed, api.CodeMethodNotAllowed)
	assert.Equal(t, "POST", rec.Header().Get("Allow"))

	rec = do(t, h, http.MethodGet, "/metrics", "", "")
	require.Equal(t, http.StatusOK, rec.Code)
	assert.Contains(t, rec.Body.String(), `quiesce_http_requests_total{code="200",route="/v1/sessions/{id}/messages"} 1`)
	assert.Contains(t, rec.Body.String(), `quiesce_http_requests_total{code="405",route="unmatched"} 1`)
}

// a single-dot segment where a route has a variable ({id} = ".") is
// a 404 and never reaches the gateway.
func TestSingleDotSessionSegmentIs404(t *testing.T) {
	for _, path := range []string{"/v1/sessions/./messages", "/v1/sessions/%2e/messages", "/v1/sessions/%2E/messages"} {
		gw := &Gateway{}
		rec := do(t, MustServer(t, gw).Handler(), http.MethodPost, path, opsToken, `{"text":"hi"}`)
		requireError(t, rec, http.StatusNotFound, api.CodeNotFound)
		assert.Empty(t, gw.Calls(), path)
	}
}
