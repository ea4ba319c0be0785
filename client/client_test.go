package client_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/quiesce-dev/quiesce/api"
	"github.com/quiesce-dev/quiesce/client"
	"github.com/quiesce-dev/quiesce/fsm"
	"github.com/quiesce-dev/quiesce/gateway"
	"github.com/quiesce-dev/quiesce/internal/refused"
	"github.com/quiesce-dev/quiesce/internal/testing/fakegateway"
	"github.com/quiesce-dev/quiesce/server"
)

const opsToken = "ops-token-0123456789"

// MustServer returns a Server on loopback around gw with the token
// opsToken for "ops", open until the test ends.
func MustServer(tb testing.TB, gw server.Gateway) *server.Server {
	tb.Helper()
	s, err := server.New(server.Config{
		Addr:    "127.0.0.1:0",
		Gateway: gw,
		Tokens:  server.NewTokens(map[string]string{"ops": opsToken}),
		Logger:  slog.New(slog.DiscardHandler),
	})
	require.NoError(tb, err)
	require.NoError(tb, s.Open())
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		assert.NoError(tb, s.Close(ctx))
	})
	return s
}

// TestClient drives every Client method against a real listener.
func TestClient(t *testing.T) {
	gw := &fakegateway.Gateway{}
	s := MustServer(t, gw)
	require.NotZero(t, s.Port())
	hc := &http.Client{Transport: &http.Transport{}}
	t.Cleanup(hc.CloseIdleConnections)
	c, err := client.New(s.URL(), opsToken, hc)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	reply, err := c.Send(ctx, "alice", "hello")
	require.NoError(t, err)
	assert.Equal(t, "hello", reply)

	d, err := c.Drain(ctx, true, "req-1")
	require.NoError(t, err)
	assert.Equal(t, api.DrainResponse{OK: true, Action: "drain", Draining: true, SuppressNotification: true,
		Principal: "ops", RequestID: "req-1", State: fsm.Draining, Persisted: true}, d)

	_, err = c.Send(ctx, "alice", "refused")
	var apiErr *client.APIError
	require.ErrorAs(t, err, &apiErr)
	assert.Equal(t, http.StatusServiceUnavailable, apiErr.StatusCode)
	assert.Equal(t, api.CodeDraining, apiErr.Code)
	assert.Equal(t, fsm.Draining, apiErr.State)
	assert.Equal(t, server.DefaultRetryAfter, apiErr.RetryAfter)

	st, err := c.Status(ctx)
	require.NoError(t, err)
	assert.Equal(t, fsm.Draining, st.State)

	st, idle, err := c.WaitIdle(ctx, time.Second)
	require.NoError(t, err)
	assert.True(t, idle)
	assert.Equal(t, 42, st.PID)

	cr, err := c.Cancel(ctx, "")
	require.NoError(t, err)
	assert.True(t, cr.WasDraining)
	assert.Equal(t, fsm.Running, cr.State)

	sd, err := c.Shutdown(ctx, true)
	require.NoError(t, err)
	assert.Equal(t, "sd1", sd.ShutdownID)
	assert.True(t, sd.Force)

	bad, err := client.New(s.URL(), "wrong-token-0123456789", hc)
	require.NoError(t, err)
	_, err = bad.Status(ctx)
	assert.True(t, client.IsAPIError(err, http.StatusUnauthorized), "%v", err)
}

