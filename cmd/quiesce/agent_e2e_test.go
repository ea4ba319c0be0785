package main_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// event is one server-sent event of a streamed turn.
type event struct {
	name string
	data map[string]any
}

// streamTurn sends a turn asking for server-sent events and returns the
// HTTP status and, for a 200, a channel of its events (closed at the end
// of the stream) and the function that drops the connection.
func streamTurn(t *testing.T, base, session, text string) (int, <-chan event, context.CancelFunc) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/v1/sessions/"+session+"/messages",
		strings.NewReader(fmt.Sprintf(`{"text":%q}`, text)))
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+opsToken)
	req.Header.Set("Accept", "text/event-stream")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		return resp.StatusCode, nil, cancel
	}
	require.Equal(t, "text/event-stream", resp.Header.Get("Content-Type"))
	ch := make(chan event, 64)
	go func() {
		defer close(ch)
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		var cur event
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "":
				if cur.name != "" {
					ch <- cur
				}
				cur = event{}
			case strings.HasPrefix(line, "event: "):
				cur.name = strings.TrimPrefix(line, "event: ")
			case strings.HasPrefix(line, "data: "):
				_ = json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &cur.data)
			}
		}
	}()
	return resp.StatusCode, ch, cancel
}

// nextEvent returns the next event, failing after a bound.
func nextEvent(t *testing.T, ch <-chan event) (event, bool) {
	t.Helper()
	select {
	case e, ok := <-ch:
		return e, ok
	case <-time.After(exitTimeout):
		require.Fail(t, "no event within the bound")
		return event{}, false
	}
}

// TestE2EStreamedTurn: the echo agent's words arrive as deltas, in
// order, then exactly one done with the whole reply, and the stream ends.
func TestE2EStreamedTurn(t *testing.T) {
	t.Parallel()
	p := startGateway(t, newHome(t), fakeProcRoot(t, "boot-sse", 100), "--agent-work", "200ms")
	code, events, _ := streamTurn(t, p.url, "alice", "one two three")
	require.Equal(t, http.StatusOK, code)
	var deltas []string
	for {
		e, ok := nextEvent(t, events)
		require.True(t, ok, "the stream ended without done")
		if e.name == "done" {
			assert.Equal(t, "one two three", e.data["reply"])
			break
		}
		require.Equal(t, "delta", e.name)
		deltas = append(deltas, e.data["text"].(string))
	}
	assert.Equal(t, []string{"one ", "two ", "three"}, deltas)
	_, more := nextEvent(t, events)
	assert.False(t, more, "done is the last event")

	// Refusals are plain JSON before any stream.
	require.Equal(t, http.StatusOK, p.call(http.MethodPost, "/api/gateway/drain", opsToken, "").code)
	code, _, _ = streamTurn(t, p.url, "bob", "hi")
	assert.Equal(t, http.StatusServiceUnavailable, code)
}

// TestE2EStreamedTurnInterrupted: a forced shutdown ends the stream with
// an interrupted event carrying the ping's text.
func TestE2EStreamedTurnInterrupted(t *testing.T) {
	t.Parallel()
	p := startGateway(t, newHome(t), fakeProcRoot(t, "boot-sse2", 100), "--agent-work", "1m", "--drain-timeout", "1m")
	code, events, _ := streamTurn(t, p.url, "alice", "long running words")
	require.Equal(t, http.StatusOK, code)
	p.waitInFlight(1)
	require.Equal(t, http.StatusAccepted, p.call(http.MethodPost, "/api/gateway/shutdown", opsToken, `{"force":true}`).code)
	e, ok := nextEvent(t, events)
	require.True(t, ok)
	assert.Equal(t, "interrupted", e.name)
	assert.Contains(t, e.data["message"], "cut off")
	require.Equal(t, 0, p.wait())
}

// TestE2EStreamClientDisconnectCancelsTurn: a client that drops the
// stream cancels its turn and frees the session at once.
func TestE2EStreamClientDisconnectCancelsTurn(t *testing.T) {
	t.Parallel()
	p := startGateway(t, newHome(t), fakeProcRoot(t, "boot-sse3", 100), "--agent-work", "1m")
	code, _, drop := streamTurn(t, p.url, "alice", "never finishes")
	require.Equal(t, http.StatusOK, code)
	p.waitInFlight(1)
	drop()
	p.waitInFlight(0)
	r := p.call(http.MethodGet, "/api/gateway/status", opsToken, "")
	assert.Equal(t, float64(0), r.body["active_agents"])
	// The session is free again: a new turn is not 409.
	inflight := p.turnAsync("alice", "next")
	p.waitInFlight(1)
	p.signal(syscall.SIGINT)
	p.signal(syscall.SIGINT)
	<-inflight
}

