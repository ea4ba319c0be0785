package server_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/quiesce-dev/quiesce/api"
	"github.com/quiesce-dev/quiesce/client"
	"github.com/quiesce-dev/quiesce/fsm"
	"github.com/quiesce-dev/quiesce/gateway"
)

// TestTurnsRoute shows GET /api/gateway/turns: the gateway's list as
// {"turns": [...]}, an empty list as [] (never null); a token is needed
// (the list names sessions); HEAD answers too; other methods get a JSON
// 405 with Allow.
func TestTurnsRoute(t *testing.T) {
	started := time.Date(2026, 12, 7, 3, 0, 0, 0, time.UTC)
	list := []api.TurnInfo{
		{Session: "alice", TurnID: "0123456789abcdef", StartedAt: started, AgeSeconds: 12.5},
		{Session: "bob", TurnID: "fedcba9876543210", StartedAt: started.Add(time.Second), AgeSeconds: 11.5, Streaming: true},
		{Session: "carol", TurnID: "00000000000000aa", StartedAt: started.Add(2 * time.Second), AgeSeconds: 10.5, System: true, EventID: "ev-1"},
	}
	h := MustServer(t, &Gateway{TurnsFn: func() []api.TurnInfo { return list }}).Handler()

	rec := do(t, h, http.MethodGet, api.TurnsPath, opsToken, "")
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	assert.Equal(t, "application/json", rec.Header().Get("Content-Type"))
	assert.JSONEq(t, `{"turns":[
		{"session":"alice","turn_id":"0123456789abcdef","started_at":"2026-12-07T03:00:00Z","age_seconds":12.5,"streaming":false,"system":false},
		{"session":"bob","turn_id":"fedcba9876543210","started_at":"2026-12-07T03:00:01Z","age_seconds":11.5,"streaming":true,"system":false},
		{"session":"carol","turn_id":"00000000000000aa","started_at":"2026-12-07T03:00:02Z","age_seconds":10.5,"streaming":false,"system":true,"event_id":"ev-1"}
	]}`, rec.Body.String())

	empty := do(t, MustServer(t, &Gateway{}).Handler(), http.MethodGet, api.TurnsPath, opsToken, "")
	require.Equal(t, http.StatusOK, empty.Code)
	assert.JSONEq(t, `{"turns":[]}`, empty.Body.String())

	requireListRoute(t, h, api.TurnsPath)
}

// TestHistoryRoute shows GET /api/gateway/history: the gateway's last
// lifecycle events as {"events": [...]}, drains with principal and
// reason; an empty one as []; token, HEAD and 405 as for turns.
func TestHistoryRoute(t *testing.T) {
	at := time.Date(2026, 12, 7, 3, 0, 0, 0, time.UTC)
	events := []api.HistoryEntry{
		{Seq: 1, At: at, Kind: gateway.HistoryStart, To: fsm.Running},
		{Seq: 2, At: at, Kind: gateway.HistoryDrain, Principal: "ops", RequestID: "maint-42", Reason: "kernel update", SuppressNotification: true},
		{Seq: 3, At: at, Kind: gateway.HistoryTransition, From: fsm.Running, To: fsm.Draining, Event: fsm.Drain},
		{Seq: 4, At: at, Kind: gateway.HistoryInterrupted, ShutdownID: "sd1", Sessions: []string{"alice"}, Count: 1},
	}
	h := MustServer(t, &Gateway{HistoryFn: func() []api.HistoryEntry { return events }}).Handler()
	rec := do(t, h, http.MethodGet, api.HistoryPath, opsToken, "")
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	assert.JSONEq(t, `{"events":[
		{"seq":1,"at":"2026-12-07T03:00:00Z","kind":"start","to":"running"},
		{"seq":2,"at":"2026-12-07T03:00:00Z","kind":"drain","principal":"ops","request_id":"maint-42","reason":"kernel update","suppress_notification":true},
		{"seq":3,"at":"2026-12-07T03:00:00Z","kind":"transition","from":"running","to":"draining","event":"drain"},
		{"seq":4,"at":"2026-12-07T03:00:00Z","kind":"interrupted","shutdown_id":"sd1","sessions":["alice"],"count":1}
	]}`, rec.Body.String())

	empty := do(t, MustServer(t, &Gateway{}).Handler(), http.MethodGet, api.HistoryPath, opsToken, "")
	require.Equal(t, http.StatusOK, empty.Code)
	assert.JSONEq(t, `{"events":[]}`, empty.Body.String())

	requireListRoute(t, h, api.HistoryPath)
}

