package client_test

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/quiesce-dev/quiesce/api"
	"github.com/quiesce-dev/quiesce/client"
	"github.com/quiesce-dev/quiesce/fsm"
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

// TestClientSendSessionIDs: Send escapes the session id into the path, so
// an id with a space, '?', '%', '#' or non-ASCII text reaches the gateway
// as that id (not cut at '?', not refused as a bad escape).
func TestClientSendSessionIDs(t *testing.T) {
	var got []string // TurnFn runs once per Send, one at a time
	gw := &fakegateway.Gateway{TurnFn: func(_ context.Context, session, text string) (string, error) {
		got = append(got, session)
		return text, nil
	}}
	s := MustServer(t, gw)
	hc := &http.Client{Transport: &http.Transport{}}
	t.Cleanup(hc.CloseIdleConnections)
	c, err := client.New(s.URL(), opsToken, hc)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	ids := []string{"plain", "with space", "what?x=1", "100%", "a#b", "café"}
	for _, id := range ids {
		reply, err := c.Send(ctx, id, "hi "+id)
		require.NoError(t, err, "session %q", id)
		assert.Equal(t, "hi "+id, reply, "session %q", id)
	}
	assert.Equal(t, ids, got)
}
