package server_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/quiesce-dev/quiesce/api"
	"github.com/quiesce-dev/quiesce/fsm"
	"github.com/quiesce-dev/quiesce/internal/testing/fakegateway"
	"github.com/quiesce-dev/quiesce/server"
)

// TestStatusWaitChange shows status?wait=change&after=<seq>: it answers as
// soon as the status is another than the caller's (a drain while it
// waits), answers the unchanged status with "changed": false at the
// timeout, and answers at once when there is nothing to wait for.
func TestStatusWaitChange(t *testing.T) {
	t.Run("DrainWakesIt", func(t *testing.T) {
		gw := &Gateway{}
		h := MustServer(t, gw).Handler()
		done := make(chan *httptest.ResponseRecorder, 1)
		go func() {
			done <- do(t, h, http.MethodGet, "/api/gateway/status?wait=change&after=0&timeout=1m", opsToken, "")
		}()
		rec := do(t, h, http.MethodPost, "/api/gateway/drain", opsToken, "")
		require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
		select {
		case rec = <-done:
		case <-time.After(30 * time.Second):
			require.Fail(t, "wait=change did not answer after a drain")
		}
		require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
		m := decodeBody(t, rec)
		assert.Equal(t, true, m["changed"])
		assert.Equal(t, "draining", m["state"])
		assert.Equal(t, float64(1), m["seq"])
	})
	t.Run("AlreadyNewer", func(t *testing.T) {
		gw := &Gateway{StatusFn: func() api.Status { return api.Status{Seq: 7, State: fsm.Running} }}
		rec := do(t, MustServer(t, gw).Handler(), http.MethodGet, "/api/gateway/status?wait=change&after=6", opsToken, "")
		require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
		m := decodeBody(t, rec)
		assert.Equal(t, true, m["changed"])
		assert.Equal(t, float64(7), m["seq"])
	})
	t.Run("TimeoutAnswersUnchanged", func(t *testing.T) {
		var deadline time.Time
		gw := &Gateway{}
		gw.WaitChangeFn = func(ctx context.Context, after uint64) (api.Status, error) {
			deadline, _ = ctx.Deadline()
			<-ctx.Done()
			return gw.Status(), ctx.Err()
		}
		before := time.Now()
		rec := do(t, MustServer(t, gw).Handler(), http.MethodGet, "/api/gateway/status?wait=change&after=0&timeout=10ms", opsToken, "")
		require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
		m := decodeBody(t, rec)
		assert.Equal(t, false, m["changed"])
		assert.Equal(t, "running", m["state"])
		assert.Equal(t, float64(0), m["seq"])
		assert.NotContains(t, m, "idle")
		assert.True(t, deadline.After(before), "WaitChange got a bounded context")
	})
	t.Run("TimeoutCapped", func(t *testing.T) {
		var deadline time.Time
		gw := &Gateway{WaitChangeFn: func(ctx context.Context, after uint64) (api.Status, error) {
			deadline, _ = ctx.Deadline()
			return api.Status{Seq: after + 1}, nil
		}}
		before := time.Now()
		rec := do(t, MustServer(t, gw).Handler(), http.MethodGet, "/api/gateway/status?wait=change&after=0&timeout=100h", opsToken, "")
		require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
		assert.False(t, deadline.After(before.Add(server.MaxWaitTimeout+time.Minute)), "deadline %v", deadline)
	})
	t.Run("SecondsTimeout", func(t *testing.T) {
		gw := &Gateway{WaitChangeFn: func(_ context.Context, after uint64) (api.Status, error) {
			return api.Status{Seq: after + 1}, nil
		}}
		rec := do(t, MustServer(t, gw).Handler(), http.MethodGet, "/api/gateway/status?wait=change&after=0&timeout=3", opsToken, "")
		require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
		assert.Equal(t, true, decodeBody(t, rec)["changed"])
	})
	// A seq from before a restart is above the new life's counter: the
	// caller's status is old, so the answer is at once, and changed.
	t.Run("EarlierLife", func(t *testing.T) {
		gw := &Gateway{StatusFn: func() api.Status { return api.Status{Seq: 3, State: fsm.Running} }}
		rec := do(t, MustServer(t, gw).Handler(), http.MethodGet, "/api/gateway/status?wait=change&after=57", opsToken, "")
		require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
		m := decodeBody(t, rec)
		assert.Equal(t, true, m["changed"])
		assert.Equal(t, float64(3), m["seq"])
		assert.NotContains(t, gw.Calls(), "WaitChange")
	})
	// Stopped is terminal: nothing will change, so the wait would only
	// hold the connection while the server closes.
	t.Run("StoppedAnswersAtOnce", func(t *testing.T) {
		gw := fakegateway.InState(fsm.Stopped)
		rec := do(t, MustServer(t, gw).Handler(), http.MethodGet, "/api/gateway/status?wait=change&after=0&timeout=5m", opsToken, "")
		require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
		m := decodeBody(t, rec)
		assert.Equal(t, false, m["changed"])
		assert.Equal(t, "stopped", m["state"])
		assert.NotContains(t, gw.Calls(), "WaitChange")
	})
	t.Run("NeedsToken", func(t *testing.T) {
		gw := &Gateway{}
		rec := do(t, MustServer(t, gw).Handler(), http.MethodGet, "/api/gateway/status?wait=change&after=0", "", "")
		requireError(t, rec, http.StatusUnauthorized, api.CodeUnauthorized)
		assert.Empty(t, gw.Calls())
	})
}