// requireListRoute checks what every read-only list route does besides
// answering: 401 without a valid token, HEAD with headers and no body, a
// JSON 405 with Allow for other methods (net/http drops a HEAD answer's
// body on the wire; the recorder keeps it).
func requireListRoute(t *testing.T, h http.Handler, path string) {
	t.Helper()
	for _, token := range []string{"", "wrong-token"} {
		requireError(t, do(t, h, http.MethodGet, path, token, ""), http.StatusUnauthorized, api.CodeUnauthorized)
	}
	head := do(t, h, http.MethodHead, path, opsToken, "")
	assert.Equal(t, http.StatusOK, head.Code)
	assert.Equal(t, "application/json", head.Header().Get("Content-Type"))
	for _, method := range []string{http.MethodPost, http.MethodDelete, http.MethodPut} {
		rec := do(t, h, method, path, opsToken, "{}")
		requireError(t, rec, http.StatusMethodNotAllowed, api.CodeMethodNotAllowed)
		assert.Equal(t, "GET, HEAD", rec.Header().Get("Allow"))
	}
	for _, bad := range []string{path + "/", path + "/x", path + "//"} {
		requireError(t, do(t, h, http.MethodGet, bad, opsToken, ""), http.StatusNotFound, api.CodeNotFound)
	}
}

// TestStatusVersionAndAgent shows the contract's version field and the
// agent object in the status answer.
func TestStatusVersionAndAgent(t *testing.T) {
	failedAt := time.Date(2026, 12, 7, 3, 4, 5, 0, time.UTC)
	gw := &Gateway{StatusFn: func() api.Status {
		return api.Status{State: fsm.Running, Version: "v1.2.3",
			Agent: &api.AgentStatus{Kind: "http", Failures: 7, LastError: "upstream answered 502", LastErrorAt: failedAt}}
	}}
	rec := do(t, MustServer(t, gw).Handler(), http.MethodGet, "/api/gateway/status", opsToken, "")
	require.Equal(t, http.StatusOK, rec.Code)
	m := decodeBody(t, rec)
	assert.Equal(t, "v1.2.3", m["version"])
	assert.Equal(t, map[string]any{"kind": "http", "failures": float64(7), "last_error": "upstream answered 502",
		"last_error_at": "2026-12-07T03:04:05Z"}, m["agent"])

	bare := decodeBody(t, do(t, MustServer(t, &Gateway{}).Handler(), http.MethodGet, "/api/gateway/status", opsToken, ""))
	assert.Contains(t, bare, "version", "version is always in the answer")
}

// TestClientTurnsAndHistory shows the Go client's Turns and History over
// a real listener.
func TestClientTurnsAndHistory(t *testing.T) {
	gw := &Gateway{
		TurnsFn:   func() []api.TurnInfo { return []api.TurnInfo{{Session: "alice", TurnID: "t1"}} },
		HistoryFn: func() []api.HistoryEntry { return []api.HistoryEntry{{Seq: 1, Kind: gateway.HistoryStart}} },
	}
	s := MustServer(t, gw)
	require.NoError(t, s.Open())
	t.Cleanup(func() { _ = s.Close(t.Context()) })
	c, err := client.New(s.URL(), opsToken, nil)
	require.NoError(t, err)
	turns, err := c.Turns(t.Context())
	require.NoError(t, err)
	assert.Equal(t, []api.TurnInfo{{Session: "alice", TurnID: "t1"}}, turns)
	hist, err := c.History(t.Context())
	require.NoError(t, err)
	assert.Equal(t, []api.HistoryEntry{{Seq: 1, Kind: gateway.HistoryStart}}, hist)

	bad, err := client.New(s.URL(), "wrong", nil)
	require.NoError(t, err)
	_, err = bad.Turns(t.Context())
	assert.True(t, client.IsAPIError(err, http.StatusUnauthorized), "%v", err)
}
