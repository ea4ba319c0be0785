package server_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/quiesce-dev/quiesce/api"
	"github.com/quiesce-dev/quiesce/fsm"
	"github.com/quiesce-dev/quiesce/server"
)

// closeBound is how long a Close with a 300 ms context may take in these
// tests: a generous bound for a slow machine, not a measured duration.
const closeBound = 3 * time.Second

// closeWithin calls s.Close with a 300 ms context and fails the test if it
// has not returned within closeBound. It returns Close's error.
func closeWithin(t *testing.T, s *server.Server) error {
	t.Helper()
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		done <- s.Close(ctx)
	}()
	select {
	case err := <-done:
		return err
	case <-time.After(closeBound):
		require.Fail(t, fmt.Sprintf("Close(ctx with a 300ms timeout) had not returned after %v", closeBound))
		return nil
	}
}

// dial opens a raw connection to s with a deadline for everything done on it.
func dial(t *testing.T, s *server.Server) net.Conn {
	t.Helper()
	conn, err := net.Dial("tcp", s.Addr())
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	require.NoError(t, conn.SetDeadline(time.Now().Add(30*time.Second)))
	return conn
}

// TestCloseBoundedBySlowUpload shows that a client trickling a request
// body (one byte every 100 ms) cannot hold Close past its context: once
// the context ends, Close cuts every connection and returns ctx.Err().
func TestCloseBoundedBySlowUpload(t *testing.T) {
	gw := &Gateway{}
	s := MustServer(t, gw)
	require.NoError(t, s.Open())
	conn := dial(t, s)

	const body = `{"text":"` + "a very slow upload that would take minutes to finish at one byte per tick" + `"}`
	_, err := fmt.Fprintf(conn, "POST /v1/sessions/a/messages HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"+
		"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n", opsToken, len(body)*100)
	require.NoError(t, err)
	stop := make(chan struct{})
	trickled := make(chan struct{})
	cut := make(chan struct{})
	go func() {
		defer close(cut)
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			if _, err := conn.Write([]byte{body[i%len(body)]}); err != nil {
				return // the server cut the connection
			}
			if i == 2 {
				close(trickled)
			}
		}
	}()
	select {
	case <-trickled:
	case <-time.After(10 * time.Second):
		close(stop)
		require.Fail(t, "the upload did not start")
	}

	err = closeWithin(t, s)
	assert.ErrorIs(t, err, context.DeadlineExceeded, "the upload was still running when ctx ended")
	select {
	case err := <-s.Done():
		assert.NoError(t, err)
	case <-time.After(closeBound):
		require.Fail(t, "Serve did not return after Close")
	}
	// The connection is closed: the client reads EOF or a reset, not a hang.
	require.NoError(t, conn.SetReadDeadline(time.Now().Add(closeBound)))
	_, err = io.ReadAll(conn)
	if ne, ok := errors.AsType[net.Error](err); ok && ne.Timeout() {
		require.Fail(t, fmt.Sprintf("the connection was still open %v after Close returned", closeBound))
	}
	close(stop)
	select {
	case <-cut:
	case <-time.After(closeBound):
		require.Fail(t, "the uploading goroutine did not stop")
	}
	assert.Empty(t, gw.Calls(), "the half-uploaded turn never reached the gateway")
}

// TestCloseBoundedByIdleKeepAlive shows that a keep-alive connection left
// idle after its answer, and one opened without a byte sent, do not hold
// Close past its context.
func TestCloseBoundedByIdleKeepAlive(t *testing.T) {
	s := MustServer(t, &Gateway{})
	require.NoError(t, s.Open())

	idle := dial(t, s)
	_, err := fmt.Fprint(idle, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
	require.NoError(t, err)
	resp, err := http.ReadResponse(bufio.NewReader(idle), nil)
	require.NoError(t, err, "an answer before the deadline")
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)

	silent := dial(t, s)
	_ = silent

	err = closeWithin(t, s)
	if err != nil {
		assert.ErrorIs(t, err, context.DeadlineExceeded)
	}
	select {
	case err := <-s.Done():
		assert.NoError(t, err)
	case <-time.After(closeBound):
		require.Fail(t, "Serve did not return after Close")
	}
}

// A turn answered while Close waits must reach the client whole.
func TestCloseNeverCutsAnAnsweredTurn(t *testing.T) {
	for i := range 200 {
		release := make(chan struct{})
		entered := make(chan struct{})
		gw := &Gateway{TurnFn: func(ctx context.Context, session, text string) (string, error) {
			close(entered)
			<-release
			return strings.Repeat("r", 100), nil
		}}
		s := MustServer(t, gw)
		require.NoError(t, s.Open())
		type res struct {
			body string
			err  error
		}
		got := make(chan res, 1)
		go func() {
			req, _ := http.NewRequest("POST", s.URL()+"/v1/sessions/a/messages", strings.NewReader(`{"text":"hi"}`))
			req.Header.Set("Authorization", "Bearer "+opsToken)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				got <- res{err: err}
				return
			}
			b, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			got <- res{string(b), err}
		}()
		<-entered
		closed := make(chan error, 1)
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			closed <- s.Close(ctx)
		}()
		time.Sleep(5 * time.Millisecond) // let Close reach its wait
		close(release)
		r := <-got
		require.NoError(t, <-closed)
		require.NoErrorf(t, r.err, "iteration %d: response cut", i)
		require.Containsf(t, r.body, `"reply"`, "iteration %d: response cut", i)
	}
}

// run.go closes the server as soon as the gateway is stopped; the stop
// transition is also what wakes a status?wait=change long-poll. That answer
// must reach the client whole.
func TestCloseNeverCutsALongPollWokenAtStop(t *testing.T) {
	cut := 0
	for range 200 {
		release := make(chan struct{})
		entered := make(chan struct{})
		gw := &Gateway{WaitChangeFn: func(ctx context.Context, after uint64) (api.Status, error) {
			close(entered)
			<-release
			return api.Status{Seq: after + 1, State: fsm.Stopped}, nil
		}}
		s := MustServer(t, gw)
		require.NoError(t, s.Open())
		errc := make(chan error, 1)
		go func() {
			req, _ := http.NewRequest("GET", s.URL()+"/api/gateway/status?wait=change&after=0&timeout=10s", nil)
			req.Header.Set("Authorization", "Bearer "+opsToken)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				errc <- err
				return
			}
			_, err = io.ReadAll(resp.Body)
			resp.Body.Close()
			errc <- err
		}()
		<-entered
		close(release) // the stop transition wakes the long-poll ...
		ctx, cancel := context.WithTimeout(context.Background(), 750*time.Millisecond)
		require.NoError(t, s.Close(ctx)) // ... and gw.Done makes run close the server
		cancel()
		if err := <-errc; err != nil {
			cut++
		}
	}
	require.LessOrEqualf(t, cut, 0, "%d of 200 long-poll answers cut off by Close", cut)
}

// Close before Serve: Serve afterwards used to end at once with nil
// (http.Server.Shutdown had marked the server closed).
func TestCloseBeforeServeEndsServeCleanly(t *testing.T) {
	s := MustServer(t, &Gateway{})
	require.NoError(t, s.Listen())
	require.NoError(t, s.Close(context.Background()))
	s.Serve()
	select {
	case err := <-s.Done():
		require.NoError(t, err)
	case <-time.After(2 * time.Second):
		require.Fail(t, "Serve after Close still serving")
	}
}
