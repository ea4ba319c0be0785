package agent

import (
	"bytes"
	"context"
	"encoding/json"
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
// body to its end and closes it, whatever the answer; otherwise (had it
// left one unread or open: a non-200 answer after 200 bytes; a chunked
// JSON reply after the decoder's last token) net/http could not reuse the
// connection and every such turn would dial the upstream anew.
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
		{"JSON", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte(`{"reply":"hi"}` + "\n"))
		}},
		{"streamed", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/event-stream")
			for _, part := range []string{"one ", "two"} {
				_, _ = w.Write([]byte("data: " + part + "\n\n"))
				w.(http.Flusher).Flush()
			}
		}},
		{"201 refused", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusCreated)
			_, _ = w.Write([]byte(strings.Repeat(`{"reply":"x"}`, 100)))
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			up := newUpstreamServer(t, tc.h)
			a, err := NewHTTP(up.URL, HTTPOptions{})
			require.NoError(t, err)
			for i := range 20 {
				_, _ = a.Run(testContext(t), Turn{Session: "s", Text: "x", TurnID: fmt.Sprint(i)})
			}
			require.LessOrEqual(t, up.conns.Load(), int32(2), "20 sequential turns opened %d connections", up.conns.Load())
		})
	}
}

// upstreamServer is a loopback test upstream that counts the connections
// the agent opens to it.
type upstreamServer struct {
	*httptest.Server
	conns atomic.Int32 // connections opened (ConnState runs on the server's goroutines)
}

// newUpstreamServer starts h on loopback until the test ends. It reads
// each request's body before h runs (h gets a copy): net/http notices a
// client that went away, and cancels r.Context(), only once the body has
// been read.
func newUpstreamServer(t *testing.T, h http.HandlerFunc) *upstreamServer {
	t.Helper()
	u := &upstreamServer{Server: httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		h(w, r)
	}))}
	u.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			u.conns.Add(1)
		}
	}
	u.Start()
	t.Cleanup(u.Close)
	return u
}

// errTestDeadline is the cause of the deadline each test's turn runs
// under: a turn that ends with it was cut off by the test, not by the
// agent's own timeout.
var errTestDeadline = errors.New("the test's deadline passed")

// runOnItsOwn runs a turn under no deadline of the caller, so that only
// the agent's own timeout can end it, and fails the test if the turn has
// not ended 10 s later (far beyond any timeout the tests give the agent):
// a bug that would hang fails by assertion. It then cancels the turn.
func runOnItsOwn(t *testing.T, a Agent, turn Turn) error {
	t.Helper()
	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	out := make(chan error, 1)
	go func() {
		_, err := a.Run(ctx, turn)
		out <- err
	}()
	select {
	case err := <-out:
		return err
	case <-time.After(10 * time.Second):
		cancel(errTestDeadline)
		<-out
		require.Fail(t, "the turn did not end at the agent's timeout")
		return nil
	}
}

// testContext bounds a turn, so a bug that would hang fails by assertion.
func testContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeoutCause(context.Background(), 10*time.Second, errTestDeadline)
	t.Cleanup(cancel)
	return ctx
}

// sse writes a server-sent event stream, flushed.
func sse(body string) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		_, _ = io.WriteString(w, body)
	}
}

