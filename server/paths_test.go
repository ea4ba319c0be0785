package server_test

import (
	"bufio"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/quiesce-dev/quiesce/api"
)

// TestDotSegmentsAreJSON404 shows that a path with a dot segment ("." or
// "..", plain or percent-encoded) or an empty one ("//") is a JSON 404
// before routing, for every method: mux alone answers it with a 301 to the
// cleaned path and an empty body.
func TestDotSegmentsAreJSON404(t *testing.T) {
	paths := []string{
		"/v1/sessions/../messages",
		"/v1/sessions/a/../a/messages",
		"/v1/sessions/./a/messages",
		"/v1/sessions/a/messages/.",
		"/api/gateway/./drain",
		"/api/gateway/../gateway/drain",
		"/api//gateway/status",
		"//api/gateway/status",
		"/api/gateway/status/",
		"/api/gateway/status//",
		"/v1/sessions/%2e%2e/messages",
		"/v1/sessions/%2E%2E/messages",
		"/v1/sessions/.%2e/messages",
		"/api/gateway/%2e/drain",
		"/v1/sessions/a%2F..%2Fb/messages",
		"/healthz/..",
		"/healthz/.",
		"/./healthz",
		"/metrics/../healthz",
	}
	for _, path := range paths {
		for _, method := range []string{http.MethodGet, http.MethodPost, http.MethodHead} {
			t.Run(method+" "+path, func(t *testing.T) {
				gw := &Gateway{}
				rec := do(t, MustServer(t, gw).Handler(), method, path, opsToken, `{"text":"hi"}`)
				assert.Empty(t, rec.Header().Get("Location"), "no redirect")
				requireError(t, rec, http.StatusNotFound, api.CodeNotFound)
				assert.Empty(t, gw.Calls(), "nothing reaches the gateway")
			})
		}
	}
	t.Run("DotsInsideSegmentsAreRouted", func(t *testing.T) {
		h := MustServer(t, &Gateway{}).Handler()
		rec := do(t, h, http.MethodPost, "/v1/sessions/a..b/messages", opsToken, `{"text":"hi"}`)
		assert.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
		rec = do(t, h, http.MethodPost, "/v1/sessions/.../messages", opsToken, `{"text":"hi"}`)
		assert.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	})
	t.Run("Counted", func(t *testing.T) {
		h := MustServer(t, &Gateway{}).Handler()
		do(t, h, http.MethodGet, "/healthz/..", "", "")
		body := do(t, h, http.MethodGet, "/metrics", "", "").Body.String()
		assert.Contains(t, body, `quiesce_http_requests_total{code="404",route="unmatched"} 1`)
	})
	t.Run("OverTCP", func(t *testing.T) {
		s := MustServer(t, &Gateway{})
		MustOpen(t, s)
		conn, err := net.Dial("tcp", s.Addr())
		require.NoError(t, err)
		defer conn.Close()
		require.NoError(t, conn.SetDeadline(time.Now().Add(10*time.Second)))
		_, err = conn.Write([]byte("GET /v1/sessions/%2e%2e/messages HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"))
		require.NoError(t, err)
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		require.NoError(t, err, "an answer before the deadline")
		defer resp.Body.Close()
		assert.Equal(t, http.StatusNotFound, resp.StatusCode)
		assert.Equal(t, "application/json", resp.Header.Get("Content-Type"))
		assert.Empty(t, resp.Header.Get("Location"))
	})
}
