package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/quiesce-dev/quiesce/agent"
	"github.com/quiesce-dev/quiesce/fsm"
	"github.com/quiesce-dev/quiesce/internal/refused"
)

// upstreamRequest is the body the http agent posts to its upstream
// (docs/API.md), as the test upstream decodes it.
type upstreamRequest struct {
	Session string `json:"session"`
	Text    string `json:"text"`
	TurnID  string `json:"turn_id"`
	EventID string `json:"event_id"`
}

// upstream is a test agent service: it records each request and answers
// with handle.
type upstream struct {
	*httptest.Server
	mu       sync.Mutex
	requests []upstreamRequest
	ids      []string // X-Request-Id headers
}

func newUpstream(t *testing.T, handle func(w http.ResponseWriter, r *http.Request, req upstreamRequest)) *upstream {
	u := &upstream{}
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req upstreamRequest
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		u.mu.Lock()
		u.requests = append(u.requests, req)
		u.ids = append(u.ids, r.Header.Get("X-Request-Id"))
		u.mu.Unlock()
		handle(w, r, req)
	}))
	t.Cleanup(u.Close)
	return u
}

func (u *upstream) got() ([]upstreamRequest, []string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]upstreamRequest(nil), u.requests...), append([]string(nil), u.ids...)
}

func jsonReply(w http.ResponseWriter, _ *http.Request, req upstreamRequest) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]string{"reply": "re: " + req.Text})
}

func streamReply(w http.ResponseWriter, _ *http.Request, req upstreamRequest) {
	w.Header().Set("Content-Type", "text/event-stream")
	f := w.(http.Flusher)
	for _, part := range strings.SplitAfter(req.Text, " ") {
		fmt.Fprintf(w, "event: token\ndata: %s\n\n", part)
		f.Flush()
	}
	fmt.Fprint(w, ": a comment\n\ndata: line one\ndata: line two\n\n")
}

func httpAgentFixture(t *testing.T, url string, timeout time.Duration) *fixture {
	agent, err := agent.NewHTTP(url, agent.HTTPOptions{Timeout: timeout})
	require.NoError(t, err)
	return newFixture(t, func(c *Config) { c.Agent = agent })
}

func TestHTTPAgentJSONReply(t *testing.T) {
	up := newUpstream(t, jsonReply)
	f := httpAgentFixture(t, up.URL, 0)
	reply, err := f.g.Turn(context.Background(), "alice", "hello")
	require.NoError(t, err)
	assert.Equal(t, "re: hello", reply)
	reqs, ids := up.got()
	require.Len(t, reqs, 1)
	assert.Equal(t, "alice", reqs[0].Session)
	assert.Equal(t, "hello", reqs[0].Text)
	assert.Empty(t, reqs[0].EventID, "a user turn has no event id")
	assert.Len(t, reqs[0].TurnID, 16)
	assert.Equal(t, reqs[0].TurnID, ids[0], "the turn id is also the X-Request-Id")
}

func TestHTTPAgentStreamedReplyPassesChunksThrough(t *testing.T) {
	up := newUpstream(t, streamReply)
	f := httpAgentFixture(t, up.URL, 0)
	var deltas []string
	var started bool
	reply, err := f.g.Stream(context.Background(), TurnRequest{Session: "alice", Text: "one two three",
		Started: func() { started = true },
		Delta:   func(d string) { deltas = append(deltas, d) }})
	require.NoError(t, err)
	assert.True(t, started)
	assert.Equal(t, []string{"one ", "two ", "three", "line one\nline two"}, deltas)
	assert.Equal(t, strings.Join(deltas, ""), reply, "the reply is the deltas' concatenation")
}

func TestHTTPAgentFailures(t *testing.T) {
	refusedURL := "http://" + refused.Addr(t)
	for _, tc := range []struct {
		name    string
		handle  func(w http.ResponseWriter, r *http.Request, req upstreamRequest)
		url     string
		timeout time.Duration
		status  int
		reason  string
	}{
		{name: "500", handle: func(w http.ResponseWriter, _ *http.Request, _ upstreamRequest) {
			http.Error(w, "model overloaded", http.StatusInternalServerError)
		}, status: 500, reason: "model overloaded"},
		{name: "404", handle: func(w http.ResponseWriter, _ *http.Request, _ upstreamRequest) { http.NotFound(w, nil) }, status: 404},
		{name: "plain text 200", handle: func(w http.ResponseWriter, _ *http.Request, _ upstreamRequest) {
			w.Header().Set("Content-Type", "text/plain")
			fmt.Fprint(w, "hi")
		}, status: 200, reason: "unexpected content type"},
		{name: "JSON without reply", handle: func(w http.ResponseWriter, _ *http.Request, _ upstreamRequest) {
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprint(w, `{"answer":"x"}`)
		}, status: 200, reason: `without a "reply"`},
		{name: "refused", url: refusedURL, reason: "connection refused"},
		{name: "timeout", handle: func(_ http.ResponseWriter, r *http.Request, _ upstreamRequest) { <-r.Context().Done() },
			timeout: 100 * time.Millisecond, reason: "timed out"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			url := tc.url
			if url == "" {
				url = newUpstream(t, tc.handle).URL
			}
			f := httpAgentFixture(t, url, tc.timeout)
			_, err := f.g.Turn(context.Background(), "alice", "hi")
			require.ErrorIs(t, err, ErrAgent)
			var ue *agent.UpstreamError
			require.ErrorAs(t, err, &ue)
			assert.Equal(t, tc.status, ue.Status)
			assert.Contains(t, ue.Reason, tc.reason)
			var ae *AgentError
			require.ErrorAs(t, err, &ae, "what the server's 502 says comes from the gateway's own error")
			assert.Equal(t, AgentError{Upstream: true, Status: tc.status, Timeout: tc.timeout, Err: ae.Err}, *ae)
			assert.Zero(t, f.g.m.InFlight(), "the gate ticket is released")
			_, err = f.g.Turn(context.Background(), "alice", "again")
			require.ErrorIs(t, err, ErrAgent, "the session slot is released: not busy")
		})
	}
}

