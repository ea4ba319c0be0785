package server_test

import (
	"io"
	"net/http"
	"net/http/httptrace"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestTurnsReuseTheConnection shows that turns answered on a keep-alive
// connection leave it reusable: the handler reads each body to its end,
// which must not make net/http close the connection. A body with an
// escape and a bad body (a 400, read whole too) are sent in between.
func TestTurnsReuseTheConnection(t *testing.T) {
	s := MustServer(t, &Gateway{})
	MustOpen(t, s)
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
	defer hc.CloseIdleConnections()
	send := func(body string) (code int, reused bool) {
		t.Helper()
		req, err := http.NewRequest(http.MethodPost, s.URL()+"/v1/sessions/a/messages", strings.NewReader(body))
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer "+opsToken)
		req = req.WithContext(httptrace.WithClientTrace(req.Context(), &httptrace.ClientTrace{
			GotConn: func(info httptrace.GotConnInfo) { reused = info.Reused },
		}))
		resp, err := hc.Do(req)
		require.NoError(t, err)
		_, _ = io.Copy(io.Discard, resp.Body)
		require.NoError(t, resp.Body.Close())
		return resp.StatusCode, reused
	}
	code, _ := send(`{"text":"first"}`)
	require.Equal(t, http.StatusOK, code)
	for i, body := range []string{`{"text":"again"}`, `{"text":"a \"quoted\" one"}`, `{"text":1}`, `{"text":"last"}`} {
		code, reused := send(body)
		assert.True(t, reused, "turn %d (%s) on a new connection", i, body)
		if body == `{"text":1}` {
			assert.Equal(t, http.StatusBadRequest, code)
		} else {
			assert.Equal(t, http.StatusOK, code, body)
		}
	}
}