// TestHTTPAgentRequest: each turn is a POST of the documented JSON body
// with the turn id also in X-Request-Id, asking for JSON or a stream.
func TestHTTPAgentRequest(t *testing.T) {
	got := make(chan *http.Request, 1)
	bodies := make(chan upstreamRequest, 1)
	up := newUpstreamServer(t, func(w http.ResponseWriter, r *http.Request) {
		var req upstreamRequest
		dec := json.NewDecoder(r.Body)
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		got <- r
		bodies <- req
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"reply":"ok"}`)
	})
	a, err := NewHTTP(up.URL+"/turn", HTTPOptions{})
	require.NoError(t, err)
	reply, err := a.Run(testContext(t), Turn{Session: "alice", Text: "hello", TurnID: "t-1", EventID: "e-1"})
	require.NoError(t, err)
	assert.Equal(t, "ok", reply)
	r := recv(t, got)
	assert.Equal(t, http.MethodPost, r.Method)
	assert.Equal(t, "/turn", r.URL.Path)
	assert.Equal(t, "t-1", r.Header.Get("X-Request-Id"))
	assert.Equal(t, "application/json", r.Header.Get("Content-Type"))
	assert.Contains(t, r.Header.Get("Accept"), "text/event-stream")
	assert.Equal(t, upstreamRequest{Session: "alice", Text: "hello", TurnID: "t-1", EventID: "e-1"}, recv(t, bodies))
}

// TestHTTPAgentReplies: a 200 with a JSON reply or an event stream is the
// reply; each event's data (its data lines joined by newlines, one
// leading space of each cut) is one delta, and the reply is the deltas
// joined.
func TestHTTPAgentReplies(t *testing.T) {
	for _, tc := range []struct {
		name   string
		h      http.HandlerFunc
		reply  string
		deltas []string
	}{
		{name: "JSON", h: func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			_, _ = io.WriteString(w, `{"reply":"hi there"}`)
		}, reply: "hi there"},
		{name: "JSON with a charset", h: func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "application/json; charset=utf-8")
			_, _ = io.WriteString(w, `{"reply":"hi"}`)
		}, reply: "hi"},
		{name: "empty JSON reply", h: func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			_, _ = io.WriteString(w, `{"reply":""}`)
		}, reply: ""},
		{name: "events", h: sse("data: one \n\nevent: token\nid: 7\ndata: two\n\n"),
			reply: "one two", deltas: []string{"one ", "two"}},
		{name: "multi-line data", h: sse("data: line one\ndata: line two\n\n"),
			reply: "line one\nline two", deltas: []string{"line one\nline two"}},
		{name: "only one leading space cut", h: sse("data:no space\n\ndata:  two spaces\n\n"),
			reply: "no space two spaces", deltas: []string{"no space", " two spaces"}},
		{name: "a bare data line is an empty line", h: sse("data: a\ndata\ndata: b\n\n"),
			reply: "a\n\nb", deltas: []string{"a\n\nb"}},
		{name: "comments and other fields ignored", h: sse(": keep-alive\nretry: 10\ndata: x\n\n: bye\n\n"),
			reply: "x", deltas: []string{"x"}},
		{name: "last event without its blank line", h: sse("data: first\n\ndata: last"),
			reply: "firstlast", deltas: []string{"first", "last"}},
		{name: "CRLF line ends", h: sse("data: a\r\n\r\ndata: b\r\n\r\n"),
			reply: "ab", deltas: []string{"a", "b"}},
		{name: "stream with a charset", h: func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "text/event-stream; charset=utf-8")
			_, _ = io.WriteString(w, "data: s\n\n")
		}, reply: "s", deltas: []string{"s"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			up := newUpstreamServer(t, tc.h)
			a, err := NewHTTP(up.URL, HTTPOptions{})
			require.NoError(t, err)
			var deltas []string
			reply, err := a.Run(testContext(t), Turn{Session: "s", Text: "x", TurnID: "t1",
				OnDelta: func(d string) { deltas = append(deltas, d) }})
			require.NoError(t, err)
			assert.Equal(t, tc.reply, reply)
			assert.Equal(t, tc.deltas, deltas)
		})
	}
}

// TestHTTPAgentRefusesWhatIsNotAReply: only a 200 carries a reply (a 201
// or a 204 with a reply in it is still a failure); anything else fails the
// turn with an *UpstreamError naming the status, the turn and what went
// wrong, and no delta of a refused answer reaches the listener.
func TestHTTPAgentRefusesWhatIsNotAReply(t *testing.T) {
	jsonWith := func(status int, body string) http.HandlerFunc {
		return func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(status)
			_, _ = io.WriteString(w, body)
		}
	}
	big := strings.Repeat("x", maxUpstreamReply)
	for _, tc := range []struct {
		name   string
		h      http.HandlerFunc
		status int
		reason string
	}{
		{"201 with a reply", jsonWith(http.StatusCreated, `{"reply":"created"}`), 201, `{"reply":"created"}`},
		{"202 with a reply", jsonWith(http.StatusAccepted, `{"reply":"later"}`), 202, `{"reply":"later"}`},
		{"204", jsonWith(http.StatusNoContent, ``), 204, ""},
		{"201 stream", func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "text/event-stream")
			w.WriteHeader(http.StatusCreated)
			_, _ = io.WriteString(w, "data: no\n\n")
		}, 201, "data: no"},
		{"500", func(w http.ResponseWriter, _ *http.Request) {
			http.Error(w, "model overloaded", http.StatusInternalServerError)
		}, 500, "model overloaded"},
		{"plain text", func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "text/plain")
			_, _ = io.WriteString(w, "hi")
		}, 200, "unexpected content type"},
		{"JSON without a reply", jsonWith(http.StatusOK, `{"answer":"x"}`), 200, `without a "reply"`},
		{"JSON reply not a string", jsonWith(http.StatusOK, `{"reply":5}`), 200, "bad JSON reply"},
		{"broken JSON", jsonWith(http.StatusOK, `{"reply":`), 200, "bad JSON reply"},
		{"JSON over the limit", jsonWith(http.StatusOK, `{"reply":"`+big+`"}`), 200, "bad JSON reply"},
		{"stream line over the limit", sse("data: " + big + "\n\ndata: more\n\n"), 200, "stream broken"},
		{"stream over the limit in small events", func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "text/event-stream")
			chunk := "data: " + strings.Repeat("y", 64<<10) + "\n\n"
			for range maxUpstreamReply/(64<<10) + 2 {
				if _, err := io.WriteString(w, chunk); err != nil {
					return
				}
			}
		}, 200, "too large"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			up := newUpstreamServer(t, tc.h)
			a, err := NewHTTP(up.URL, HTTPOptions{})
			require.NoError(t, err)
			var deltas int
			reply, err := a.Run(testContext(t), Turn{Session: "s", Text: "x", TurnID: "t-9", OnDelta: func(string) { deltas++ }})
			ue, ok := errors.AsType[*UpstreamError](err)
			require.True(t, ok, "want an *UpstreamError, got reply %.40q, error %v", reply, err)
			assert.Empty(t, reply)
			assert.Equal(t, tc.status, ue.Status)
			assert.Contains(t, ue.Reason, tc.reason)
			assert.Equal(t, "t-9", ue.TurnID, "the error names the turn")
			assert.Equal(t, up.URL, ue.URL)
			if tc.status != http.StatusOK {
				assert.Zero(t, deltas, "a refused answer streams nothing")
			}
		})
	}
}

// TestHTTPAgentStallMidStreamIsATimeout: an upstream that sends a first
// event and then stalls, holding its connection open, ends the turn at
// the agent's timeout with the timeout's failure: not a hang, and not a
// broken stream.
func TestHTTPAgentStallMidStreamIsATimeout(t *testing.T) {
	up := newUpstreamServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		_, _ = io.WriteString(w, "data: first\n\n")
		w.(http.Flusher).Flush()
		<-r.Context().Done() // the stall: until the agent gives up
	})
	a, err := NewHTTP(up.URL, HTTPOptions{Timeout: 300 * time.Millisecond})
	require.NoError(t, err)
	var deltas []string
	err = runOnItsOwn(t, a, Turn{Session: "s", Text: "x", TurnID: "t-2", OnDelta: func(d string) { deltas = append(deltas, d) }})
	ue, ok := errors.AsType[*UpstreamError](err)
	require.True(t, ok, "want the timeout's *UpstreamError, got %v", err)
	assert.Zero(t, ue.Status, "a timeout has no status")
	assert.True(t, strings.HasPrefix(ue.Reason, "timed out after "), "reason %q", ue.Reason)
	assert.Equal(t, 300*time.Millisecond, ue.Timeout, "the error carries the timeout it ran into")
	assert.Equal(t, "t-2", ue.TurnID)
	assert.Equal(t, []string{"first"}, deltas, "the first event arrived before the stall")
}

// TestHTTPAgentStallBeforeAnswerIsATimeout: an upstream that never
// answers ends the turn at the agent's timeout too.
func TestHTTPAgentStallBeforeAnswerIsATimeout(t *testing.T) {
	up := newUpstreamServer(t, func(_ http.ResponseWriter, r *http.Request) { <-r.Context().Done() })
	a, err := NewHTTP(up.URL, HTTPOptions{Timeout: 300 * time.Millisecond})
	require.NoError(t, err)
	err = runOnItsOwn(t, a, Turn{Session: "s", Text: "x", TurnID: "t-3"})
	ue, ok := errors.AsType[*UpstreamError](err)
	require.True(t, ok, "want the timeout's *UpstreamError, got %v", err)
	assert.Zero(t, ue.Status)
	assert.True(t, strings.HasPrefix(ue.Reason, "timed out after "), "reason %q", ue.Reason)
	assert.Equal(t, 300*time.Millisecond, ue.Timeout, "the error carries the timeout it ran into")
}

// TestHTTPAgentCancelReturnsTheCause: a turn cancelled mid-stream (a
// forced shutdown) returns the cancel's cause, not a timeout or an
// upstream failure, and the upstream sees its request cancelled.
func TestHTTPAgentCancelReturnsTheCause(t *testing.T) {
	cancelled := make(chan struct{})
	up := newUpstreamServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		_, _ = io.WriteString(w, "data: first\n\n")
		w.(http.Flusher).Flush()
		<-r.Context().Done()
		close(cancelled)
	})
	a, err := NewHTTP(up.URL, HTTPOptions{Timeout: time.Minute})
	require.NoError(t, err)
	ctx, cancel := context.WithCancelCause(testContext(t))
	_, err = a.Run(ctx, Turn{Session: "s", Text: "x", OnDelta: func(string) { cancel(errInterrupted) }})
	require.ErrorIs(t, err, errInterrupted)
	recv(t, cancelled)
}

// TestHTTPAgentDeltaArrivesWhileUpstreamHoldsTheRest: each event is a
// delta as soon as it arrives, not when the stream ends: the upstream
// sends its second event only once the first delta has reached the
// listener.
func TestHTTPAgentDeltaArrivesWhileUpstreamHoldsTheRest(t *testing.T) {
	first := make(chan string, 1)
	up := newUpstreamServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		_, _ = io.WriteString(w, "data: first\n\n")
		w.(http.Flusher).Flush()
		select {
		case <-first: // the listener has it: now the rest
		case <-time.After(5 * time.Second):
			_, _ = io.WriteString(w, "data: the first delta never reached the listener\n\n")
			return
		case <-r.Context().Done():
			return
		}
		_, _ = io.WriteString(w, "data: second\n\n")
	})
	a, err := NewHTTP(up.URL, HTTPOptions{})
	require.NoError(t, err)
	var deltas []string
	reply, err := a.Run(testContext(t), Turn{Session: "s", Text: "x", OnDelta: func(d string) {
		deltas = append(deltas, d)
		if len(deltas) == 1 {
			first <- d
		}
	}})
	require.NoError(t, err)
	assert.Equal(t, []string{"first", "second"}, deltas)
	assert.Equal(t, "firstsecond", reply)
}