// TestHTTPAgentInterruptCancelsUpstream: a forced shutdown cuts a turn
// off and the upstream sees its request cancelled (connection closed).
func TestHTTPAgentInterruptCancelsUpstream(t *testing.T) {
	cancelled := make(chan struct{})
	arrived := make(chan struct{})
	testEnd := make(chan struct{}) // lets the handler go, so that the upstream closes, if the turn is never cut off
	up := newUpstream(t, func(_ http.ResponseWriter, r *http.Request, _ upstreamRequest) {
		close(arrived)
		select {
		case <-r.Context().Done():
			close(cancelled)
		case <-testEnd:
		}
	})
	t.Cleanup(func() { close(testEnd) }) // runs before the upstream's Close
	f := httpAgentFixture(t, up.URL, 0)
	out := make(chan error, 1)
	go func() {
		_, err := f.g.Turn(context.Background(), "alice", "long")
		out <- err
	}()
	recv(t, arrived)
	rep, _ := f.shutdown(t, true)
	assert.Equal(t, []string{"alice"}, rep.Interrupted)
	require.ErrorIs(t, recv(t, out), ErrInterrupted)
	select {
	case <-cancelled:
	case <-time.After(10 * time.Second):
		require.Fail(t, "the upstream never saw the request cancelled")
	}
}

// TestHTTPAgentSlowUpstreamDuringDrain: a drain lets the slow turn finish
// and refuses the next one.
func TestHTTPAgentSlowUpstreamDuringDrain(t *testing.T) {
	release := make(chan struct{})
	arrived := make(chan struct{}, 1)
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request, req upstreamRequest) {
		arrived <- struct{}{}
		<-release
		jsonReply(w, r, req)
	})
	var releaseOnce sync.Once // the test releases the upstream, or its end does (before the upstream's Close)
	releaseUpstream := func() { releaseOnce.Do(func() { close(release) }) }
	t.Cleanup(releaseUpstream)
	f := httpAgentFixture(t, up.URL, 0)
	out := make(chan error, 1)
	go func() {
		_, err := f.g.Turn(context.Background(), "alice", "slow")
		out <- err
	}()
	recv(t, arrived)
	_, err := f.g.BeginDrain(context.Background(), DrainRequest{Principal: "ops"})
	require.NoError(t, err)
	// Bounded: a turn the gate let in would wait for the upstream.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err = f.g.Turn(ctx, "bob", "new")
	require.ErrorIs(t, err, ErrRefused)
	releaseUpstream()
	require.NoError(t, recv(t, out), "the in-flight turn finished")
	reqs, _ := up.got()
	assert.Len(t, reqs, 1, "the refused turn never reached the upstream")
}

// TestHTTPAgentEventsCarryEventID: a system turn reaches the upstream
// with its event id, the same on a retry.
func TestHTTPAgentEventsCarryEventID(t *testing.T) {
	var mu sync.Mutex
	calls := 0
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request, req upstreamRequest) {
		mu.Lock()
		calls++
		first := calls == 1
		mu.Unlock()
		if first {
			http.Error(w, "try again", http.StatusServiceUnavailable)
			return
		}
		jsonReply(w, r, req)
	})
	f := httpAgentFixture(t, up.URL, 0)
	rec, err := f.g.Event(context.Background(), "job", "build finished")
	require.NoError(t, err)
	eventually(t, "the event completed", func() bool { return f.g.spool.len() == 0 })
	reqs, ids := up.got()
	require.Len(t, reqs, 2, "one failure, one retry")
	for i, r := range reqs {
		assert.Equal(t, rec.ID, r.EventID, "try %d", i)
		assert.Equal(t, "job", r.Session)
		assert.Equal(t, r.TurnID, ids[i])
	}
	assert.NotEqual(t, reqs[0].TurnID, reqs[1].TurnID, "each try is its own turn")
}

// TestStreamRefusedBeforeStarted: the gate and the session rules answer
// before Started, so a streaming caller can still answer with an error.
func TestStreamRefusedBeforeStarted(t *testing.T) {
	f := newFixture(t, nil)
	f.startTurn(t, "alice", "busy")
	started := false
	_, err := f.g.Stream(context.Background(), TurnRequest{Session: "alice", Text: "x", Started: func() { started = true }})
	require.ErrorIs(t, err, ErrSessionBusy)
	assert.False(t, started)
	_, err = f.g.BeginDrain(context.Background(), DrainRequest{})
	require.NoError(t, err)
	_, err = f.g.Stream(context.Background(), TurnRequest{Session: "bob", Text: "x", Started: func() { started = true }})
	require.ErrorIs(t, err, ErrRefused)
	assert.False(t, started)
	assert.Equal(t, fsm.Draining, f.g.State())
}