// TestStatusWaitChangeBadQuery shows that a malformed wait=change query is
// a 400 that waits for nothing.
func TestStatusWaitChangeBadQuery(t *testing.T) {
	for _, q := range []string{
		"wait=change",                            // after is required
		"wait=change&after=",                     // empty
		"wait=change&after=-1",                   // signed
		"wait=change&after=%2B1",                 // "+1"
		"wait=change&after=1.5",                  // not whole
		"wait=change&after=0x10",                 // not decimal
		"wait=change&after=1_000",                // no separators
		"wait=change&after=18446744073709551616", // over uint64
		"wait=change&after=abc",
		"wait=change&after=1&timeout=soon",
		"wait=change&after=1&timeout=0",
		"wait=change&after=1&timeout=-1s",
		"after=1",              // needs wait=change
		"wait=idle&after=1",    // after is not for wait=idle
		"wait=changes&after=1", // unknown wait
		"wait=CHANGE&after=1",  // values match exactly
	} {
		t.Run(q, func(t *testing.T) {
			gw := &Gateway{}
			rec := do(t, MustServer(t, gw).Handler(), http.MethodGet, "/api/gateway/status?"+q, opsToken, "")
			requireError(t, rec, http.StatusBadRequest, api.CodeBadRequest)
			assert.NotContains(t, gw.Calls(), "WaitChange")
			assert.NotContains(t, gw.Calls(), "WaitIdle")
		})
	}
}

// TestWaitTimeoutDefaultAndCap: a long-poll's timeout (docs/API.md,
// status) is 30 s without ?timeout=, the value given as a Go duration or
// whole seconds, and 5 minutes for anything above, for wait=idle and
// wait=change alike. The deadline the gateway's wait gets is checked
// exactly: it was set between the request's start and its end, so it lies
// in [before+want, after+want].
func TestWaitTimeoutDefaultAndCap(t *testing.T) {
	require.Equal(t, 30*time.Second, server.DefaultWaitTimeout, "docs/API.md: the default is 30 s")
	require.Equal(t, 5*time.Minute, server.MaxWaitTimeout, "docs/API.md: cut to 5 minutes")
	for _, wait := range []string{"wait=idle", "wait=change&after=0"} {
		for _, tc := range []struct {
			query string
			want  time.Duration
		}{
			{"", 30 * time.Second},
			{"&timeout=90", 90 * time.Second},
			{"&timeout=2m", 2 * time.Minute},
			{"&timeout=299s", 299 * time.Second},
			{"&timeout=5m", 5 * time.Minute},
			{"&timeout=301", 5 * time.Minute},
			{"&timeout=100h", 5 * time.Minute},
		} {
			t.Run(wait+tc.query, func(t *testing.T) {
				var deadline time.Time
				gw := &Gateway{
					WaitIdleFn: func(ctx context.Context) error { deadline, _ = ctx.Deadline(); return nil },
					WaitChangeFn: func(ctx context.Context, after uint64) (api.Status, error) {
						deadline, _ = ctx.Deadline()
						return api.Status{Seq: after + 1}, nil
					},
				}
				before := time.Now()
				rec := do(t, MustServer(t, gw).Handler(), http.MethodGet, "/api/gateway/status?"+wait+tc.query, opsToken, "")
				after := time.Now()
				require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
				require.False(t, deadline.IsZero(), "the wait got a deadline")
				assert.Falsef(t, deadline.Before(before.Add(tc.want)), "deadline %v is before %v after the request", deadline, tc.want)
				assert.Falsef(t, deadline.After(after.Add(tc.want)), "deadline %v is over %v after the request", deadline, tc.want)
			})
		}
	}
}

// TestClientGoneEndsTheWait: docs/API.md, status: "A client that goes away
// ends the wait" of wait=idle and wait=change: the gateway's wait gets a
// context that ends with the request's, long before the timeout.
func TestClientGoneEndsTheWait(t *testing.T) {
	for _, query := range []string{"wait=idle&timeout=5m", "wait=change&after=0&timeout=5m"} {
		t.Run(query, func(t *testing.T) {
			waiting := make(chan struct{})
			ended := make(chan struct{})
			wait := func(ctx context.Context) {
				close(waiting)
				<-ctx.Done()
				close(ended)
			}
			gw := &Gateway{
				WaitIdleFn: func(ctx context.Context) error { wait(ctx); return ctx.Err() },
				WaitChangeFn: func(ctx context.Context, after uint64) (api.Status, error) {
					wait(ctx)
					return api.Status{Seq: after}, ctx.Err()
				},
			}
			h := MustServer(t, gw).Handler()
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			req := httptest.NewRequestWithContext(ctx, http.MethodGet, "/api/gateway/status?"+query, nil)
			req.Header.Set("Authorization", "Bearer "+opsToken)
			served := make(chan struct{})
			go func() {
				defer close(served)
				h.ServeHTTP(httptest.NewRecorder(), req)
			}()
			select {
			case <-waiting:
			case <-time.After(10 * time.Second):
				require.Fail(t, "the wait did not start")
			}
			cancel() // the client goes away
			select {
			case <-ended:
			case <-time.After(10 * time.Second):
				require.Fail(t, "the gateway's wait went on after the client went away")
			}
			select {
			case <-served:
			case <-time.After(10 * time.Second):
				require.Fail(t, "the handler did not return after the client went away")
			}
		})
	}
}