// TestE2EHTTPAgent: quiesce in front of an upstream agent service: JSON
// and streamed replies pass through, a failing upstream is a 502 naming
// its status, internal events reach it with their event id.
func TestE2EHTTPAgent(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var eventIDs []string
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Session string `json:"session"`
			Text    string `json:"text"`
			TurnID  string `json:"turn_id"`
			EventID string `json:"event_id"`
		}
		_ = json.NewDecoder(r.Body).Decode(&req)
		if req.EventID != "" {
			mu.Lock()
			eventIDs = append(eventIDs, req.EventID)
			mu.Unlock()
		}
		switch {
		case req.Text == "fail":
			http.Error(w, "boom", http.StatusInternalServerError)
		case strings.Contains(r.Header.Get("Accept"), "text/event-stream") && strings.HasPrefix(req.Text, "stream"):
			w.Header().Set("Content-Type", "text/event-stream")
			for _, part := range strings.SplitAfter(req.Text, " ") {
				fmt.Fprintf(w, "data: %s\n\n", part)
				w.(http.Flusher).Flush()
			}
		default:
			w.Header().Set("Content-Type", "application/json")
			_ = json.NewEncoder(w).Encode(map[string]string{"reply": "upstream says: " + req.Text})
		}
	}))
	t.Cleanup(up.Close)
	p := startGateway(t, newHome(t), fakeProcRoot(t, "boot-up", 100), "--agent", "http", "--agent-url", up.URL)

	r := p.turn("alice", "hello")
	require.Equal(t, http.StatusOK, r.code, r.raw)
	assert.Equal(t, "upstream says: hello", r.body["reply"])

	r = p.turn("alice", "fail")
	assert.Equal(t, http.StatusBadGateway, r.code, r.raw)
	assert.Equal(t, "agent_failed", r.body["error"])
	assert.Contains(t, r.body["message"], "500")

	code, events, _ := streamTurn(t, p.url, "bob", "stream of words")
	require.Equal(t, http.StatusOK, code)
	var got []string
	for e := range events {
		got = append(got, e.name)
		if e.name == "done" {
			assert.Equal(t, "stream of words", e.data["reply"])
		}
	}
	assert.Equal(t, []string{"delta", "delta", "delta", "done"}, got)

	r = p.call(http.MethodPost, "/api/gateway/events", opsToken, `{"session":"job","text":"finished"}`)
	require.Equal(t, http.StatusAccepted, r.code, r.raw)
	eventually(t, 10*time.Second, "the event reached the upstream", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(eventIDs) == 1 && eventIDs[0] == r.body["event_id"]
	})
	p.signal(syscall.SIGTERM)
	require.Equal(t, 0, p.wait())
}

// TestE2EHTTPAgentTimeout: --agent-timeout bounds each turn of the http
// agent: an upstream that never answers fails the turn with a 502 that
// says it timed out after that long (counted as the agent's failure),
// instead of holding the turn until a forced shutdown.
func TestE2EHTTPAgentTimeout(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	up := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		select { // never answers while the test runs
		case <-r.Context().Done():
		case <-release:
		}
	}))
	t.Cleanup(up.Close)
	t.Cleanup(func() { close(release) })
	p := startGateway(t, newHome(t), fakeProcRoot(t, "boot-agent-timeout", 100),
		"--agent", "http", "--agent-url", up.URL, "--agent-timeout", "300ms")

	r := await(t, p.turnAsync("alice", "hello"))
	assert.Equal(t, http.StatusBadGateway, r.code, r.raw)
	assert.Equal(t, "agent_failed", r.body["error"])
	assert.Contains(t, r.body["message"], "timed out after 300ms")
	agent, ok := p.status()["agent"].(map[string]any)
	require.True(t, ok, "the status has the agent")
	assert.Equal(t, float64(1), agent["failures"])
	p.signal(syscall.SIGTERM)
	require.Equal(t, 0, p.wait())
}
