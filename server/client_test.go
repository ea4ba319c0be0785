package server_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/quiesce-dev/quiesce/api"
	"github.com/quiesce-dev/quiesce/fsm"
	"github.com/quiesce-dev/quiesce/internal/refused"
	"github.com/quiesce-dev/quiesce/server"
)

// MustOpen opens s on loopback and closes it when the test ends.
func MustOpen(tb testing.TB, s *server.Server) {
	tb.Helper()
	require.NoError(tb, s.Open())
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		assert.NoError(tb, s.Close(ctx))
	})
}

// TestClient drives every Client method against a real listener.
func TestClient(t *testing.T) {
	gw := &Gateway{}
	s := MustServer(t, gw)
	MustOpen(t, s)
	require.NotZero(t, s.Port())
	hc := &http.Client{Transport: &http.Transport{}}
	t.Cleanup(hc.CloseIdleConnections)
	c, err := server.NewClient(s.URL(), opsToken, hc)
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
	var apiErr *server.APIError
	require.ErrorAs(t, err, &apiErr)
	assert.Equal(t, http.StatusServiceUnavailable, apiErr.StatusCode)
	assert.Equal(t, server.CodeDraining, apiErr.Code)
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

	bad, err := server.NewClient(s.URL(), "wrong-token-0123456789", hc)
	require.NoError(t, err)
	_, err = bad.Status(ctx)
	assert.True(t, server.IsAPIError(err, http.StatusUnauthorized), "%v", err)
}

// TestClientErrors shows what a caller branches on and what a user reads:
// a closed port is ErrUnreachable and ECONNREFUSED, an error answer is an
// *APIError, and neither message stacks package prefixes or repeats the
// URL.
func TestClientErrors(t *testing.T) {
	// Serve first, then take a closed port: the other way round the
	// server could be given the port just closed.
	s := MustServer(t, &Gateway{})
	MustOpen(t, s)
	closed := "http://" + refused.Addr(t)
	hc := &http.Client{Transport: &http.Transport{}}
	t.Cleanup(hc.CloseIdleConnections)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	t.Run("ConnectionRefused", func(t *testing.T) {
		c, err := server.NewClient(closed+"/", opsToken, hc)
		require.NoError(t, err)
		assert.Equal(t, closed, c.URL(), "no trailing slash")
		for name, call := range map[string]func() error{
			"Status": func() error { _, err := c.Status(ctx); return err },
			"Health": func() error { return c.Health(ctx) },
			"Drain":  func() error { _, err := c.Drain(ctx, false, ""); return err },
		} {
			err := call()
			require.Errorf(t, err, "%s", name)
			assert.ErrorIs(t, err, server.ErrUnreachable, name)
			assert.ErrorIs(t, err, syscall.ECONNREFUSED, name)
			assert.NotContains(t, err.Error(), "server:", name)
			assert.Equal(t, 1, strings.Count(err.Error(), closed), "%s names the URL once: %v", name, err)
		}
	})
	t.Run("Deadline", func(t *testing.T) {
		c, err := server.NewClient(s.URL(), opsToken, hc)
		require.NoError(t, err)
		past, cancel := context.WithDeadline(ctx, time.Now().Add(-time.Second))
		defer cancel()
		err = c.Health(past)
		assert.ErrorIs(t, err, server.ErrUnreachable)
		assert.ErrorIs(t, err, context.DeadlineExceeded)
		assert.False(t, errors.Is(err, syscall.ECONNREFUSED), "a slow server is not a gone one")
	})
	t.Run("APIError", func(t *testing.T) {
		c, err := server.NewClient(s.URL(), "wrong-token-0123456789", hc)
		require.NoError(t, err)
		require.NoError(t, c.Health(ctx), "healthz needs no token")
		_, err = c.Cancel(ctx, "")
		apiErr, ok := errors.AsType[*server.APIError](err)
		require.True(t, ok, "%v", err)
		assert.Equal(t, http.StatusUnauthorized, apiErr.StatusCode)
		assert.Equal(t, server.CodeUnauthorized, apiErr.Code)
		assert.False(t, errors.Is(err, server.ErrUnreachable))
		assert.True(t, strings.HasPrefix(err.Error(), "HTTP 401 unauthorized"), err.Error())
	})
}

func TestNewClientURL(t *testing.T) {
	for _, u := range []string{"", "127.0.0.1:8470", "ftp://x", "http://"} {
		_, err := server.NewClient(u, "t", nil)
		if assert.Errorf(t, err, "url %q", u) {
			assert.NotContains(t, err.Error(), "server:")
		}
	}
}