// TestClientErrors shows what a caller branches on and what a user reads:
// a closed port is ErrUnreachable and ECONNREFUSED, an error answer is an
// *APIError, and neither message stacks package prefixes or repeats the
// URL.
func TestClientErrors(t *testing.T) {
	// Serve first, then take a closed port: the other way round the
	// server could be given the port just closed.
	s := MustServer(t, &fakegateway.Gateway{})
	closed := "http://" + refused.Addr(t)
	hc := &http.Client{Transport: &http.Transport{}}
	t.Cleanup(hc.CloseIdleConnections)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	t.Run("ConnectionRefused", func(t *testing.T) {
		c, err := client.New(closed+"/", opsToken, hc)
		require.NoError(t, err)
		assert.Equal(t, closed, c.URL(), "no trailing slash")
		for name, call := range map[string]func() error{
			"Status": func() error { _, err := c.Status(ctx); return err },
			"Health": func() error { return c.Health(ctx) },
			"Drain":  func() error { _, err := c.Drain(ctx, false, ""); return err },
		} {
			err := call()
			require.Errorf(t, err, "%s", name)
			assert.ErrorIs(t, err, client.ErrUnreachable, name)
			assert.ErrorIs(t, err, syscall.ECONNREFUSED, name)
			assert.NotContains(t, err.Error(), "server:", name)
			assert.Equal(t, 1, strings.Count(err.Error(), closed), "%s names the URL once: %v", name, err)
		}
	})
	t.Run("Deadline", func(t *testing.T) {
		c, err := client.New(s.URL(), opsToken, hc)
		require.NoError(t, err)
		past, cancel := context.WithDeadline(ctx, time.Now().Add(-time.Second))
		defer cancel()
		err = c.Health(past)
		assert.ErrorIs(t, err, client.ErrUnreachable)
		assert.ErrorIs(t, err, context.DeadlineExceeded)
		assert.False(t, errors.Is(err, syscall.ECONNREFUSED), "a slow server is not a gone one")
	})
	t.Run("APIError", func(t *testing.T) {
		c, err := client.New(s.URL(), "wrong-token-0123456789", hc)
		require.NoError(t, err)
		require.NoError(t, c.Health(ctx), "healthz needs no token")
		_, err = c.Cancel(ctx, "")
		apiErr, ok := errors.AsType[*client.APIError](err)
		require.True(t, ok, "%v", err)
		assert.Equal(t, http.StatusUnauthorized, apiErr.StatusCode)
		assert.Equal(t, api.CodeUnauthorized, apiErr.Code)
		assert.False(t, errors.Is(err, client.ErrUnreachable))
		assert.True(t, strings.HasPrefix(err.Error(), "HTTP 401 unauthorized"), err.Error())
	})
}

// TestNewURL shows New refuses a URL that is not http(s)://host[:port],
// with an error that names no package.
func TestNewURL(t *testing.T) {
	for _, u := range []string{"", "127.0.0.1:8470", "ftp://x", "http://"} {
		_, err := client.New(u, "t", nil)
		if assert.Errorf(t, err, "url %q", u) {
			assert.NotContains(t, err.Error(), "server:")
		}
	}
}

// TestClientSendsTheSessionAsGiven: Send puts the session id in the path
// escaped once, so the server's turn runs for exactly that session,
// whatever characters it has; an id with a "/" is a 404 (no such route),
// never a turn for another session.
func TestClientSendsTheSessionAsGiven(t *testing.T) {
	got := make(chan string, 32) // room for every turn: a wrong one never blocks the server
	gw := &fakegateway.Gateway{TurnFn: func(_ context.Context, session, text string) (string, error) {
		got <- session
		return text, nil
	}}
	s := MustServer(t, gw)
	hc := &http.Client{Transport: &http.Transport{}}
	t.Cleanup(hc.CloseIdleConnections)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, base := range []string{s.URL(), s.URL() + "/"} {
		c, err := client.New(base, opsToken, hc)
		require.NoError(t, err)
		for _, session := range []string{"alice", "a b", "café", "a?b", "%", "50%25", "a#b", "a+b", "{id}"} {
			reply, err := c.Send(ctx, session, "hi")
			require.NoError(t, err, session)
			assert.Equal(t, "hi", reply)
			assert.Equal(t, session, recv(t, got), "the session the server's turn ran for")
		}
		_, err = c.Send(ctx, "a/b", "hi")
		assert.True(t, client.IsAPIError(err, http.StatusNotFound), "%v", err)
		assert.Empty(t, got, "no turn ran for a/b")
	}
}

