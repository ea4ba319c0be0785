package server_test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/quiesce-dev/quiesce/fsm"
	"github.com/quiesce-dev/quiesce/gateway"
)

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
		if r.err != nil || !strings.Contains(r.body, `"reply"`) {
			t.Fatalf("iteration %d: response cut: err=%v body=%q", i, r.err, r.body)
		}
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
		gw := &Gateway{WaitChangeFn: func(ctx context.Context, after uint64) (gateway.Status, error) {
			close(entered)
			<-release
			return gateway.Status{Seq: after + 1, State: fsm.Stopped}, nil
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
	if cut > 0 {
		t.Fatalf("%d of 200 long-poll answers cut off by Close", cut)
	}
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
		t.Fatal("Serve after Close still serving")
	}
}