// TestOpenAddrInUse shows Open reports a busy address synchronously.
func TestOpenAddrInUse(t *testing.T) {
	a := MustServer(t, &Gateway{})
	MustOpen(t, a)
	b, err := server.New(server.Config{Addr: a.Addr(), Gateway: &Gateway{}})
	require.NoError(t, err)
	assert.Error(t, b.Open())
}

// TestCloseWaitsForTurn shows Close lets an in-flight turn answer.
func TestCloseWaitsForTurn(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	started, release := make(chan struct{}), make(chan struct{})
	gw := &Gateway{TurnFn: func(ctx context.Context, _, text string) (string, error) {
		close(started)
		select {
		case <-release:
			return "done", nil
		case <-ctx.Done():
			return "", ctx.Err()
		}
	}}
	s := MustServer(t, gw)
	require.NoError(t, s.Open())
	hc := &http.Client{Transport: &http.Transport{}}
	defer hc.CloseIdleConnections()
	c, err := server.NewClient(s.URL(), opsToken, hc)
	require.NoError(t, err)

	type result struct {
		reply string
		err   error
	}
	got := make(chan result, 1)
	go func() {
		r, err := c.Send(context.Background(), "a", "x")
		got <- result{r, err}
	}()
	select {
	case <-started:
	case <-time.After(5 * time.Second):
		require.Fail(t, "turn did not start")
	}
	closed := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		closed <- s.Close(ctx)
	}()
	select {
	case err := <-closed:
		require.Fail(t, fmt.Sprintf("Close returned %v while a turn was in flight", err))
	case <-time.After(50 * time.Millisecond):
	}
	close(release)
	select {
	case r := <-got:
		require.NoError(t, r.err)
		assert.Equal(t, "done", r.reply)
	case <-time.After(5 * time.Second):
		require.Fail(t, "no reply")
	}
	select {
	case err := <-closed:
		assert.NoError(t, err)
	case <-time.After(5 * time.Second):
		require.Fail(t, "Close did not return")
	}
	select {
	case err := <-s.Done():
		assert.NoError(t, err)
	case <-time.After(5 * time.Second):
		require.Fail(t, "Serve did not return")
	}
}

// TestLongTurnKeepsContext shows that a turn running past the server's
// read timeout keeps its request context and its response: the read
// deadline ends with the body, and there is no write timeout.
func TestLongTurnKeepsContext(t *testing.T) {
	gw := &Gateway{TurnFn: func(ctx context.Context, _, _ string) (string, error) {
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(300 * time.Millisecond): // 6× the read timeout
			return "finished", nil
		}
	}}
	s, err := server.New(server.Config{Addr: "127.0.0.1:0", Gateway: gw, ReadTimeout: 50 * time.Millisecond,
		Tokens: server.NewTokens(map[string]string{"ops": opsToken})})
	require.NoError(t, err)
	MustOpen(t, s)
	hc := &http.Client{Transport: &http.Transport{}}
	defer hc.CloseIdleConnections()
	c, err := server.NewClient(s.URL(), opsToken, hc)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	reply, err := c.Send(ctx, "a", "x")
	require.NoError(t, err)
	assert.Equal(t, "finished", reply)
}

// TestListenThenServe shows that a request reaching a listening server
// waits for Serve instead of failing or being answered early.
func TestListenThenServe(t *testing.T) {
	s := MustServer(t, &Gateway{})
	require.NoError(t, s.Listen())
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		assert.NoError(t, s.Close(ctx))
	})
	require.NotZero(t, s.Port())
	hc := &http.Client{Transport: &http.Transport{}}
	defer hc.CloseIdleConnections()
	answered := make(chan int, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.URL()+"/healthz", nil)
		resp, err := hc.Do(req)
		if err != nil {
			answered <- 0
			return
		}
		resp.Body.Close()
		answered <- resp.StatusCode
	}()
	select {
	case code := <-answered:
		require.Fail(t, fmt.Sprintf("answered (%d) before Serve", code))
	case <-time.After(100 * time.Millisecond):
	}
	s.Serve()
	select {
	case code := <-answered:
		assert.Equal(t, http.StatusOK, code)
	case <-time.After(5 * time.Second):
		require.Fail(t, "no answer after Serve")
	}
}

// TestCloseWithoutServe releases the address of a server that never served.
func TestCloseWithoutServe(t *testing.T) {
	a := MustServer(t, &Gateway{})
	require.NoError(t, a.Listen())
	addr := a.Addr()
	require.NoError(t, a.Close(context.Background()))
	b, err := server.New(server.Config{Addr: addr, Gateway: &Gateway{}})
	require.NoError(t, err)
	require.NoError(t, b.Listen(), "the address is free again")
	require.NoError(t, b.Close(context.Background()))
}
