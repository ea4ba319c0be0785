package server_test

import (
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/quiesce-dev/quiesce/api"
)

// TestTurnRoute checks the turn route: its session id, its 404s and 405
// (with Allow), its JSON headers and its metrics label.
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

// TestTurnPaths is the turn route's table of request targets, each sent
// to a real gateway: which reach a turn (and under which session id, the
// {id} segment percent-decoded), which are 404s (no such route: an empty
// or extra segment, a dot segment, an id with an encoded "/") and which
// the gateway refuses as an invalid session id (400: control characters,
// invalid UTF-8, over 256 bytes).
func TestTurnPaths(t *testing.T) {
	long := strings.Repeat("x", 256)
	tests := []struct {
		target  string
		status  int
		session string // the session of a 200
	}{
		{"/v1/sessions/s-1/messages", http.StatusOK, "s-1"},
		{"/v1/sessions/s-1/messages?x=1", http.StatusOK, "s-1"},
		{"/v1/sessions/a%20b/messages", http.StatusOK, "a b"},
		{"/v1/sessions/caf%C3%A9/messages", http.StatusOK, "café"},
		{"/v1/sessions/café/messages", http.StatusOK, "café"},
		{"/v1/sessions/a%3Fb/messages", http.StatusOK, "a?b"},
		{"/v1/sessions/%25/messages", http.StatusOK, "%"},
		{"/v1/sessions/a%2Eb/messages", http.StatusOK, "a.b"},
		{"/v1/sessions/a..b/messages", http.StatusOK, "a..b"},
		{"/v1/sessions/.../messages", http.StatusOK, "..."},
		{"/v1/sessions/messages/messages", http.StatusOK, "messages"},
		{"/v1/sessions/{id}/messages", http.StatusOK, "{id}"},
		{"/v1/sessions/" + long + "/messages", http.StatusOK, long},
		{"/v1/sessions/" + long + "x/messages", http.StatusBadRequest, ""},
		{"/v1/sessions/a%00b/messages", http.StatusBadRequest, ""},
		{"/v1/sessions/a%0Ab/messages", http.StatusBadRequest, ""},
		{"/v1/sessions/a%7Fb/messages", http.StatusBadRequest, ""},
		{"/v1/sessions/%FF/messages", http.StatusBadRequest, ""},
		{"/v1/sessions/a%2Fb/messages", http.StatusNotFound, ""},
		{"/v1/sessions/a%2fb/messages", http.StatusNotFound, ""},
		{"/v1/sessions//messages", http.StatusNotFound, ""},
		{"/v1/sessions/a/b/messages", http.StatusNotFound, ""},
		{"/v1/sessions/messages", http.StatusNotFound, ""},
		{"/v1/sessions/a/messages/", http.StatusNotFound, ""},
		{"/v1/sessions/a/messagesx", http.StatusNotFound, ""},
		{"/v1/sessions/a/Messages", http.StatusNotFound, ""},
		{"/V1/sessions/a/messages", http.StatusNotFound, ""},
		{"/v1/sessions/", http.StatusNotFound, ""},
		{"/v1/sessions/./messages", http.StatusNotFound, ""},
		{"/v1/sessions/%2e/messages", http.StatusNotFound, ""},
		{"/v1/sessions/../messages", http.StatusNotFound, ""},
		{"/v1/sessions/%2E%2E/messages", http.StatusNotFound, ""},
	}
	h, _ := realServer(t)
	for _, tt := range tests {
		t.Run(tt.target, func(t *testing.T) {
			rec := do(t, h, http.MethodPost, tt.target, opsToken, `{"text":"hi"}`)
			switch tt.status {
			case http.StatusOK:
				require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
				assert.Equal(t, tt.session, decodeBody(t, rec)["session"])
			case http.StatusBadRequest:
				m := requireError(t, rec, http.StatusBadRequest, api.CodeBadRequest)
				assert.Contains(t, m["message"], "session id")
			default:
				requireError(t, rec, tt.status, api.CodeNotFound)
			}
		})
	}
}

// TestRoutesTable is docs/API.md's Routes table, row by row: the methods
// each path takes (every other one is a 405 whose Allow lists them, with
// or without a token: routing comes before authentication), whether it
// needs a token, and that every GET route answers HEAD with the same
// status and Content-Type.
func TestRoutesTable(t *testing.T) {
	for _, rt := range []struct {
		path    string
		allow   string
		token   bool
		success int // of the first allowed method, with a token and an empty body
	}{
		{"/api/gateway/drain", "POST", true, http.StatusOK},
		{"/api/gateway/status", "GET, HEAD", true, http.StatusOK},
		{api.TurnsPath, "GET, HEAD", true, http.StatusOK},
		{api.HistoryPath, "GET, HEAD", true, http.StatusOK},
		{"/api/gateway/shutdown", "POST", true, http.StatusAccepted},
		{"/v1/sessions/alice/messages", "POST", true, http.StatusBadRequest}, // {"text"} is required
		{"/api/gateway/events", "POST", true, http.StatusBadRequest},         // {"session","text"} are required
		{"/api/gateway/events/replay", "POST", true, http.StatusOK},
		{"/healthz", "GET, HEAD", false, http.StatusOK},
		{"/readyz", "GET, HEAD", false, http.StatusOK},
		{"/metrics", "GET, HEAD", false, http.StatusOK},
		{"/", "GET, HEAD", false, http.StatusOK},
		{"/static/page.js", "GET, HEAD", false, http.StatusOK},
		{"/static/page.css", "GET, HEAD", false, http.StatusOK},
	} {
		t.Run(rt.path, func(t *testing.T) {
			h := MustServer(t, &Gateway{}).Handler()
			allowed := strings.Split(rt.allow, ", ")
			first := allowed[0]
			rec := do(t, h, first, rt.path, opsToken, "")
			require.Equal(t, rt.success, rec.Code, rec.Body.String())
			if rt.token {
				requireError(t, do(t, h, first, rt.path, "", ""), http.StatusUnauthorized, api.CodeUnauthorized)
			} else {
				assert.Equal(t, rt.success, do(t, h, first, rt.path, "", "").Code, "no token needed")
			}
			if first == http.MethodGet {
				head := do(t, h, http.MethodHead, rt.path, opsToken, "")
				assert.Equal(t, rec.Code, head.Code, "HEAD answers as GET")
				assert.Equal(t, rec.Header().Get("Content-Type"), head.Header().Get("Content-Type"), "HEAD has GET's headers")
			}
			for _, m := range []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete} {
				if slices.Contains(allowed, m) {
					continue
				}
				for _, token := range []string{opsToken, ""} {
					rec := do(t, h, m, rt.path, token, "")
					require.Equalf(t, http.StatusMethodNotAllowed, rec.Code, "%s %s (token %v): %s", m, rt.path, token != "", rec.Body.String())
					assert.Equalf(t, rt.allow, rec.Header().Get("Allow"), "%s %s", m, rt.path)
				}
			}
		})
	}
}
