package agent

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestNewHTTPRefusesBadURLs: a URL that is not http(s)://host is refused
// with ErrInvalid, before any turn.
func TestNewHTTPRefusesBadURLs(t *testing.T) {
	for _, u := range []string{"", "ftp://x/y", "http://", "not a url", "/relative"} {
		_, err := NewHTTP(u, HTTPOptions{})
		assert.True(t, errors.Is(err, ErrInvalid), "%q: %v", u, err)
	}
}

// TestHTTPAgentReusesConnections: the http agent reads every response
// body to its end before closing it; otherwise (had it closed one unread:
// a non-200 answer after 200 bytes; a chunked JSON reply after the
// decoder's last token) net/http could not reuse the connection and every
// such turn would dial the upstream anew.
func TestHTTPAgentReusesConnections(t *testing.T) {
	for _, tc := range []struct {
		name string
		h    http.HandlerFunc
	}{
		{"non-200 with a body", func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte(strings.Repeat("busy ", 100)))
		}},
		{"chunked JSON", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte(`{"reply":"hi"}`))
			w.(http.Flusher).Flush() // chunked, as many frameworks stream JSON
			_, _ = w.Write([]byte("\n"))
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var conns atomic.Int32
			srv := httptest.NewUnstartedServer(tc.h)
			srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
				if s == http.StateNew {
					conns.Add(1)
				}
			}
			srv.Start()
			defer srv.Close()
			a, err := NewHTTP(srv.URL, HTTPOptions{})
			require.NoError(t, err)
			for i := range 20 {
				_, _ = a.Run(context.Background(), Turn{Session: "s", Text: "x", TurnID: fmt.Sprint(i)})
			}
			require.LessOrEqual(t, conns.Load(), int32(2), "20 sequential turns opened %d connections", conns.Load())
		})
	}
}
