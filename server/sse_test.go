package server_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/quiesce-dev/quiesce/fsm"
	"github.com/quiesce-dev/quiesce/gateway"
)

// sseEvent is one parsed server-sent event.
type sseEvent struct {
	name string
	data map[string]any
}

// parseSSE parses a whole event stream.
func parseSSE(t *testing.T, body string) []sseEvent {
	t.Helper()
	var out []sseEvent
	var cur sseEvent
	sc := bufio.NewScanner(strings.NewReader(body))
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if cur.name != "" {
				out = append(out, cur)
			}
			cur = sseEvent{}
		case strings.HasPrefix(line, "event: "):
			cur.name = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			require.NoError(t, json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &cur.data), "data %q", line)
		}
	}
	return out
}

func streamRequest(t *testing.T, h http.Handler, session, text string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(http.MethodPost, "/v1/sessions/"+session+"/messages", strings.NewReader(fmt.Sprintf(`{"text":%q}`, text)))
	req.Header.Set("Authorization", "Bearer "+opsToken)
	req.Header.Set("Accept", "text/event-stream")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	wireHeaders(rec)
	return rec
}

func TestStreamedTurn(t *testing.T) {
	for _, tc := range []struct {
		name   string
		stream func(ctx context.Context, req gateway.TurnRequest) (string, error)
		want   []string // event names in order
		last   map[string]any
	}{
		{"deltas then done", func(_ context.Context, req gateway.TurnRequest) (string, error) {
			req.Started()
			req.Delta("hello ")
			req.Delta("world")
			return "hello world", nil
		}, []string{"delta", "delta", "done"}, map[string]any{"reply": "hello world"}},
		{"interrupted", func(_ context.Context, req gateway.TurnRequest) (string, error) {
			req.Started()
			req.Delta("partial")
			return "", fmt.Errorf("%w: session a", gateway.ErrInterrupted)
		}, []string{"delta", "interrupted"}, map[string]any{"message": gateway.InterruptMessage("a")}},
		{"agent failed", func(_ context.Context, req gateway.TurnRequest) (string, error) {
			req.Started()
			return "", &gateway.AgentError{Upstream: true, Status: 500, Err: errors.New("upstream agent http://x answered 500: secret detail")}
		}, []string{"failed"}, map[string]any{"error": "agent_failed",
			"message": "the agent failed to answer this turn: the upstream agent answered 500 Internal Server Error"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			gw := &Gateway{StreamFn: tc.stream}
			rec := streamRequest(t, MustServer(t, gw).Handler(), "a", "hi")
			require.Equal(t, http.StatusOK, rec.Code)
			assert.Equal(t, "text/event-stream", rec.Header().Get("Content-Type"))
			assert.True(t, rec.Flushed, "events are flushed as written")
			events := parseSSE(t, rec.Body.String())
			var names []string
			for _, e := range events {
				names = append(names, e.name)
			}
			require.Equal(t, tc.want, names)
			assert.Equal(t, tc.last, events[len(events)-1].data)
			assert.NotContains(t, rec.Body.String(), "secret detail")
		})
	}
}

// TestStreamedTurnRefusedBeforeStream: the gate and the session rules
// answer with the usual JSON errors, before any stream starts.
func TestStreamedTurnRefusedBeforeStream(t *testing.T) {
	gw := &Gateway{}
	gw.SetState(fsm.Draining)
	rec := streamRequest(t, MustServer(t, gw).Handler(), "a", "hi")
	requireError(t, rec, http.StatusServiceUnavailable, "draining")
	assert.NotEmpty(t, rec.Header().Get("Retry-After"))

	busy := &Gateway{StreamFn: func(context.Context, gateway.TurnRequest) (string, error) {
		return "", fmt.Errorf("%w: a", gateway.ErrSessionBusy)
	}}
	requireError(t, streamRequest(t, MustServer(t, busy).Handler(), "a", "hi"), http.StatusConflict, "session_busy")
}

// TestStreamedTurnFlushesAsItGoes: a streaming client gets the 200 and
// its headers as soon as the turn is accepted, and each delta as soon as
// the agent emits it, while the turn still runs: the fake agent emits its
// first delta only once the client has the headers, and the rest only
// once the client has read the first delta.
func TestStreamedTurnFlushesAsItGoes(t *testing.T) {
	headersSeen, firstSeen := make(chan struct{}), make(chan struct{})
	gw := &Gateway{StreamFn: func(ctx context.Context, req gateway.TurnRequest) (string, error) {
		req.Started()
		select {
		case <-headersSeen:
		case <-ctx.Done(): // the client gave up: the headers never came
			return "", context.Cause(ctx)
		}
		req.Delta("first ")
		select {
		case <-firstSeen:
		case <-ctx.Done():
			return "", context.Cause(ctx)
		}
		req.Delta("second")
		return "first second", nil
	}}
	srv := httptest.NewServer(MustServer(t, gw).Handler())
	t.Cleanup(srv.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL+"/v1/sessions/a/messages", strings.NewReader(`{"text":"hi"}`))
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+opsToken)
	req.Header.Set("Accept", "text/event-stream")

	type answer struct {
		resp *http.Response
		err  error
	}
	answered := make(chan answer, 1)
	go func() {
		resp, err := srv.Client().Do(req)
		answered <- answer{resp, err}
	}()
	var resp *http.Response
	select {
	case a := <-answered:
		require.NoError(t, a.err)
		resp = a.resp
	case <-time.After(5 * time.Second):
		cancel() // ends the turn
		require.Fail(t, "the stream's headers did not reach the client when the turn was accepted")
	}
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "text/event-stream", resp.Header.Get("Content-Type"))
	close(headersSeen)

	lines := make(chan string) // the stream's data lines, closed at its end
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			if d, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
				lines <- d
			}
		}
	}()
	select {
	case d := <-lines:
		assert.JSONEq(t, `{"text":"first "}`, d)
	case <-time.After(5 * time.Second):
		cancel()
		require.Fail(t, "the first delta did not reach the client while the turn ran")
	}
	close(firstSeen)
	var rest []string
	for d := range lines {
		rest = append(rest, d)
	}
	require.Len(t, rest, 2, "%q", rest)
	assert.JSONEq(t, `{"text":"second"}`, rest[0])
	assert.JSONEq(t, `{"reply":"first second"}`, rest[1])
}
