package server_test

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/quiesce-dev/quiesce/server"
)

// cutBound is how long these tests give the server to cut a slow client
// off after its timeout: a generous bound for a slow machine, not a
// measured duration. A server without the timeout keeps the connection
// open past it, and the test fails by assertion.
const cutBound = 12 * time.Second

// requireCut reads conn until the server closes it and fails if that has
// not happened within bound (the server kept a slow client's connection).
func requireCut(t *testing.T, conn net.Conn, bound time.Duration) {
	t.Helper()
	require.NoError(t, conn.SetReadDeadline(time.Now().Add(bound)))
	_, err := io.ReadAll(conn)
	if ne, ok := errors.AsType[net.Error](err); ok && ne.Timeout() {
		require.Fail(t, fmt.Sprintf("the server still held the slow client's connection after %v", bound))
	}
}

// TestSlowClientsAreCut: docs/API.md, Timeouts: "A request's headers
// must arrive within 5 s and the whole request within 30 s (--read-timeout),
// so a slow client cannot pin a connection".
func TestSlowClientsAreCut(t *testing.T) {
	require.Equal(t, 5*time.Second, server.ReadHeaderTimeout)
	require.Equal(t, 30*time.Second, server.DefaultReadTimeout)
	t.Run("headers never finished", func(t *testing.T) {
		t.Parallel()
		s := MustServer(t, &Gateway{}) // the default read timeout, 30 s: only the header timeout cuts within the bound
		require.NoError(t, s.Open())
		t.Cleanup(func() { _ = closeWithin(t, s) })
		conn := dial(t, s)
		_, err := fmt.Fprint(conn, "GET /healthz HTTP/1.1\r\nHost: x\r\n") // no blank line: the headers never end
		require.NoError(t, err)
		requireCut(t, conn, cutBound)
	})
	t.Run("body trickled", func(t *testing.T) {
		t.Parallel()
		s, err := server.New(server.Config{Addr: "127.0.0.1:0", Gateway: &Gateway{}, ReadTimeout: 500 * time.Millisecond,
			Tokens: server.NewTokens(map[string]string{"ops": opsToken}), Logger: slog.New(slog.DiscardHandler)})
		require.NoError(t, err)
		require.NoError(t, s.Open())
		t.Cleanup(func() { _ = closeWithin(t, s) })
		conn := dial(t, s)
		_, err = fmt.Fprintf(conn, "POST /api/gateway/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"+
			"Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{", opsToken)
		require.NoError(t, err)
		// The body never completes; only the read timeout ends the request.
		requireCut(t, conn, cutBound)
	})
}