// TestClientAnswers: a 2xx is decoded; any other status is an *APIError
// with the JSON error body's code, message and state (or the text of a
// body that is not the API's, as a proxy's page) and a 503's Retry-After;
// a 200 that is not the API's JSON is an error of its own, neither an
// *APIError nor ErrUnreachable.
func TestClientAnswers(t *testing.T) {
	for _, tc := range []struct {
		name   string
		status int
		header map[string]string
		body   string
		want   *client.APIError // nil: no *APIError
		errSub string           // in the error's text
	}{
		{name: "400", status: 400, body: `{"error":"bad_request","message":"text is required"}`,
			want: &client.APIError{StatusCode: 400, Code: "bad_request", Message: "text is required"}},
		{name: "401", status: 401, body: `{"error":"unauthorized","message":"unknown bearer token"}`,
			want: &client.APIError{StatusCode: 401, Code: "unauthorized", Message: "unknown bearer token"}},
		{name: "409 with a state", status: 409, body: `{"error":"shutting_down","message":"m","state":"shutting_down"}`,
			want: &client.APIError{StatusCode: 409, Code: "shutting_down", Message: "m", State: fsm.ShuttingDown}},
		{name: "503 with Retry-After", status: 503, header: map[string]string{"Retry-After": "7"},
			body: `{"error":"draining","message":"m","state":"draining"}`,
			want: &client.APIError{StatusCode: 503, Code: "draining", Message: "m", State: fsm.Draining, RetryAfter: 7 * time.Second}},
		{name: "502 from a proxy", status: 502, header: map[string]string{"Content-Type": "text/html"},
			body: "<html>Bad Gateway</html>\n", want: &client.APIError{StatusCode: 502, Message: "<html>Bad Gateway</html>"}},
		{name: "304", status: 304, want: &client.APIError{StatusCode: 304}},
		{name: "200 not JSON", status: 200, header: map[string]string{"Content-Type": "text/html"},
			body: "<html>a login page</html>", errSub: "not the API's JSON"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				for k, v := range tc.header {
					w.Header().Set(k, v)
				}
				w.WriteHeader(tc.status)
				_, _ = io.WriteString(w, tc.body)
			}))
			t.Cleanup(srv.Close)
			err := statusFrom(testContext(t), t, srv)
			require.Error(t, err)
			assert.False(t, errors.Is(err, client.ErrUnreachable), "an answer came: %v", err)
			apiErr, ok := errors.AsType[*client.APIError](err)
			if tc.want == nil {
				assert.False(t, ok, "not an *APIError: %v", err)
				assert.Contains(t, err.Error(), tc.errSub)
				return
			}
			require.True(t, ok, "want an *APIError, got %v", err)
			assert.Equal(t, tc.want, apiErr)
		})
	}
}

// TestClientClosesAnAnswerTooLarge: an answer over the 1 MiB the client
// reads is an error, and its connection is closed, not left open with the
// rest of the body unread.
func TestClientClosesAnAnswerTooLarge(t *testing.T) {
	closed := make(chan struct{}, 1)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"status":{"state":"`+strings.Repeat("x", 4<<20)+`"}}`)
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateClosed {
			closed <- struct{}{}
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	// The call's context lives on until the check: ending it would
	// close the connection whether or not the client closed the body.
	require.Error(t, statusFrom(testContext(t), t, srv))
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		require.Fail(t, "the client left the connection of an answer it gave up on open")
	}
}

// statusFrom calls Status against srv.
func statusFrom(ctx context.Context, t *testing.T, srv *httptest.Server) error {
	t.Helper()
	c, err := client.New(srv.URL, opsToken, srv.Client())
	require.NoError(t, err)
	_, err = c.Status(ctx)
	return err
}

// testContext bounds a test's calls by 10 s; it ends with the test.
func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// recv receives from ch, failing after 10 s rather than hanging.
func recv[T any](tb testing.TB, ch <-chan T) T {
	tb.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(10 * time.Second):
		require.Fail(tb, "timed out")
		panic("unreachable")
	}
}

// TestClientCancelSendsTheRequestID: Cancel names the drain it cancels
// (docs/API.md: a request_id that is not the active one is a 409 and the
// marker stays), so the id must reach the gateway as given; "" names none.
func TestClientCancelSendsTheRequestID(t *testing.T) {
	for _, id := range []string{"maint-42", ""} {
		t.Run("id "+id, func(t *testing.T) {
			var got []string
			gw := &fakegateway.Gateway{CancelDrainFn: func(_ context.Context, requestID string) (gateway.CancelResult, error) {
				got = append(got, requestID)
				return gateway.CancelResult{WasDraining: true, State: fsm.Running}, nil
			}}
			c, err := client.New(MustServer(t, gw).URL(), opsToken, nil)
			require.NoError(t, err)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_, err = c.Cancel(ctx, id)
			require.NoError(t, err)
			assert.Equal(t, []string{id}, got)
		})
	}
}
