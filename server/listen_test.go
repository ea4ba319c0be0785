package server_test

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/quiesce-dev/quiesce/client"
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
	c, err := client.New(s.URL(), opsToken, hc)
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
	c, err := client.New(s.URL(), opsToken, hc)
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
