package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

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

// TestHTTPAgentStreamParsing: the upstream's event stream, parsed as SSE:
// each event's data lines joined with newlines is one delta; only the one
// space after "data:" goes; comments and other fields are skipped; a last
// event the upstream ends without its blank line still counts.
func TestHTTPAgentStreamParsing(t *testing.T) {
	for _, tc := range []struct {
		name   string
		stream string
		deltas []string
	}{
		{"one event a chunk", "data: one \n\ndata: two\n\n", []string{"one ", "two"}},
		{"data lines joined", "data: line one\ndata: line two\n\n", []string{"line one\nline two"}},
		{"last event without its blank line", "data: first\n\ndata: last", []string{"first", "last"}},
		{"last event ending in one newline", "data: first\n\ndata: last\n", []string{"first", "last"}},
		{"only one space removed", "data:   indented  \n\n", []string{"  indented  "}},
		{"no space", "data:tight\n\n", []string{"tight"}},
		{"bare data field", "data\ndata: x\n\n", []string{"\nx"}},
		{"comments and other fields skipped", ": keep-alive\nevent: delta\nid: 7\ndata: hi\n\n", []string{"hi"}},
		{"empty stream", "", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "text/event-stream")
				_, _ = io.WriteString(w, tc.stream)
			}))
			defer srv.Close()
			a, err := NewHTTP(srv.URL, HTTPOptions{})
			require.NoError(t, err)
			var deltas []string // OnDelta runs on Run's goroutine
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			reply, err := a.Run(ctx, Turn{Session: "s", Text: "x", TurnID: "t1",
				OnDelta: func(d string) { deltas = append(deltas, d) }})
			require.NoError(t, err)
			assert.Equal(t, tc.deltas, deltas)
			assert.Equal(t, strings.Join(tc.deltas, ""), reply, "the reply is the deltas' concatenation")
		})
	}
}
